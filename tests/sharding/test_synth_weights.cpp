// Tests of sharding/synth_weights: sampler moments and determinism, DeepSeek-V3 block FP8 quantization
// (scales, amax mapping, round-trip error) and the entropy measures. Prints the exponent entropies the
// codec is designed around.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

#include "common/error.h"
#include "common/float_formats.h"
#include "sharding/synth_weights.h"

namespace ecf8 {
namespace {

struct Moments {
    double mean = 0, std = 0, tail4 = 0;  // tail4: fraction with |x - mean| > 4 std
};

Moments moments(const std::vector<float>& x) {
    Moments m;
    double s = 0, s2 = 0;
    for (float v : x) s += v;
    m.mean = s / static_cast<double>(x.size());
    for (float v : x) s2 += (v - m.mean) * (v - m.mean);
    m.std = std::sqrt(s2 / static_cast<double>(x.size()));
    size_t tail = 0;
    for (float v : x) tail += std::fabs(v - m.mean) > 4 * m.std;
    m.tail4 = static_cast<double>(tail) / static_cast<double>(x.size());
    return m;
}

std::vector<float> draw(const SynthSpec& spec, size_t n) {
    std::vector<float> x(n);
    synth_float(spec, x.data(), n);
    return x;
}

uint64_t fnv1a(const void* data, size_t n) {
    uint64_t h = 0xCBF29CE484222325ull;
    const auto* p = static_cast<const uint8_t*>(data);
    for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001B3ull;
    return h;
}

// ---------------------------------------------------------------------------------------------------
// Draws

TEST(SynthWeights, GaussianAndStudentTHaveRequestedStd) {
    const size_t n = 1 << 20;
    for (WeightDist dist : {WeightDist::Gaussian, WeightDist::StudentT}) {
        for (double std : {0.02, 1.0}) {
            SynthSpec spec;
            spec.dist = dist;
            spec.std = std;
            spec.seed = 7;
            const Moments m = moments(draw(spec, n));
            std::printf("[ %s std %.3g seed %llu ] mean %.3g std %.5g tail>4std %.3g\n",
                        dist == WeightDist::Gaussian ? "gaussian" : "student-t(5)", std,
                        static_cast<unsigned long long>(spec.seed), m.mean, m.std, m.tail4);
            EXPECT_NEAR(m.std, std, 0.05 * std);
            EXPECT_NEAR(m.mean, 0.0, 0.01 * std);
            if (dist == WeightDist::Gaussian) {
                EXPECT_LT(m.tail4, 2e-4);  // 6.3e-5 expected
            } else {
                EXPECT_GT(m.tail4, 1e-3);  // t(5) at 4 std: about 3.6e-3
            }
        }
    }
}

TEST(SynthWeights, SameSeedSameBytes) {
    SynthSpec spec;
    spec.seed = 42;
    const size_t n = 200000;
    const std::vector<float> a = draw(spec, n), b = draw(spec, n);
    EXPECT_EQ(std::memcmp(a.data(), b.data(), n * sizeof(float)), 0);
    spec.seed = 43;
    const std::vector<float> c = draw(spec, n);
    EXPECT_NE(std::memcmp(a.data(), c.data(), n * sizeof(float)), 0);
    EXPECT_EQ(synth_bf16(n, spec), synth_bf16(n, spec));
    EXPECT_EQ(synth_fp8_block_quantized(256, 384, spec).weight, synth_fp8_block_quantized(256, 384, spec).weight);
}

// The stream is defined by the seed alone (portable sampler, no libm): pin its first bytes.
TEST(SynthWeights, StreamIsPinned) {
    for (WeightDist dist : {WeightDist::Gaussian, WeightDist::StudentT}) {
        SynthSpec spec;
        spec.dist = dist;
        spec.seed = 1;
        const std::vector<float> x = draw(spec, 4096);
        const uint64_t h = fnv1a(x.data(), x.size() * sizeof(float));
        std::printf("[ %s seed 1 ] first draws %.9g %.9g %.9g, fnv1a(4096 floats) %016llx\n",
                    dist == WeightDist::Gaussian ? "gaussian" : "student-t", x[0], x[1], x[2],
                    static_cast<unsigned long long>(h));
        EXPECT_EQ(h, dist == WeightDist::Gaussian ? 0xdf7808c7cd35cab2ull : 0x18a7756ca73a503cull);
    }
}

TEST(SynthWeights, RangeMatchesWholeStream) {
    for (WeightDist dist : {WeightDist::Gaussian, WeightDist::StudentT}) {
        SynthSpec spec;
        spec.dist = dist;
        spec.seed = 3;
        const std::vector<float> all = draw(spec, 4 * 65536 + 17);
        for (size_t first : {size_t{0}, size_t{1}, size_t{65530}, size_t{65536}, size_t{131071}}) {
            std::vector<float> part(70000);
            synth_float_range(spec, first, part.data(), part.size());
            EXPECT_EQ(std::memcmp(part.data(), all.data() + first, part.size() * sizeof(float)), 0) << first;
        }
    }
}

TEST(SynthWeights, BadSpecThrows) {
    SynthSpec spec;
    spec.student_dof = 2.0;
    float x[4];
    EXPECT_THROW(synth_float(spec, x, 4), Error);
    spec.student_dof = 5.0;
    spec.std = 0.0;
    EXPECT_THROW(synth_float(spec, x, 4), Error);
}

// ---------------------------------------------------------------------------------------------------
// Block FP8

// One e4m3 ulp at the scaled value x = w / scale_inv: 2^(floor(log2 |x|) - 3), or 2^-9 among subnormals.
double e4m3_ulp(double x) {
    if (std::fabs(x) < std::ldexp(1.0, -6)) return std::ldexp(1.0, -9);
    int e = 0;
    std::frexp(x, &e);  // |x| in [2^(e-1), 2^e)
    return std::ldexp(1.0, e - 1 - 3);
}

void check_block_quantization(const std::vector<float>& w, int64_t rows, int64_t cols) {
    const int64_t nbr = fp8_scale_blocks(rows), nbc = fp8_scale_blocks(cols);
    std::vector<uint8_t> q(w.size());
    std::vector<float> s(static_cast<size_t>(nbr * nbc)), back(w.size());
    quantize_fp8_block(w.data(), rows, cols, q.data(), s.data());
    dequantize_fp8_block(q.data(), s.data(), rows, cols, back.data());
    std::vector<float> block_max(s.size(), 0.0f);
    for (int64_t r = 0; r < rows; ++r) {
        for (int64_t c = 0; c < cols; ++c) {
            const size_t i = static_cast<size_t>(r * cols + c);
            const size_t b = static_cast<size_t>((r / 128) * nbc + c / 128);
            const float v = fp8_e4m3_to_float(q[i]);
            ASSERT_FALSE(std::isnan(v)) << r << "," << c;
            block_max[b] = std::max(block_max[b], std::fabs(v));
            const double tol = e4m3_ulp(w[i] / s[b]) * s[b];
            ASSERT_LE(std::fabs(static_cast<double>(back[i]) - w[i]), tol) << r << "," << c << " w=" << w[i];
        }
    }
    for (size_t b = 0; b < s.size(); ++b) {
        EXPECT_GE(block_max[b], 240.0f) << "block " << b;
        EXPECT_LE(block_max[b], 448.0f) << "block " << b;
    }
}

TEST(SynthWeights, BlockQuantizedStudentTLooksLikeDeepSeekV3) {
    SynthSpec spec;  // Student-t(5), std 0.02
    spec.seed = 11;
    const int64_t rows = 1024, cols = 1024;
    const Fp8BlockQuantized t = synth_fp8_block_quantized(rows, cols, spec);
    ASSERT_EQ(t.weight.size(), static_cast<size_t>(rows * cols));
    ASSERT_EQ(t.scale_inv.size(), 64u);
    const double h = exponent_entropy_bits(DType::F8_E4M3, t.weight.data(), t.weight.size());
    const double hb = byte_entropy_bits(t.weight.data(), t.weight.size());
    std::printf(
        "[ e4m3 block-quantized student-t(5) 1024x1024 seed 11 ] exponent entropy %.4f bits, "
        "byte entropy %.4f bits\n",
        h, hb);
    EXPECT_GE(h, 2.3);
    EXPECT_LE(h, 3.2);

    std::vector<float> w(t.weight.size());
    synth_float(spec, w.data(), w.size());
    check_block_quantization(w, rows, cols);
}

TEST(SynthWeights, BlockQuantizedGaussianEntropy) {
    SynthSpec spec;
    spec.dist = WeightDist::Gaussian;
    spec.seed = 11;
    const Fp8BlockQuantized t = synth_fp8_block_quantized(1024, 1024, spec);
    const double h = exponent_entropy_bits(DType::F8_E4M3, t.weight.data(), t.weight.size());
    const double hb = byte_entropy_bits(t.weight.data(), t.weight.size());
    std::printf(
        "[ e4m3 block-quantized gaussian 1024x1024 seed 11 ] exponent entropy %.4f bits, "
        "byte entropy %.4f bits\n",
        h, hb);
    EXPECT_GE(h, 2.0);
    EXPECT_LE(h, 3.2);
}

TEST(SynthWeights, BlockQuantizationOfRaggedShapes) {
    SynthSpec spec;
    spec.seed = 5;
    const int64_t rows = 200, cols = 300;  // 2 x 3 scale blocks, the last ones partial
    std::vector<float> w(static_cast<size_t>(rows * cols));
    synth_float(spec, w.data(), w.size());
    check_block_quantization(w, rows, cols);

    // An all-zero block gets scale_inv 1 and zero bytes.
    std::fill(w.begin(), w.end(), 0.0f);
    w[0] = 1.0f;
    std::vector<uint8_t> q(w.size());
    std::vector<float> s(6);
    quantize_fp8_block(w.data(), rows, cols, q.data(), s.data());
    EXPECT_EQ(s[0], 1.0f / 448.0f);
    EXPECT_EQ(q[0], 0x7E);
    for (size_t b = 1; b < 6; ++b) EXPECT_EQ(s[b], 1.0f) << b;
    EXPECT_EQ(q[1], 0x00);
}

// ---------------------------------------------------------------------------------------------------
// Other dtypes and entropy

TEST(SynthWeights, OtherDtypesAreRoundedDraws) {
    SynthSpec spec;
    spec.seed = 9;
    const size_t n = 100000;
    const std::vector<float> w = draw(spec, n);
    const std::vector<uint16_t> bf = synth_bf16(n, spec), h = synth_f16(n, spec);
    const std::vector<uint8_t> e5 = synth_fp8_e5m2(n, spec);
    for (size_t i = 0; i < n; ++i) {
        ASSERT_EQ(bf[i], float_to_bf16(w[i])) << i;
        ASSERT_EQ(h[i], float_to_f16(w[i])) << i;
        ASSERT_EQ(e5[i], float_to_fp8_e5m2(static_cast<float>(w[i] / spec.std))) << i;
    }
}

TEST(SynthWeights, ExponentEntropies) {
    const size_t n = 1 << 20;
    for (WeightDist dist : {WeightDist::Gaussian, WeightDist::StudentT}) {
        SynthSpec spec;
        spec.dist = dist;
        spec.seed = 13;
        const char* name = dist == WeightDist::Gaussian ? "gaussian" : "student-t(5)";
        const std::vector<uint16_t> bf = synth_bf16(n, spec), h = synth_f16(n, spec);
        const std::vector<uint8_t> e5 = synth_fp8_e5m2(n, spec);
        const double h_bf = exponent_entropy_bits(DType::BF16, bf.data(), n);
        const double h_f16 = exponent_entropy_bits(DType::F16, h.data(), n);
        const double h_e5 = exponent_entropy_bits(DType::F8_E5M2, e5.data(), n);
        std::printf("[ %s std 0.02, 2^20 values, seed 13 ] exponent entropy: bf16 %.4f f16 %.4f e5m2 %.4f bits\n", name,
                    h_bf, h_f16, h_e5);
        // A smooth unimodal law spreads over a handful of binades: between 2 and 3.5 bits in all formats.
        for (double v : {h_bf, h_f16, h_e5}) {
            EXPECT_GT(v, 2.0);
            EXPECT_LT(v, 3.5);
        }
    }
}

TEST(SynthWeights, EntropyEdgeCases) {
    std::vector<uint8_t> all(256);
    for (int i = 0; i < 256; ++i) all[static_cast<size_t>(i)] = static_cast<uint8_t>(i);
    EXPECT_DOUBLE_EQ(byte_entropy_bits(all.data(), all.size()), 8.0);
    EXPECT_DOUBLE_EQ(exponent_entropy_bits(DType::F8_E4M3, all.data(), all.size()), 4.0);
    EXPECT_DOUBLE_EQ(exponent_entropy_bits(DType::F8_E5M2, all.data(), all.size()), 5.0);
    const std::vector<uint8_t> same(1000, 0x38);
    EXPECT_DOUBLE_EQ(byte_entropy_bits(same.data(), same.size()), 0.0);
    EXPECT_DOUBLE_EQ(byte_entropy_bits(nullptr, 0), 0.0);
    std::vector<uint16_t> halves = {0x3F80, 0x4000};  // bf16 1.0 and 2.0: two exponents
    EXPECT_DOUBLE_EQ(exponent_entropy_bits(DType::BF16, halves.data(), halves.size()), 1.0);
    EXPECT_THROW(exponent_entropy_bits(DType::I32, all.data(), 4), Error);
}

}  // namespace
}  // namespace ecf8
