// Test data for the FP8 block-scaled linear, shared by its CPU and CUDA tests (kernels/cpu/fp8_gemm.h).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "kernels/cpu/fp8_gemm.h"

namespace ecf8::test {

inline int64_t fp8_blocks(int64_t n) { return (n + cpu::kFp8Block - 1) / cpu::kFp8Block; }

// Rows of normal values whose magnitude is 2^e per 1x128 block, e uniform in [min_exp, max_exp], so the
// activation scales cover a wide range.
inline std::vector<float> block_scaled_activations(int64_t rows, int64_t cols, int min_exp, int max_exp,
                                                   std::mt19937_64& rng) {
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::uniform_int_distribution<int> exponent(min_exp, max_exp);
    std::vector<float> x(static_cast<size_t>(rows * cols));
    for (int64_t r = 0; r < rows; ++r) {
        for (int64_t kb = 0; kb < fp8_blocks(cols); ++kb) {
            const float mag = std::ldexp(1.0f, exponent(rng));
            for (int64_t c = kb * cpu::kFp8Block; c < std::min(cols, (kb + 1) * cpu::kFp8Block); ++c)
                x[static_cast<size_t>(r * cols + c)] = mag * normal(rng);
        }
    }
    return x;
}

// A weight [out, in] as a checkpoint holds it: finite e4m3 bytes (no NaN codes) and block scales
// 2^-14 .. 2^-6, one per 128x128 block.
inline void checkpoint_like_weight(int64_t out, int64_t in, std::mt19937_64& rng, std::vector<uint8_t>& w,
                                   std::vector<float>& s) {
    std::uniform_int_distribution<int> byte(0, 255);
    std::uniform_real_distribution<float> e(-14.0f, -6.0f);
    w.resize(static_cast<size_t>(out * in));
    for (uint8_t& b : w) {
        do b = static_cast<uint8_t>(byte(rng));
        while ((b & 0x7F) == 0x7F);
    }
    s.resize(static_cast<size_t>(fp8_blocks(out) * fp8_blocks(in)));
    for (float& v : s) v = std::exp2(e(rng));
}

}  // namespace ecf8::test
