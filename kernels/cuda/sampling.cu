// CUDA twin of kernels/cpu/sampling.h argmax: one block per row, (value, index) reduced with the CPU's rule
// (larger value wins, lower index on ties, NaN never chosen).
#include "common/error.h"
#include "kernels/cuda/ops.cuh"

namespace ecf8::cuda {
namespace {

constexpr int kThreads = 256;

__device__ bool better(float v, int64_t i, float best, int64_t best_i) {
    if (isnan(v)) return false;
    if (best_i < 0 || isnan(best)) return true;
    return v > best || (v == best && i < best_i);
}

__global__ void argmax_kernel(const float* x, int64_t n, int64_t* out) {
    __shared__ float values[kThreads];
    __shared__ int64_t indices[kThreads];
    const float* row = x + blockIdx.x * n;
    float best = 0.0f;
    int64_t best_i = -1;
    for (int64_t i = threadIdx.x; i < n; i += kThreads)
        if (better(row[i], i, best, best_i)) best = row[i], best_i = i;
    values[threadIdx.x] = best;
    indices[threadIdx.x] = best_i;
    __syncthreads();
    for (int half = kThreads / 2; half > 0; half /= 2) {
        if (threadIdx.x < half) {
            const int64_t j = indices[threadIdx.x + half];
            if (j >= 0 && better(values[threadIdx.x + half], j, values[threadIdx.x], indices[threadIdx.x])) {
                values[threadIdx.x] = values[threadIdx.x + half];
                indices[threadIdx.x] = j;
            }
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) out[blockIdx.x] = indices[0] < 0 ? 0 : indices[0];
}

}  // namespace

void argmax_rows(const float* x, int64_t rows, int64_t n, int64_t* out, cudaStream_t stream) {
    ECF8_CHECK(n > 0 && rows >= 0, "argmax_rows: rows " << rows << ", n " << n);
    if (rows == 0) return;
    argmax_kernel<<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(x, n, out);
    CUDA_CHECK(cudaGetLastError());
}

}  // namespace ecf8::cuda
