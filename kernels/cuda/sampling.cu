// CUDA twin of kernels/cpu/sampling.h argmax_rows: one block per row, (value, index) reduced with the CPU's
// rule (larger value wins, lower index on ties), -1 for a row with a NaN or an infinity.
#include <cstdint>

#include "common/error.h"
#include "kernels/cuda/ops.cuh"

namespace ecf8::cuda {
namespace {

constexpr int kThreads = 256;

// Larger value wins, lower index on ties: the CPU's rule (the row holds no NaN when it is used).
__device__ bool better(float v, int64_t i, float best, int64_t best_i) {
    return best_i < 0 || v > best || (v == best && i < best_i);
}

// One block per row; row r is the concatenation of its `blocks` parts (kernels/cpu/sampling.h argmax_rows).
__global__ void argmax_kernel(const float* x, int64_t rows, int64_t blocks, int64_t block_len, int32_t* out) {
    __shared__ float values[kThreads];
    __shared__ int64_t indices[kThreads];
    __shared__ int finite;
    if (threadIdx.x == 0) finite = 1;
    __syncthreads();
    const int64_t r = blockIdx.x, n = blocks * block_len;
    float best = 0.0f;
    int64_t best_i = -1;
    bool mine_finite = true;
    for (int64_t i = threadIdx.x; i < n; i += kThreads) {
        const float v = x[((i / block_len) * rows + r) * block_len + i % block_len];
        mine_finite = mine_finite && isfinite(v);
        if (better(v, i, best, best_i)) best = v, best_i = i;
    }
    if (!mine_finite) finite = 0;  // a benign race: every writer writes 0
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
    if (threadIdx.x == 0) out[r] = finite ? static_cast<int32_t>(indices[0]) : -1;
}

}  // namespace

void argmax_rows(const float* x, int64_t rows, int64_t blocks, int64_t block_len, int32_t* out, cudaStream_t stream) {
    ECF8_CHECK(rows >= 0 && blocks > 0 && block_len > 0 && blocks * block_len <= INT32_MAX,
               "argmax_rows: rows " << rows << ", blocks " << blocks << ", block_len " << block_len);
    if (rows == 0) return;
    argmax_kernel<<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(x, rows, blocks, block_len, out);
    CUDA_CHECK(cudaGetLastError());
}

}  // namespace ecf8::cuda
