// Bit-exact conversions between float and the small float formats ecf8 stores: FP8 e4m3fn, FP8 e5m2,
// BF16 and F16. Header-only; every function is ECF8_HD, so the same code runs in CUDA kernels and in
// their CPU twins. All rounding is round-to-nearest-even on the integer bit patterns (no FPU rounding
// modes, no flush-to-zero), so host and device results are identical.
//
// Conventions, per format:
//   e4m3fn (PyTorch float8_e4m3fn, OCP "E4M3"): bias 7, no infinities, max finite 448 (0x7E),
//     NaN = 0x7F / 0xFF, smallest subnormal 2^-9. float -> e4m3 saturates: finite values beyond the
//     range and +-inf become +-448 (the behaviour of CUDA's __NV_SATFINITE conversion; note PyTorch's
//     plain .to(float8_e4m3fn) returns NaN instead). Any NaN becomes 0x7F (sign dropped).
//   e5m2 (PyTorch float8_e5m2): bias 15, IEEE-like with +-inf (0x7C) and NaNs, max finite 57344.
//     Overflow rounds to +-inf as in IEEE (values >= 61440 in magnitude).
//   bf16 / f16: IEEE-like, overflow to +-inf, subnormals kept.
//   NaN into e5m2 / bf16 / f16 keeps its sign and the top payload bits and sets the quiet bit, so
//   every quiet-NaN code round-trips; signalling-NaN codes come back with the quiet bit set.
//   -0 is preserved by every conversion.
#pragma once

#include <cstdint>
#include <cstring>

#include "common/hd.h"

namespace ecf8 {

// ---------------------------------------------------------------------------------------------------
// float <-> bits

ECF8_HD uint32_t f32_to_bits(float f) {
#if defined(__CUDA_ARCH__)
    return __float_as_uint(f);
#else
    uint32_t u;
    std::memcpy(&u, &f, sizeof(u));
    return u;
#endif
}

ECF8_HD float f32_from_bits(uint32_t u) {
#if defined(__CUDA_ARCH__)
    return __uint_as_float(u);
#else
    float f;
    std::memcpy(&f, &u, sizeof(f));
    return f;
#endif
}

namespace detail {

// Decodes the magnitude `code` (exponent << mbits | mantissa, no sign) of a finite value of a small
// IEEE-like format with `mbits` mantissa bits and exponent `bias` into float bits. Exact.
ECF8_HD uint32_t small_magnitude_to_f32_bits(uint32_t code, int mbits, int bias) {
    const uint32_t e = code >> mbits;
    const uint32_t m = code & ((1u << mbits) - 1u);
    if (e != 0) return ((e + 127u - static_cast<uint32_t>(bias)) << 23) | (m << (23 - mbits));
    // Subnormal: m * 2^(1 - bias - mbits); m < 2^mbits, so the product is exact and a normal float.
    const float unit = f32_from_bits(static_cast<uint32_t>(128 - bias - mbits) << 23);
    return f32_to_bits(static_cast<float>(m) * unit);
}

// Rounds a finite non-negative float, given by its bits `a` (sign cleared), to nearest even in a small
// IEEE-like format with `mbits` mantissa bits and exponent `bias`, with subnormals and an unbounded
// exponent range. Returns that format's magnitude code (exponent << mbits | mantissa); the caller
// handles codes beyond its largest finite value (saturate or infinity). A mantissa that rounds up
// carries into the exponent through the integer add, which is exactly what RNE needs.
ECF8_HD uint32_t f32_bits_to_small_magnitude(uint32_t a, int mbits, int bias) {
    const int fe = static_cast<int>(a >> 23);  // biased float exponent, 0..254
    const int te = fe - 127 + bias;            // biased target exponent
    uint32_t value;
    int shift;
    if (te >= 1) {
        value = (static_cast<uint32_t>(te) << 23) | (a & 0x7FFFFFu);
        shift = 23 - mbits;
    } else {
        // Subnormal in the target: value = mantissa (with hidden bit) * 2^(fe_eff - 150), expressed in
        // units of the target's smallest subnormal 2^(1 - bias - mbits).
        value = (a & 0x7FFFFFu) | (fe != 0 ? 0x800000u : 0u);
        const int fe_eff = fe != 0 ? fe : 1;
        shift = 151 - bias - mbits - fe_eff;  // >= 24 - mbits
        if (shift > 24) return 0;             // below half of the smallest subnormal (value < 2^24)
    }
    uint32_t code = value >> shift;
    const uint32_t rem = value & ((1u << shift) - 1u);
    const uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (code & 1u))) ++code;
    return code;
}

ECF8_HD bool f32_bits_is_nan(uint32_t u) { return (u & 0x7FFFFFFFu) > 0x7F800000u; }

}  // namespace detail

// ---------------------------------------------------------------------------------------------------
// FP8 e4m3fn

ECF8_HD float fp8_e4m3_to_float(uint8_t v) {
    const uint32_t sign = static_cast<uint32_t>(v & 0x80u) << 24;
    const uint32_t mag = v & 0x7Fu;
    if (mag == 0x7Fu) return f32_from_bits(sign | 0x7FC00000u);  // the only NaN pattern per sign
    return f32_from_bits(sign | detail::small_magnitude_to_f32_bits(mag, 3, 7));
}

// Round to nearest even; saturates to +-448 (also for +-inf); NaN -> 0x7F.
ECF8_HD uint8_t float_to_fp8_e4m3(float f) {
    const uint32_t u = f32_to_bits(f);
    if (detail::f32_bits_is_nan(u)) return 0x7F;
    const uint32_t sign = (u >> 24) & 0x80u;
    const uint32_t a = u & 0x7FFFFFFFu;
    uint32_t code = a >= 0x7F800000u ? 0x7Eu : detail::f32_bits_to_small_magnitude(a, 3, 7);
    if (code > 0x7Eu) code = 0x7Eu;
    return static_cast<uint8_t>(sign | code);
}

// ---------------------------------------------------------------------------------------------------
// FP8 e5m2

ECF8_HD float fp8_e5m2_to_float(uint8_t v) {
    const uint32_t sign = static_cast<uint32_t>(v & 0x80u) << 24;
    const uint32_t mag = v & 0x7Fu;
    if (mag >= 0x7Cu) return f32_from_bits(sign | 0x7F800000u | ((mag & 0x3u) << 21));  // inf / NaN
    return f32_from_bits(sign | detail::small_magnitude_to_f32_bits(mag, 2, 15));
}

// Round to nearest even; overflow to +-inf; NaN keeps sign and top payload bit, quiet bit set.
ECF8_HD uint8_t float_to_fp8_e5m2(float f) {
    const uint32_t u = f32_to_bits(f);
    const uint32_t sign = (u >> 24) & 0x80u;
    const uint32_t a = u & 0x7FFFFFFFu;
    if (a > 0x7F800000u) return static_cast<uint8_t>(sign | 0x7Eu | ((a >> 21) & 0x3u));
    uint32_t code = a == 0x7F800000u ? 0x7Cu : detail::f32_bits_to_small_magnitude(a, 2, 15);
    if (code > 0x7Cu) code = 0x7Cu;
    return static_cast<uint8_t>(sign | code);
}

// ---------------------------------------------------------------------------------------------------
// BF16

ECF8_HD float bf16_to_float(uint16_t v) { return f32_from_bits(static_cast<uint32_t>(v) << 16); }

// Round to nearest even; overflow to +-inf; NaN keeps sign and top payload bits, quiet bit set.
ECF8_HD uint16_t float_to_bf16(float f) {
    const uint32_t u = f32_to_bits(f);
    if (detail::f32_bits_is_nan(u)) return static_cast<uint16_t>((u >> 16) | 0x0040u);
    // Adding 0x7FFF plus the lowest kept bit rounds ties to even; a carry moves into the exponent
    // (up to infinity), and infinities stay infinities since their low half is zero.
    return static_cast<uint16_t>((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

// ---------------------------------------------------------------------------------------------------
// F16 (IEEE binary16)

ECF8_HD float f16_to_float(uint16_t v) {
    const uint32_t sign = static_cast<uint32_t>(v & 0x8000u) << 16;
    const uint32_t mag = v & 0x7FFFu;
    if (mag >= 0x7C00u) return f32_from_bits(sign | 0x7F800000u | ((mag & 0x3FFu) << 13));  // inf / NaN
    return f32_from_bits(sign | detail::small_magnitude_to_f32_bits(mag, 10, 15));
}

// Round to nearest even; subnormals kept; overflow to +-inf; NaN keeps sign and top payload bits,
// quiet bit set.
ECF8_HD uint16_t float_to_f16(float f) {
    const uint32_t u = f32_to_bits(f);
    const uint32_t sign = (u >> 16) & 0x8000u;
    const uint32_t a = u & 0x7FFFFFFFu;
    if (a > 0x7F800000u) return static_cast<uint16_t>(sign | 0x7E00u | ((a >> 13) & 0x3FFu));
    uint32_t code = a == 0x7F800000u ? 0x7C00u : detail::f32_bits_to_small_magnitude(a, 10, 15);
    if (code > 0x7C00u) code = 0x7C00u;
    return static_cast<uint16_t>(sign | code);
}

}  // namespace ecf8
