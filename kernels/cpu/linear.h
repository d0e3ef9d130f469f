// Linear layers on the CPU: y = x W^T, mirroring linear() of DeepSeek-V3's inference/model.py with
// gemm_impl "bf16" (FP8 weights are dequantized by weight_dequant of inference/kernel.py first), in float32
// through OpenBLAS cblas_sgemm.
//
// Threading and determinism: the first linear call (or cpu_blas_init) sets OpenBLAS to one thread, so
// every result is bit-reproducible for the same inputs and MPI ranks sharing cores do not oversubscribe.
// The product itself follows OpenBLAS's summation order, not a fixed one: a different n_tokens, a slice of
// the weight or another BLAS build may change the last bits.
#pragma once

#include <cstdint>

namespace ecf8::cpu {

// Sets the number of OpenBLAS threads (default 1: deterministic). The linear functions call it with 1 on
// first use unless it was called before; call it again with more threads only where results may vary.
void cpu_blas_init(int threads = 1);

// Calls cpu_blas_init(1) unless cpu_blas_init was called before. Every op that calls OpenBLAS runs it first.
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

// As linear_f32 with a BF16 weight, converted into w_scratch (out_features * in_features floats) first.
void linear_bf16(const float* x, const uint16_t* w, float* w_scratch, float* y, int64_t n_tokens, int64_t in_features,
                 int64_t out_features);

// As linear_f32 with a block-quantized FP8 e4m3 weight and its F32 scale_inv
// [scale_blocks(out_features), scale_blocks(in_features)], dequantized into w_scratch (out_features *
// in_features floats) with dequantize_fp8_block_to_float. To reuse a dequantized weight, dequantize once and
// call linear_f32.
void linear_fp8(const float* x, const uint8_t* w, const float* scale_inv, float* w_scratch, float* y, int64_t n_tokens,
                int64_t in_features, int64_t out_features, int64_t block = 128);

}  // namespace ecf8::cpu
