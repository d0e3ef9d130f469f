// Seeded inputs and tolerances shared by the CPU kernel tests (test_kernels_cpu, test_moe_gate_cpu,
// test_sampling_cpu).
#pragma once

#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "common/float_formats.h"

namespace ecf8::test {

constexpr double kRel = 1e-5;
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

// Uniform floats in [-scale, scale), from the raw mt19937_64 stream (the same on every platform).
inline std::vector<float> uniform(size_t n, uint64_t seed, double scale = 1.0) {
    std::mt19937_64 rng(seed);
    std::vector<float> v(n);
    for (auto& x : v) x = static_cast<float>((static_cast<double>(rng() >> 11) * 0x1p-53 * 2.0 - 1.0) * scale);
    return v;
}

inline std::vector<uint16_t> to_bf16(const std::vector<float>& v) {
    std::vector<uint16_t> out(v.size());
    for (size_t i = 0; i < v.size(); ++i) out[i] = float_to_bf16(v[i]);
    return out;
}

}  // namespace ecf8::test
