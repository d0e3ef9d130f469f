// DeepSeek-V3's FP8 linear on the CPU (act_quant + fp8_gemm of inference/kernel.py): activations are
// quantized to FP8 e4m3 per 1x128 block of each row, weights are FP8 e4m3 with one float scale_inv per
// 128x128 block, and y[T, out] = x[T, in] . W[out, in]^T is summed per 128-wide K block and scaled. The
// twin of kernels/cuda/fp8_gemm.cuh: the quantization core below is shared (ECF8_HD), so the CUDA
// quantization kernel writes the same bytes and scales; the GEMM is compared under a tolerance.
#pragma once

#include <cstdint>

#include "common/float_formats.h"
#include "common/hd.h"

namespace ecf8::cpu {

// ---------------------------------------------------------------------------------------------------
// Shared quantization core (host and device)

constexpr int64_t kFp8Block = 128;     // elements per activation block (and per weight block side)
constexpr float kFp8E4m3Max = 448.0f;  // largest finite e4m3fn value

// One step of a block's amax: max(m, |v|). A NaN v never wins (the comparison is false), so the amax of
// a block is the same whatever order its elements are visited in.
ECF8_HD float fp8_amax_step(float m, float v) {
    const float a = f32_from_bits(f32_to_bits(v) & 0x7FFFFFFFu);
    return a > m ? a : m;
}

// The scale of a block with absolute maximum amax: amax / 448 in float (act_quant). DeepSeek's kernel
// divides by zero for an all-zero block (0 / 0 = NaN bytes); ecf8 gives such a block scale 1 (its bytes
// are then all 0), as the repo's weight quantizer does. A positive amax so small that amax / 448
// underflows to 0 is treated the same way.
ECF8_HD float fp8_act_scale(float amax) {
#if defined(__CUDA_ARCH__)
    const float s = __fdiv_rn(amax, kFp8E4m3Max);
#else
    const float s = amax / kFp8E4m3Max;
#endif
    return s > 0.0f ? s : 1.0f;
}

// The e4m3 byte of x in a block of scale s: float_to_fp8_e4m3(x / s) (IEEE division, round to nearest
// even, saturating at +-448). A result of -0 is stored as +0 (0x00), never 0x80: the value is the same
// and equal inputs give equal bytes. Finite x never yields the NaN codes 0x7F / 0xFF.
ECF8_HD uint8_t fp8_act_quantize(float x, float s) {
#if defined(__CUDA_ARCH__)
    const uint8_t b = float_to_fp8_e4m3(__fdiv_rn(x, s));
#else
    const uint8_t b = float_to_fp8_e4m3(x / s);
#endif
    return b == 0x80u ? uint8_t{0} : b;
}

// ---------------------------------------------------------------------------------------------------
// CPU ops

// Quantizes x [rows, cols] (row-major, finite) per 1x128 block of each row: q [rows, cols] e4m3 bytes and
// scales [rows, scale_blocks(cols)] (row-major, DeepSeek's act_quant layout), scale = amax(|block|) / 448
// and q = fp8_act_quantize(x, scale). The last block of a row may be shorter than 128 (DeepSeek requires
// cols % 128 == 0; here a short block is quantized on its own). Each block's largest |x| maps to +-448.
void quantize_activations_fp8(const float* x, int64_t rows, int64_t cols, uint8_t* q, float* scales);

// y[T, out] = x . W^T from FP8 operands: xq [T, in] with x_scales [T, ceil(in / 128)] (as above) and w
// [out, in] e4m3 with w_scale_inv [ceil(out / 128), ceil(in / 128)] (DeepSeek's weight_scale_inv).
// Accumulation order, per output y[t, o]: for each K block kb in increasing order, the products
// fp8(xq) * fp8(w) (exact in float) are summed in float in 8 interleaved lanes (lane j takes the block's
// elements j, j + 8, ...), the lanes are combined as ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7)),
// and acc += (partial * x_scale) * w_scale, acc starting at 0 (fp8_gemm's accumulator += dot * a_s * b_s).
// The compiler may fuse that last multiply-add into an FMA, so the last bit can differ between builds.
void linear_fp8_block(const uint8_t* xq, const float* x_scales, const uint8_t* w, const float* w_scale_inv, float* y,
                      int64_t n_tokens, int64_t in, int64_t out);

}  // namespace ecf8::cpu
