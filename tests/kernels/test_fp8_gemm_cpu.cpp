// The CPU FP8 linear (kernels/cpu/fp8_gemm.h): 1x128 activation quantization properties and the block-
// scaled GEMM against a float64 reference computed from the same dequantized FP8 values, on seeded random
// inputs (seeds printed). GEMM tolerance, per output: |y - ref| <= (128 + n_kblocks + 2) * 2^-24 * sum_k
// |x_k w_k| (the float rounding bound of the twin's order: <= 128 additions inside a block, one scale step
// and one accumulation per block), with a 1% margin.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "common/error.h"
#include "common/float_formats.h"
#include "kernels/cpu/fp8_gemm.h"
#include "tests/kernels/fp8_test_data.h"

namespace ecf8 {
namespace {

using cpu::kFp8Block;

// Activations with block magnitudes 2^-20 .. 2^20, and a checkpoint-like weight, each from its own seed.
std::vector<float> random_activations(int64_t rows, int64_t cols, uint64_t seed) {
    std::printf("seed %llu\n", static_cast<unsigned long long>(seed));
    std::mt19937_64 rng(seed);
    return test::block_scaled_activations(rows, cols, -20, 20, rng);
}

void random_weight(int64_t out, int64_t in, uint64_t seed, std::vector<uint8_t>& w, std::vector<float>& s) {
    std::printf("seed %llu\n", static_cast<unsigned long long>(seed));
    std::mt19937_64 rng(seed);
    test::checkpoint_like_weight(out, in, rng, w, s);
}

TEST(Fp8GemmCpu, QuantizationRoundTripProperties) {
    const int64_t rows = 13, cols = 1000;  // 7 full blocks and a 104-wide tail per row
    const std::vector<float> x = random_activations(rows, cols, 20261123);
    std::vector<uint8_t> q(x.size());
    std::vector<float> s(static_cast<size_t>(rows * test::fp8_blocks(cols)));
    cpu::quantize_activations_fp8(x.data(), rows, cols, q.data(), s.data());
    for (int64_t r = 0; r < rows; ++r) {
        for (int64_t kb = 0; kb < test::fp8_blocks(cols); ++kb) {
            const int64_t c0 = kb * kFp8Block, c1 = std::min(cols, c0 + kFp8Block);
            float amax = 0.0f;
            int64_t arg = c0;
            for (int64_t c = c0; c < c1; ++c) {
                if (std::fabs(x[r * cols + c]) > amax) {
                    amax = std::fabs(x[r * cols + c]);
                    arg = c;
                }
            }
            const float scale = s[static_cast<size_t>(r * test::fp8_blocks(cols) + kb)];
            ASSERT_EQ(scale, amax / 448.0f) << "row " << r << " block " << kb;
            EXPECT_EQ(q[r * cols + arg] & 0x7F, 0x7E) << "the block's amax maps to +-448, row " << r << " block " << kb;
            for (int64_t c = c0; c < c1; ++c) {
                const float xv = x[r * cols + c];
                const uint8_t b = q[r * cols + c];
                ASSERT_NE(b & 0x7F, 0x7F) << "NaN code at " << r << ", " << c;
                ASSERT_NE(b, 0x80) << "-0 at " << r << ", " << c;
                if (b != 0) {
                    ASSERT_EQ(b >> 7, xv < 0.0f ? 1 : 0) << "sign at " << r << ", " << c;
                }
                // Half an e4m3 ulp: 2^-4 relative for normals, 2^-10 (in units of the scale) for subnormals.
                const double err = std::fabs(double{fp8_e4m3_to_float(b)} * scale - xv);
                const double bound = std::max(std::fabs(double{xv}) * 0x1p-4, double{scale} * 0x1p-10) * (1 + 0x1p-20);
                ASSERT_LE(err, bound) << "x " << xv << " -> byte " << int{b} << " at " << r << ", " << c;
            }
        }
    }
}

TEST(Fp8GemmCpu, ZeroBlocksGetScaleOneAndZeroBytes) {
    const int64_t cols = 300;  // blocks of 128, 128 and 44
    std::vector<float> x(2 * cols, 0.0f);
    for (int64_t c = 128; c < 256; ++c) x[c] = -0.0f;  // a block of -0
    x[cols + 5] = 3.0f;                                // second row: one nonzero in block 0, zero blocks 1 and 2
    std::vector<uint8_t> q(x.size(), 0xAA);
    std::vector<float> s(2 * 3, -1.0f);
    cpu::quantize_activations_fp8(x.data(), 2, cols, q.data(), s.data());
    EXPECT_EQ(s, (std::vector<float>{1.0f, 1.0f, 1.0f, 3.0f / 448.0f, 1.0f, 1.0f}));
    for (int64_t i = 0; i < 2 * cols; ++i) {
        if (i == cols + 5) {
            EXPECT_EQ(q[i], 0x7E);
        } else {
            ASSERT_EQ(q[i], 0x00) << "byte " << i;
        }
    }
}

TEST(Fp8GemmCpu, LinearMatchesFloat64Reference) {
    struct Shape {
        int64_t t, in, out;
    };
    // A partial K block (1000) and partial out blocks (200, 400) included.
    const Shape shapes[] = {{1, 256, 128}, {7, 1000, 200}, {16, 2048, 400}, {3, 7168, 256}};
    uint64_t seed = 7000;
    for (const Shape& sh : shapes) {
        const std::vector<float> x = random_activations(sh.t, sh.in, ++seed);
        std::vector<uint8_t> xq(x.size()), w;
        std::vector<float> xs(static_cast<size_t>(sh.t * test::fp8_blocks(sh.in))), ws;
        cpu::quantize_activations_fp8(x.data(), sh.t, sh.in, xq.data(), xs.data());
        random_weight(sh.out, sh.in, ++seed, w, ws);
        std::vector<float> y(static_cast<size_t>(sh.t * sh.out));
        cpu::linear_fp8_block(xq.data(), xs.data(), w.data(), ws.data(), y.data(), sh.t, sh.in, sh.out);

        const int64_t nkb = test::fp8_blocks(sh.in);
        const double gamma = (kFp8Block + nkb + 2) * 0x1p-24 * 1.01;
        double worst = 0.0;
        for (int64_t t = 0; t < sh.t; ++t) {
            for (int64_t o = 0; o < sh.out; ++o) {
                double ref = 0.0, abs_sum = 0.0;
                for (int64_t k = 0; k < sh.in; ++k) {
                    const double a = double{fp8_e4m3_to_float(xq[t * sh.in + k])} * xs[t * nkb + k / kFp8Block];
                    const double b =
                        double{fp8_e4m3_to_float(w[o * sh.in + k])} * ws[(o / kFp8Block) * nkb + k / kFp8Block];
                    ref += a * b;
                    abs_sum += std::fabs(a * b);
                }
                const double err = std::fabs(y[t * sh.out + o] - ref);
                ASSERT_LE(err, gamma * abs_sum) << "T " << sh.t << " in " << sh.in << " out " << sh.out << " at (" << t
                                                << ", " << o << "): " << y[t * sh.out + o] << " vs " << ref;
                if (abs_sum > 0) worst = std::max(worst, err / abs_sum);
            }
        }
        std::printf("T %lld in %lld out %lld: max |y - ref| / sum|x w| = %.3g (bound %.3g)\n",
                    static_cast<long long>(sh.t), static_cast<long long>(sh.in), static_cast<long long>(sh.out), worst,
                    gamma);
    }
}

TEST(Fp8GemmCpu, RejectsBadArguments) {
    float x = 1.0f, s = 0.0f, y = 0.0f;
    uint8_t q = 0;
    EXPECT_THROW(cpu::quantize_activations_fp8(&x, -1, 1, &q, &s), Error);
    EXPECT_THROW(cpu::linear_fp8_block(&q, &s, &q, &s, &y, 1, 0, 1), Error);
    EXPECT_THROW(cpu::linear_fp8_block(&q, &s, nullptr, &s, &y, 1, 1, 1), Error);
    cpu::linear_fp8_block(nullptr, nullptr, &q, &s, nullptr, 0, 1, 1);  // no tokens: nothing to do
}

}  // namespace
}  // namespace ecf8
