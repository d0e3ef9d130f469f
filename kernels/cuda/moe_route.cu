// CUDA twin of kernels/cpu/moe_gate.h moe_route (sigmoid scoring, DeepSeek-V3's gate): one thread per token
// runs the router core the CPU runs (kernels/core/moe_route_core.h), so the picked experts and their weights
// are bit-identical.
#include <cmath>

#include "common/error.h"
#include "kernels/core/moe_route_core.h"
#include "kernels/cpu/moe_gate.h"
#include "kernels/cuda/ops.cuh"

namespace ecf8::cuda {
namespace {

// One thread per token, each running the shared router core. A token whose logits hold a NaN gets expert -1
// in every slot; the runtime checks the picks it brings to the host (runtime/model.cpp).
__global__ void route_kernel(const float* logits, const float* bias, int64_t n_tokens, core::RouteShape shape,
                             float* weights, int32_t* experts) {
    const int64_t t = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
    if (t >= n_tokens) return;
    int32_t* picks = experts + t * shape.topk;
    if (!core::route_token_sigmoid(logits + t * shape.n_experts, bias, shape, weights + t * shape.topk, picks))
        for (int k = 0; k < shape.topk; ++k) picks[k] = -1;
}

}  // namespace

void moe_route(const float* logits, const float* bias, int64_t n_tokens, const cpu::GateParams& p, float* weights,
               int32_t* experts, cudaStream_t stream) {
    ECF8_CHECK(p.scoring == cpu::ScoringFunc::Sigmoid, "moe_route (CUDA): only sigmoid scoring is implemented");
    const core::RouteShape shape = cpu::route_shape(p);  // the CPU router's checks and the core's limits
    ECF8_CHECK(bias == nullptr || p.n_group == 1 || p.n_experts / p.n_group >= 2,
               "moe_route (CUDA): a group-limited gate with a bias needs >= 2 experts per group");
    if (n_tokens <= 0) return;
    const unsigned blocks = static_cast<unsigned>((n_tokens + 63) / 64);
    route_kernel<<<blocks, 64, 0, stream>>>(logits, bias, n_tokens, shape, weights, experts);
    CUDA_CHECK(cudaGetLastError());
}

}  // namespace ecf8::cuda
