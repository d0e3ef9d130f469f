// The per-element and per-row math of the forward's small ops, written once for the CPU loops (kernels/cpu)
// and their CUDA kernels (kernels/cuda): SiLU-multiply, add, scaled add, RMSNorm's scale and the RoPE
// rotation (FP8 and BF16 values come from common/float_formats.h on both sides). Plain operators only; the host
// compiles with -ffp-contract=off and the CUDA kernels with --fmad=false, so both sides round each operation once,
// identically. The RMSNorm sum of squares is a loop on the CPU and a block reduction on the GPU; both follow
// the order fixed below (kRmsPartials), so it matches too.
#pragma once

#include <cmath>
#include <cstdint>

#include "common/float_formats.h"
#include "common/hd.h"

namespace ecf8::core {

// silu(g) * u: silu in double, rounded to float, times u in float.
ECF8_HD float silu_mul_one(float gate, float up) {
    const double g = gate;
    const float s = static_cast<float>(g / (1.0 + exp(-g)));
    return s * up;
}

ECF8_HD float add_one(float a, float b) { return a + b; }

// acc + x * scale, the product rounded to float first (exact in double, so one float rounding).
ECF8_HD float add_scaled_one(float acc, float x, float scale) {
    const float prod = static_cast<float>(static_cast<double>(x) * scale);
    return acc + prod;
}

// RMSNorm's sum of squares has one order on every backend: kRmsPartials partial sums in double, partial l
// taking x[l], x[l + kRmsPartials], ... in turn, then added as a tree (partial[i] += partial[i + h] for
// h = kRmsPartials / 2, ..., 1). A float squared is exact in double and the sums are plain IEEE double adds,
// so the CPU loop and a CUDA block of kRmsPartials threads give the same bits.
inline constexpr int kRmsPartials = 256;

// RMSNorm's factor from the row's sum of squares: 1 / sqrt(float(ss / dim) + eps), rounded once from double.
ECF8_HD float rms_factor(double sum_squares, int64_t dim, float eps) {
    const float mean = static_cast<float>(sum_squares / static_cast<double>(dim));
    return static_cast<float>(1.0 / sqrt(static_cast<double>(mean + eps)));
}

// One normalized element: (x * r) * weight.
ECF8_HD float rms_scale_one(float x, float r, uint16_t weight_bf16) { return (x * r) * bf16_to_float(weight_bf16); }

// Rotates the pair (v[0], v[1]) by (c, s) as the complex product (a + ib)(c + is), each output evaluated in
// double and rounded once to float.
ECF8_HD void rotate_pair(float* v, double c, double s) {
    const double a = v[0], b = v[1];
    v[0] = static_cast<float>(a * c - b * s);
    v[1] = static_cast<float>(a * s + b * c);
}

}  // namespace ecf8::core
