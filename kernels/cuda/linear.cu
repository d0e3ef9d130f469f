// CUDA twins of kernels/cpu/linear.h: FP8 128x128 block dequantization and the FP32 GEMM (cuBLAS), and for
// steps of few tokens the one-warp-per-column linear (linear_few.cuh) that reads each weight once.
#include <algorithm>

#include "common/error.h"
#include "common/float_formats.h"
#include "kernels/cuda/linear_few.cuh"
#include "kernels/cuda/ops.cuh"

namespace ecf8::cuda {
namespace {

__global__ void dequant_kernel(const uint8_t* w, const float* scale_inv, int64_t rows, int64_t cols, int64_t block,
                               int64_t scale_cols, float* out) {
    const int64_t total = rows * cols;
    for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total; i += int64_t{gridDim.x} * blockDim.x) {
        const int64_t r = i / cols, c = i % cols;
        out[i] = fp8_e4m3_to_float(w[i]) * scale_inv[(r / block) * scale_cols + c / block];
    }
}

}  // namespace

void dequantize_fp8_block_to_float(const uint8_t* w, const float* scale_inv, int64_t rows, int64_t cols, float* out,
                                   int64_t block, cudaStream_t stream) {
    ECF8_CHECK(rows >= 0 && cols >= 0 && block > 0,
               "dequantize_fp8_block_to_float: rows " << rows << ", cols " << cols << ", block " << block);
    if (rows == 0 || cols == 0) return;
    const unsigned blocks = static_cast<unsigned>(std::min<int64_t>((rows * cols + 255) / 256, 1 << 20));
    dequant_kernel<<<blocks, 256, 0, stream>>>(w, scale_inv, rows, cols, block, (cols + block - 1) / block, out);
    CUDA_CHECK(cudaGetLastError());
}

bool linear_few_rows(const uint8_t* w, const float* scale_inv, bool fp8, int64_t block, int64_t out_features,
                     int64_t in_features, const float* x, int64_t n_tokens, float* y, cudaStream_t stream) {
    ECF8_CHECK(out_features > 0 && in_features > 0 && n_tokens >= 0 && (!fp8 || (block > 0 && scale_inv)),
               "linear_few_rows: " << out_features << " x " << in_features << " weights, block " << block << ", "
                                   << n_tokens << " tokens");
    if (n_tokens > kFewRowsBound || !few_rows_fit(&w, 1, fp8, block, in_features, x)) return false;
    if (n_tokens == 0) return true;
    ExpertMatrices m{};
    m.w[0] = w;
    m.scale_inv[0] = scale_inv;
    const dim3 grid(static_cast<unsigned>((out_features + kFewWarps - 1) / kFewWarps), 1);
    const auto kernel = fp8 ? linear_few_kernel<true, DenseRows> : linear_few_kernel<false, DenseRows>;
    kernel<<<grid, kFewWarps * 32, 0, stream>>>(m, fp8 ? block : 1, out_features, in_features, x, DenseRows{n_tokens},
                                                y);
    CUDA_CHECK(cudaGetLastError());
    return true;
}

Sgemm::Sgemm() {
    CUBLAS_CHECK(cublasCreate(&handle_));
    CUBLAS_CHECK(cublasSetMathMode(handle_, CUBLAS_PEDANTIC_MATH));  // true FP32, as the CPU path
}

Sgemm::~Sgemm() { cublasDestroy(handle_); }

void Sgemm::linear_f32(const float* x, const float* w, float* y, int64_t n_tokens, int64_t in_features,
                       int64_t out_features, cudaStream_t stream) {
    if (n_tokens == 0 || out_features == 0) return;
    CUBLAS_CHECK(cublasSetStream(handle_, stream));
    const float one = 1.0f, zero = 0.0f;
    // Row-major y[T, out] is column-major y^T[out, T] = w[out, in] . x^T[in, T]; w row-major is w^T column-major.
    CUBLAS_CHECK(cublasSgemm(handle_, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(out_features),
                             static_cast<int>(n_tokens), static_cast<int>(in_features), &one, w,
                             static_cast<int>(in_features), x, static_cast<int>(in_features), &zero, y,
                             static_cast<int>(out_features)));
}

}  // namespace ecf8::cuda
