// Linear layers on the CPU: y = x W^T, mirroring linear() of DeepSeek-V3's inference/model.py with
// gemm_impl "bf16" (FP8 weights dequantized as weight_dequant of inference/kernel.py does), in float32
// through dot_gemm (kernels/cpu/dot_gemm.h), which converts the weight a few rows at a time.
//
// Determinism: dot_gemm sums every output in one fixed order that depends only on in_features, so a row's
// result is bit for bit the same whatever other rows share the call (batch invariance), whatever slice of
// the weight is passed and whatever the thread count. cpu_blas_init(threads) sets the threads of the linear
// layers (a pool that splits the weight rows) and of OpenBLAS (which the attention's per-token products use).
#pragma once

#include <cstdint>

namespace ecf8::cpu {

// Sets the threads of the linear layers and of OpenBLAS (default 1). The linear functions call it with 1 on
// first use unless it was called before. Not to be called while a linear layer runs.
void cpu_blas_init(int threads = 1);

// Calls cpu_blas_init(1) unless cpu_blas_init was called before. Every op that calls OpenBLAS or a linear
// layer runs it first.
void cpu_blas_ensure_init();

// Number of scale blocks along a dimension of n elements with `block` elements per block: ceil(n / block).
inline int64_t scale_blocks(int64_t n, int64_t block = 128) { return (n + block - 1) / block; }

// out[r, c] = fp8_e4m3(w[r, c]) * scale_inv[r / block, c / block], in float (weight_dequant of kernel.py).
// w is rows x cols row-major; scale_inv is scale_blocks(rows) x scale_blocks(cols) row-major. A tensor-
// parallel part of a weight is such a matrix itself when it is cut at block boundaries: pass the part's
// rows (or columns) and the matching rows (or columns) of the scale, made contiguous.
void dequantize_fp8_block_to_float(const uint8_t* w, const float* scale_inv, int64_t rows, int64_t cols, float* out,
                                   int64_t block = 128);

// out[i] = bf16(w[i]) as float, for i in [0, n).
void bf16_to_float_array(const uint16_t* w, int64_t n, float* out);

// y[T, out_features] = x[T, in_features] . w^T with a float weight w [out_features, in_features] (row-major).
void linear_f32(const float* x, const float* w, float* y, int64_t n_tokens, int64_t in_features, int64_t out_features);

// As linear_f32 with a BF16 weight; w_scratch (out_features * in_features floats, of which dot_gemm uses a
// few rows) holds the converted rows.
void linear_bf16(const float* x, const uint16_t* w, float* w_scratch, float* y, int64_t n_tokens, int64_t in_features,
                 int64_t out_features);

// As linear_f32 with a block-quantized FP8 e4m3 weight and its F32 scale_inv
// [scale_blocks(out_features), scale_blocks(in_features)], converted a few rows at a time into w_scratch
// (out_features * in_features floats) to the values dequantize_fp8_block_to_float gives; linear_f32 on a
// dequantized copy gives the same bits.
void linear_fp8(const float* x, const uint8_t* w, const float* scale_inv, float* w_scratch, float* y, int64_t n_tokens,
                int64_t in_features, int64_t out_features, int64_t block = 128);

}  // namespace ecf8::cpu
