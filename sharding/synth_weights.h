// Synthetic, realistic test weights: Gaussian or Student-t draws, stored as F32, BF16, F16, FP8 e5m2 or
// as DeepSeek-V3-style block-quantized FP8 e4m3 (128x128 blocks with F32 weight_scale_inv), plus the
// entropy measures the codec is designed around.
//
// Every generator is deterministic for a given seed on every platform: std::mt19937_64 feeds our own
// polar (Marsaglia) normal and polar (Bailey) Student-t samplers, built from IEEE basic operations and
// a home-made log/exp, never std::normal_distribution or libm transcendental functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "codec/dtype.h"

namespace ecf8 {

// ---------------------------------------------------------------------------------------------------
// Draws

enum class WeightDist { Gaussian, StudentT };

struct SynthSpec {
    WeightDist dist = WeightDist::StudentT;
    double std = 0.02;         // standard deviation of the drawn values (the t draws are rescaled to it)
    double student_dof = 5.0;  // degrees of freedom of the Student-t; must be > 2 for a finite std
    uint64_t seed = 0;
};

// Fills out[0..n) with zero-mean draws of spec.dist with standard deviation spec.std.
void synth_float(const SynthSpec& spec, float* out, size_t n);

// Elements [first, first + n) of the same stream: synth_float_range(spec, k, out, m) equals elements
// k..k+m of synth_float(spec, ..., k + m), so shards of one tensor can be drawn independently.
void synth_float_range(const SynthSpec& spec, size_t first, float* out, size_t n);

// ---------------------------------------------------------------------------------------------------
// DeepSeek-V3 block FP8: weight_bf16 = fp8_value * scale_inv of its 128x128 block.

constexpr int64_t kFp8BlockSize = 128;

struct Fp8BlockQuantized {
    std::vector<uint8_t> weight;   // rows*cols e4m3 bytes, row-major
    std::vector<float> scale_inv;  // ceil(rows/128) x ceil(cols/128), row-major
    int64_t rows = 0;
    int64_t cols = 0;
};

// Number of scale blocks along a dimension of `n` elements: ceil(n / 128).
inline int64_t fp8_scale_blocks(int64_t n) { return (n + kFp8BlockSize - 1) / kFp8BlockSize; }

// Quantizes w (rows x cols, row-major, finite) per 128x128 block as DeepSeek-V3's weight_quant does:
// scale_inv = amax(|block|) / 448 in float, q = float_to_fp8_e4m3(w / scale_inv). An all-zero block
// gets scale_inv 1. q holds rows*cols bytes; scale_inv holds fp8_scale_blocks(rows)*fp8_scale_blocks(cols).
void quantize_fp8_block(const float* w, int64_t rows, int64_t cols, uint8_t* q, float* scale_inv);

// out = fp8_e4m3_to_float(q) * scale_inv of its block (the inverse of quantize_fp8_block up to rounding).
void dequantize_fp8_block(const uint8_t* q, const float* scale_inv, int64_t rows, int64_t cols, float* out);

// Draws rows*cols floats with synth_float and quantizes them with quantize_fp8_block.
Fp8BlockQuantized synth_fp8_block_quantized(int64_t rows, int64_t cols, const SynthSpec& spec);

// ---------------------------------------------------------------------------------------------------
// Other stored dtypes (round to nearest even from the float draws)

// BF16 and F16 keep the draws' scale (spec.std), as unscaled checkpoint weights do; with std 0.02 only
// the values nearest zero, |w| < 2^-14 (about 0.25% of them), land in F16 subnormals and nothing overflows.
std::vector<uint16_t> synth_bf16(size_t n, const SynthSpec& spec);
std::vector<uint16_t> synth_f16(size_t n, const SynthSpec& spec);

// E5M2 has only 5 exponent bits (normal range 2^-14 .. 57344), so the draws are divided by spec.std
// first, as a per-tensor scale would: the stored values have unit std, their bulk sits near 2^0 and
// neither end of the exponent range is clipped (only |v| < 2^-14, about 5e-5 of unit-std draws, becomes
// subnormal or zero; Student-t tails stay far below 57344).
std::vector<uint8_t> synth_fp8_e5m2(size_t n, const SynthSpec& spec);

// ---------------------------------------------------------------------------------------------------
// Entropy

// Shannon entropy, in bits per element, of the exponent field of n elements of dtype dt:
// F8_E4M3 bits 6..3, F8_E5M2 bits 6..2, BF16 bits 14..7, F16 bits 14..10, F32 bits 30..23.
// Throws ecf8::Error for other dtypes. Returns 0 for n == 0.
double exponent_entropy_bits(DType dt, const void* data, size_t n);

// Shannon entropy of a byte stream, in bits per byte. Returns 0 for n == 0.
double byte_entropy_bits(const uint8_t* data, size_t n);

}  // namespace ecf8
