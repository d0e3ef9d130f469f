// CUDA twin of kernels/cpu/rmsnorm.h: one block per token, the sum of squares in double in the order that
// kernels/core fixes (thread l's strided partial, then a tree), so the result is the CPU's bit for bit.
#include "common/error.h"
#include "common/float_formats.h"
#include "kernels/core/elementwise_core.h"
#include "kernels/cuda/ops.cuh"

namespace ecf8::cuda {
namespace {

constexpr int kThreads = core::kRmsPartials;

__global__ void rmsnorm_kernel(const float* x, int64_t x_stride, const uint16_t* w, int64_t dim, float eps, float* out,
                               int64_t out_stride) {
    __shared__ double partial[kThreads];
    const float* xr = x + blockIdx.x * x_stride;
    float* yr = out + blockIdx.x * out_stride;
    double ss = 0.0;
    for (int64_t i = threadIdx.x; i < dim; i += kThreads) ss += static_cast<double>(xr[i]) * xr[i];
    partial[threadIdx.x] = ss;
    __syncthreads();
    for (int half = kThreads / 2; half > 0; half /= 2) {
        if (threadIdx.x < half) partial[threadIdx.x] += partial[threadIdx.x + half];
        __syncthreads();
    }
    const float r = core::rms_factor(partial[0], dim, eps);
    for (int64_t i = threadIdx.x; i < dim; i += kThreads) yr[i] = core::rms_scale_one(xr[i], r, w[i]);
}

}  // namespace

void rmsnorm(const float* x, int64_t x_stride, const uint16_t* w_bf16, int64_t n_tokens, int64_t dim, float eps,
             float* out, int64_t out_stride, cudaStream_t stream) {
    ECF8_CHECK(dim > 0 && eps >= 0.0f && n_tokens >= 0 && x_stride >= dim && out_stride >= dim,
               "rmsnorm: dim " << dim << ", eps " << eps << ", n_tokens " << n_tokens << ", strides " << x_stride
                               << " and " << out_stride);
    if (n_tokens == 0) return;
    rmsnorm_kernel<<<static_cast<unsigned>(n_tokens), kThreads, 0, stream>>>(x, x_stride, w_bf16, dim, eps, out,
                                                                             out_stride);
    CUDA_CHECK(cudaGetLastError());
}

}  // namespace ecf8::cuda
