// CUDA twin of kernels/cpu/rope.h apply_rope: one thread per (token, head, pair), rotated in double.
#include <algorithm>

#include "common/error.h"
#include "kernels/core/elementwise_core.h"
#include "kernels/cuda/ops.cuh"

namespace ecf8::cuda {
namespace {

__global__ void rope_kernel(float* x, int64_t n_tokens, int64_t token_stride, int64_t n_heads, int64_t head_stride,
                            int64_t half, const int64_t* positions, const float* cos, const float* sin) {
    const int64_t total = n_tokens * n_heads * half;
    for (int64_t k = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; k < total; k += int64_t{gridDim.x} * blockDim.x) {
        const int64_t i = k % half, h = (k / half) % n_heads, t = k / (half * n_heads);
        const int64_t pos = positions[t];
        const double c = cos[pos * half + i], s = sin[pos * half + i];
        float* v = x + t * token_stride + h * head_stride;
        core::rotate_pair(v + 2 * i, c, s);
    }
}

}  // namespace

void apply_rope(float* x, int64_t n_tokens, int64_t token_stride, int64_t n_heads, int64_t head_stride,
                int64_t rope_dim, const int64_t* positions, const float* cos, const float* sin, cudaStream_t stream) {
    ECF8_CHECK(rope_dim > 0 && rope_dim % 2 == 0, "apply_rope: rope_dim " << rope_dim << " must be even");
    const int64_t total = n_tokens * n_heads * (rope_dim / 2);
    if (total <= 0) return;
    const unsigned blocks = static_cast<unsigned>(std::min<int64_t>((total + 255) / 256, 1 << 20));
    rope_kernel<<<blocks, 256, 0, stream>>>(x, n_tokens, token_stride, n_heads, head_stride, rope_dim / 2, positions,
                                            cos, sin);
    CUDA_CHECK(cudaGetLastError());
}

}  // namespace ecf8::cuda
