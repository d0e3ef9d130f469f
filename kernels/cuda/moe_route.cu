// CUDA twin of kernels/cpu/moe_gate.h moe_route (sigmoid scoring, DeepSeek-V3's gate): one thread per token
// runs the router core the CPU runs (kernels/core/moe_route_core.h), so the picked experts and their weights
// are bit-identical. The core's working arrays live in shared memory, kTokensPerBlock tokens' worth per
// block, so the kernel needs no local memory (which the driver would reserve for every resident thread).
#include <cmath>

#include "common/error.h"
#include "kernels/core/moe_route_core.h"
#include "kernels/cpu/moe_gate.h"
#include "kernels/cuda/ops.cuh"

namespace ecf8::cuda {
namespace {

constexpr int kTokensPerBlock = 8;  // 8 x kRouteMaxScratchBytes fits the 48 KiB a launch gets by default

// One thread per token, each running the shared router core. A token whose logits hold a NaN gets expert -1
// in every slot, which moe_dispatch skips: unlike the CPU, the device cannot throw (runtime/ops.h).
__global__ void route_kernel(const float* logits, const float* bias, int64_t n_tokens, core::RouteShape shape,
                             int64_t scratch_bytes, float* weights, int32_t* experts) {
    extern __shared__ float4 route_shared[];  // float4: aligned for the float arrays
    const int64_t t = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
    if (t >= n_tokens) return;
    const core::RouteScratch s =
        core::route_scratch_at(reinterpret_cast<uint8_t*>(route_shared) + threadIdx.x * scratch_bytes, shape);
    int32_t* picks = experts + t * shape.topk;
    if (!core::route_token_sigmoid(logits + t * shape.n_experts, bias, shape, s, weights + t * shape.topk, picks))
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
    const int64_t scratch_bytes = core::route_scratch_bytes(shape);
    const unsigned blocks = static_cast<unsigned>((n_tokens + kTokensPerBlock - 1) / kTokensPerBlock);
    route_kernel<<<blocks, kTokensPerBlock, kTokensPerBlock * scratch_bytes, stream>>>(logits, bias, n_tokens, shape,
                                                                                       scratch_bytes, weights, experts);
    CUDA_CHECK(cudaGetLastError());
}

}  // namespace ecf8::cuda
