// CUDA twins of kernels/cpu/mlp.h and embedding.h: SiLU-multiply, add, scaled add, vocab-parallel embedding;
// and the row moves of the GPU forward (BF16 widening, row gather, weighted scatter-add, rank-ordered sum).
#include <algorithm>

#include "common/error.h"
#include "common/float_formats.h"
#include "kernels/core/elementwise_core.h"
#include "kernels/cuda/ops.cuh"

namespace ecf8::cuda {
namespace {

constexpr int kThreads = 256;

unsigned blocks_for(int64_t n) {
    return static_cast<unsigned>(std::min<int64_t>((n + kThreads - 1) / kThreads, 1 << 20));
}

__global__ void silu_mul_kernel(const float* gate, const float* up, int64_t n, float* out) {
    for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x) {
        out[i] = core::silu_mul_one(gate[i], up[i]);
    }
}

__global__ void add_kernel(const float* a, const float* b, int64_t n, float* out) {
    for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x)
        out[i] = core::add_one(a[i], b[i]);
}

__global__ void bf16_to_float_kernel(const uint16_t* in, int64_t n, float* out) {
    for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x)
        out[i] = bf16_to_float(in[i]);
}

__global__ void gather_rows_kernel(const float* src, const int32_t* rows, int64_t n_rows, int64_t dim, float* out) {
    const int64_t total = n_rows * dim;
    for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total; i += int64_t{gridDim.x} * blockDim.x)
        out[i] = src[rows[i / dim] * dim + i % dim];
}

// Rows are distinct within one call (a token picks an expert once), so no two threads add into one element.
__global__ void scatter_add_scaled_rows_kernel(const float* y, const int32_t* rows, const float* scales, int64_t n_rows,
                                               int64_t dim, float* out) {
    const int64_t total = n_rows * dim;
    for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total; i += int64_t{gridDim.x} * blockDim.x) {
        const int64_t r = i / dim;
        float* dst = out + rows[r] * dim + i % dim;
        *dst = core::add_scaled_one(*dst, y[i], scales[r]);
    }
}

__global__ void embedding_kernel(const int32_t* tokens, int64_t n_tokens, const uint16_t* table, int64_t vocab_begin,
                                 int64_t vocab_end, int64_t dim, float* out) {
    const int64_t total = n_tokens * dim;
    for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total; i += int64_t{gridDim.x} * blockDim.x) {
        const int64_t t = i / dim, c = i % dim, id = tokens[t];
        out[i] = id >= vocab_begin && id < vocab_end ? bf16_to_float(table[(id - vocab_begin) * dim + c]) : 0.0f;
    }
}

}  // namespace

void silu_mul(const float* gate, const float* up, int64_t n, float* out, cudaStream_t stream) {
    if (n <= 0) return;
    silu_mul_kernel<<<blocks_for(n), kThreads, 0, stream>>>(gate, up, n, out);
    CUDA_CHECK(cudaGetLastError());
}

void add(const float* a, const float* b, int64_t n, float* out, cudaStream_t stream) {
    if (n <= 0) return;
    add_kernel<<<blocks_for(n), kThreads, 0, stream>>>(a, b, n, out);
    CUDA_CHECK(cudaGetLastError());
}

void widen_bf16(const uint16_t* in, int64_t n, float* out, cudaStream_t stream) {
    if (n <= 0) return;
    bf16_to_float_kernel<<<blocks_for(n), kThreads, 0, stream>>>(in, n, out);
    CUDA_CHECK(cudaGetLastError());
}

void gather_rows(const float* src, const int32_t* rows, int64_t n_rows, int64_t dim, float* out, cudaStream_t stream) {
    if (n_rows <= 0 || dim <= 0) return;
    gather_rows_kernel<<<blocks_for(n_rows * dim), kThreads, 0, stream>>>(src, rows, n_rows, dim, out);
    CUDA_CHECK(cudaGetLastError());
}

void scatter_add_scaled_rows(const float* y, const int32_t* rows, const float* scales, int64_t n_rows, int64_t dim,
                             float* out, cudaStream_t stream) {
    if (n_rows <= 0 || dim <= 0) return;
    scatter_add_scaled_rows_kernel<<<blocks_for(n_rows * dim), kThreads, 0, stream>>>(y, rows, scales, n_rows, dim,
                                                                                      out);
    CUDA_CHECK(cudaGetLastError());
}

void embedding_bf16(const int32_t* tokens, int64_t n_tokens, const uint16_t* table, int64_t vocab_begin,
                    int64_t vocab_end, int64_t dim, float* out, cudaStream_t stream) {
    ECF8_CHECK(dim > 0 && 0 <= vocab_begin && vocab_begin <= vocab_end,
               "embedding_bf16: dim " << dim << ", vocabulary part [" << vocab_begin << ", " << vocab_end << ")");
    if (n_tokens <= 0) return;
    embedding_kernel<<<blocks_for(n_tokens * dim), kThreads, 0, stream>>>(tokens, n_tokens, table, vocab_begin,
                                                                          vocab_end, dim, out);
    CUDA_CHECK(cudaGetLastError());
}

}  // namespace ecf8::cuda
