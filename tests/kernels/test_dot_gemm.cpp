// The batch-invariant GEMM (kernels/cpu/dot_gemm.h) on seeded random inputs (seeds printed):
//   - against a float64 reference of x . wf^T, per output |y - ref| <= (k / 8 + 4) * 2^-24 * sum_k |x_k wf_k|
//     (the float rounding bound of the contract's order: at most ceil(k / 8) fma steps per lane and three
//     additions in the tree), with a 1% margin;
//   - bit for bit against the order contract written out here in plain C++ (8 fma lanes, fixed tree);
//   - bit for bit across batch sizes, weight-row subsets, thread pools and the AVX2 / scalar paths;
//   - decode-sized calls (fused conversion) with NaN bytes and huge scales, against the contract;
//   - the weight conversion over all 256 FP8 bytes and many scales, bit for bit;
//   - argument errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "common/error.h"
#include "common/float_formats.h"
#include "common/thread_pool.h"
#include "kernels/cpu/dot_gemm.h"
#include "kernels/cpu/linear.h"

namespace {

using namespace ecf8::cpu;

std::mt19937_64 seeded(uint64_t seed) {
    std::printf("seed %llu\n", static_cast<unsigned long long>(seed));
    return std::mt19937_64(seed);
}

float uniform(std::mt19937_64& rng, double scale) {
    return static_cast<float>((static_cast<double>(rng() >> 11) * 0x1p-53 * 2.0 - 1.0) * scale);
}

std::vector<float> uniform_vec(size_t n, std::mt19937_64& rng, double scale = 1.0) {
    std::vector<float> v(n);
    for (auto& x : v) x = uniform(rng, scale);
    return v;
}

std::vector<uint32_t> bits(const std::vector<float>& v) {
    std::vector<uint32_t> out(v.size());
    for (size_t i = 0; i < v.size(); ++i) out[i] = ecf8::f32_to_bits(v[i]);
    return out;
}

// A random weight [n_out, k] in one of the stored types, with its float values computed independently of
// dot_gemm (FP8 through dequantize_fp8_block_to_float, the contract's definition).
struct TestWeight {
    DotWeightType type;
    int64_t n_out, k, block;
    std::vector<float> f32, scale, wf;
    std::vector<uint16_t> bf16;
    std::vector<uint8_t> fp8;

    TestWeight(DotWeightType t, int64_t n, int64_t kk, int64_t blk, std::mt19937_64& rng)
        : type(t), n_out(n), k(kk), block(blk) {
        const size_t count = static_cast<size_t>(n * kk);
        if (t == DotWeightType::F32) {
            wf = f32 = uniform_vec(count, rng);
        } else if (t == DotWeightType::BF16) {
            for (float v : uniform_vec(count, rng)) bf16.push_back(ecf8::float_to_bf16(v));
            for (uint16_t b : bf16) wf.push_back(ecf8::bf16_to_float(b));
        } else {
            for (size_t i = 0; i < count; ++i) {
                const auto b = static_cast<uint8_t>(rng());
                fp8.push_back((b & 0x7F) == 0x7F ? 0 : b);  // no NaN weights in numeric tests
            }
            scale.resize(static_cast<size_t>(scale_blocks(n, blk) * scale_blocks(kk, blk)));
            for (auto& s : scale) s = std::ldexp(1.0f + 0.5f * uniform(rng, 1.0), -8 - static_cast<int>(rng() % 4));
            wf.resize(count);
            dequantize_fp8_block_to_float(fp8.data(), scale.data(), n, kk, wf.data(), blk);
        }
    }

    DotWeight view() const {
        DotWeight w;
        w.type = type;
        w.data = type == DotWeightType::F32    ? static_cast<const void*>(f32.data())
                 : type == DotWeightType::BF16 ? static_cast<const void*>(bf16.data())
                                               : static_cast<const void*>(fp8.data());
        w.scale_inv = scale.data();
        w.block = block;
        return w;
    }
};

std::vector<float> run(const DotWeight& w, const std::vector<float>& x, int64_t m, int64_t k, int64_t n_out,
                       ecf8::ThreadPool* pool = nullptr) {
    const size_t need = dot_gemm_scratch_floats(m, k, n_out, pool);
    EXPECT_LE(need, static_cast<size_t>(n_out * k));
    std::vector<float> scratch(need), y(static_cast<size_t>(m * n_out), -1.0f);
    dot_gemm(x.data(), m, k, w, n_out, y.data(), need == 0 ? nullptr : scratch.data(), pool);
    return y;
}

std::vector<float> run(const TestWeight& tw, const std::vector<float>& x, int64_t m, ecf8::ThreadPool* pool = nullptr) {
    return run(tw.view(), x, m, tw.k, tw.n_out, pool);
}

// The order contract of dot_gemm.h, spelled out.
float contract_dot(const float* x, const float* w, int64_t k) {
    float lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int64_t c = 0; c < k; ++c) lane[c % 8] = std::fma(x[c], w[c], lane[c % 8]);
    return ((lane[0] + lane[4]) + (lane[2] + lane[6])) + ((lane[1] + lane[5]) + (lane[3] + lane[7]));
}

struct Case {
    DotWeightType type;
    int64_t block;
    const char* name;
};
const Case kCases[] = {{DotWeightType::F32, 128, "f32"},
                       {DotWeightType::BF16, 128, "bf16"},
                       {DotWeightType::FP8, 128, "fp8/128"},
                       {DotWeightType::FP8, 12, "fp8/12"},
                       {DotWeightType::FP8, 4, "fp8/4"}};

// Runs fn under both paths (the scalar one only where the AVX2 one is not available).
template <class F>
void for_each_path(const F& fn) {
    const bool avx2 = dot_gemm_uses_avx2();
    fn(avx2 ? "avx2" : "scalar");
    if (avx2) {
        dot_gemm_force_scalar(true);
        fn("scalar");
        dot_gemm_force_scalar(false);
    }
}

TEST(DotGemm, MatchesDoubleReferenceAndContract) {
    auto rng = seeded(101);
    const int64_t ks[] = {1, 3, 7, 8, 9, 17, 63, 129, 300, 515, 1100};
    const int64_t ns[] = {1, 3, 5, 37};
    for (const Case& cs : kCases) {
        for (int64_t k : ks) {
            for (int64_t n : ns) {
                const int64_t m = 1 + static_cast<int64_t>(rng() % 5);
                const TestWeight tw(cs.type, n, k, cs.block, rng);
                const auto x = uniform_vec(static_cast<size_t>(m * k), rng, 4.0);
                for_each_path([&](const char* path) {
                    SCOPED_TRACE(testing::Message()
                                 << cs.name << " " << path << " m " << m << " k " << k << " n " << n);
                    const auto y = run(tw, x, m);
                    for (int64_t i = 0; i < m; ++i) {
                        for (int64_t j = 0; j < n; ++j) {
                            double ref = 0.0, mag = 0.0;
                            for (int64_t c = 0; c < k; ++c) {
                                const double p = static_cast<double>(x[i * k + c]) * tw.wf[j * k + c];
                                ref += p;
                                mag += std::fabs(p);
                            }
                            const float got = y[i * n + j];
                            ASSERT_NEAR(got, ref, 1.01 * (k / 8.0 + 4) * 0x1p-24 * mag + 1e-30) << i << "," << j;
                            const float want = contract_dot(&x[i * k], &tw.wf[j * k], k);
                            ASSERT_EQ(ecf8::f32_to_bits(got), ecf8::f32_to_bits(want)) << i << "," << j;
                        }
                    }
                });
            }
        }
    }
}

TEST(DotGemm, RowsIndependentOfBatch) {
    auto rng = seeded(202);
    const int64_t ms[] = {1, 2, 3, 5, 16, 100, 257};
    for (const Case& cs : kCases) {
        const int64_t k = 300 + static_cast<int64_t>(rng() % 900), n = 37;
        const TestWeight tw(cs.type, n, k, cs.block, rng);
        const int64_t m = ms[rng() % std::size(ms)];
        const auto x = uniform_vec(static_cast<size_t>(m * k), rng, 2.0);
        for_each_path([&](const char* path) {
            SCOPED_TRACE(testing::Message() << cs.name << " " << path << " m " << m << " k " << k);
            const auto y = run(tw, x, m);
            for (int64_t i = 0; i < m; ++i) {
                const std::vector<float> xi(x.begin() + i * k, x.begin() + (i + 1) * k);
                const auto yi = run(tw, xi, 1);
                ASSERT_EQ(bits(yi), bits(std::vector<float>(y.begin() + i * n, y.begin() + (i + 1) * n)))
                    << "row " << i;
            }
        });
    }
}

// Weight rows [a, b) as their own call give the same bits as those columns of the full call. FP8 subsets
// start at a scale-block boundary so that the subset's scale rows are a slice of the full scale.
TEST(DotGemm, ColumnsIndependentOfWeightSubset) {
    auto rng = seeded(303);
    for (const Case& cs : kCases) {
        const int64_t k = 1 + static_cast<int64_t>(rng() % 700), n = 37, m = 7;
        const TestWeight tw(cs.type, n, k, cs.block, rng);
        const auto x = uniform_vec(static_cast<size_t>(m * k), rng);
        const auto full = run(tw, x, m);
        const int64_t step = cs.type == DotWeightType::FP8 ? cs.block : 1;
        for (int trial = 0; trial < 4; ++trial) {
            const int64_t a = static_cast<int64_t>(rng() % static_cast<uint64_t>((n - 1) / step + 1)) * step;
            const int64_t b = a + 1 + static_cast<int64_t>(rng() % static_cast<uint64_t>(n - a));
            DotWeight w = tw.view();
            const size_t elem = cs.type == DotWeightType::F32 ? 4 : cs.type == DotWeightType::BF16 ? 2 : 1;
            w.data = static_cast<const char*>(w.data) + a * k * static_cast<int64_t>(elem);
            if (cs.type == DotWeightType::FP8) w.scale_inv += (a / cs.block) * scale_blocks(k, cs.block);
            const auto part = run(w, x, m, k, b - a);
            for (int64_t i = 0; i < m; ++i) {
                for (int64_t j = a; j < b; ++j) {
                    ASSERT_EQ(ecf8::f32_to_bits(part[i * (b - a) + j - a]), ecf8::f32_to_bits(full[i * n + j]))
                        << cs.name << " rows [" << a << ", " << b << ") at " << i << "," << j;
                }
            }
        }
    }
}

TEST(DotGemm, VectorPathMatchesScalarPath) {
    if (!dot_gemm_uses_avx2()) GTEST_SKIP() << "no AVX2 path on this CPU";
    auto rng = seeded(404);
    for (int trial = 0; trial < 40; ++trial) {
        const Case& cs = kCases[trial % std::size(kCases)];
        const int64_t m = 1 + static_cast<int64_t>(rng() % 9), k = 1 + static_cast<int64_t>(rng() % 1500);
        const int64_t n = 1 + static_cast<int64_t>(rng() % 40);
        const TestWeight tw(cs.type, n, k, cs.block, rng);
        // Magnitudes over many binades, so that rounding differences would show.
        auto x = uniform_vec(static_cast<size_t>(m * k), rng);
        for (auto& v : x) v = std::ldexp(v, static_cast<int>(rng() % 40) - 20);
        const auto vec = run(tw, x, m);
        dot_gemm_force_scalar(true);
        const auto sca = run(tw, x, m);
        dot_gemm_force_scalar(false);
        ASSERT_EQ(bits(vec), bits(sca)) << cs.name << " m " << m << " k " << k << " n " << n;
    }
}

// Decode-sized calls (m <= 3, or m <= 6 where AVX-512VL is compiled in) convert BF16 and FP8 weights in registers when
// a chunk allows it (lengths and scale blocks in whole groups of 8, no NaN byte, no scale whose x256 overflows) and in
// two passes otherwise. Both must give the contract's bits, also where chunks of one call take different ways: NaN
// bytes and huge scales in some rows, blocks of 12 that straddle chunks, k not a multiple of 8.
TEST(DotGemm, DecodeSizedCallsMatchContract) {
    auto rng = seeded(1001);
    const float huge = 0x1p126f;  // x256 overflows: the fast conversion must not take it
    for (const Case& cs : kCases) {
        if (cs.type == DotWeightType::F32) continue;
        for (int64_t k : {8, 24, 512, 520, 1408, 2048, 1001}) {
            const int64_t n = 1 + static_cast<int64_t>(rng() % 13), m = 1 + static_cast<int64_t>(rng() % 6);
            TestWeight tw(cs.type, n, k, cs.block, rng);
            if (cs.type == DotWeightType::FP8) {
                if (rng() % 2 == 0) tw.fp8[rng() % tw.fp8.size()] = rng() % 2 ? 0x7F : 0xFF;  // a NaN
                if (rng() % 2 == 0) tw.scale[rng() % tw.scale.size()] = rng() % 2 ? huge : -huge;
                dequantize_fp8_block_to_float(tw.fp8.data(), tw.scale.data(), n, k, tw.wf.data(), cs.block);
            }
            const auto x = uniform_vec(static_cast<size_t>(m * k), rng, 2.0);
            for_each_path([&](const char* path) {
                const auto y = run(tw, x, m);
                for (int64_t i = 0; i < m; ++i) {
                    for (int64_t j = 0; j < n; ++j) {
                        const float got = y[i * n + j], want = contract_dot(&x[i * k], &tw.wf[j * k], k);
                        if (std::isnan(want)) {
                            ASSERT_TRUE(std::isnan(got))
                                << cs.name << " " << path << " k " << k << " " << i << "," << j;
                        } else {
                            ASSERT_EQ(ecf8::f32_to_bits(got), ecf8::f32_to_bits(want))
                                << cs.name << " " << path << " m " << m << " k " << k << " n " << n << " at " << i
                                << "," << j;
                        }
                    }
                }
            });
        }
    }
}

TEST(DotGemm, ThreadPoolGivesSameBits) {
    auto rng = seeded(505);
    ecf8::ThreadPool pool2(2), pool3(3);
    for (const Case& cs : kCases) {
        for (int64_t n : {5, 37, 64}) {
            const int64_t m = 1 + static_cast<int64_t>(rng() % 20), k = 1 + static_cast<int64_t>(rng() % 1200);
            const TestWeight tw(cs.type, n, k, cs.block, rng);
            const auto x = uniform_vec(static_cast<size_t>(m * k), rng);
            const auto ref = bits(run(tw, x, m));
            EXPECT_EQ(bits(run(tw, x, m, &pool2)), ref) << cs.name << " n " << n << " k " << k;
            EXPECT_EQ(bits(run(tw, x, m, &pool3)), ref) << cs.name << " n " << n << " k " << k;
        }
    }
}

// Scales across the float range: normal, subnormal, ones whose x256 overflows, zero, infinity.
std::vector<float> test_scales(std::mt19937_64& rng) {
    const float inf = std::numeric_limits<float>::infinity();
    std::vector<float> s = {1.0f,
                            -1.0f,
                            0.0f,
                            -0.0f,
                            inf,
                            -inf,
                            0x1p-149f,
                            0x1p-130f,
                            0x1.234p-126f,
                            0x1p119f,
                            0x1p120f,
                            0x1.fffffep127f,
                            std::numeric_limits<float>::max() / 300};
    for (int i = 0; i < 200; ++i) {
        const float v = std::ldexp(1.0f + uniform(rng, 0.999), static_cast<int>(rng() % 280) - 150);
        s.push_back(rng() & 1 ? -v : v);
    }
    return s;
}

TEST(DotGemm, Fp8ConversionExhaustive) {
    auto rng = seeded(606);
    std::vector<uint8_t> bytes(256);
    for (int b = 0; b < 256; ++b) bytes[static_cast<size_t>(b)] = static_cast<uint8_t>(b);
    for (float s : test_scales(rng)) {
        // One scale block over all 256 bytes, and blocks of 8 and 5 (the latter crossing vector groups).
        for (int64_t block : {256, 8, 5}) {
            std::vector<float> scale(static_cast<size_t>(scale_blocks(256, block)), s);
            DotWeight w{DotWeightType::FP8, bytes.data(), scale.data(), block};
            for_each_path([&](const char* path) {
                std::vector<float> got(256);
                dot_weight_to_float(w, 1, 256, 0, 0, 256, got.data());
                for (int b = 0; b < 256; ++b) {
                    const float want = ecf8::fp8_e4m3_to_float(static_cast<uint8_t>(b)) * s;
                    ASSERT_EQ(ecf8::f32_to_bits(got[static_cast<size_t>(b)]), ecf8::f32_to_bits(want))
                        << path << " byte " << b << " scale " << s << " block " << block;
                }
            });
        }
    }
}

TEST(DotGemm, ConversionMatchesLinearDequantize) {
    auto rng = seeded(707);
    for (const Case& cs : kCases) {
        const TestWeight tw(cs.type, 9, 333, cs.block, rng);
        for_each_path([&](const char* path) {
            std::vector<float> got(tw.wf.size());
            for (int64_t r = 0; r < tw.n_out; ++r) dot_weight_to_float(tw.view(), 9, 333, r, 0, 333, &got[r * 333]);
            EXPECT_EQ(bits(got), bits(tw.wf)) << cs.name << " " << path;
            // A slice that starts inside a scale block.
            std::vector<float> part(100);
            dot_weight_to_float(tw.view(), 9, 333, 4, 131, 100, part.data());
            EXPECT_EQ(bits(part),
                      bits(std::vector<float>(tw.wf.begin() + 4 * 333 + 131, tw.wf.begin() + 4 * 333 + 231)));
        });
    }
}

// Products that underflow to -0 leave every lane at -0, so the sum is -0; the 9th column lands in a partial
// group of 8 whose unused lanes must keep their -0.
TEST(DotGemm, NegativeZeroSumsKeepTheirSign) {
    const int64_t k = 9;
    const std::vector<float> x(k, -0x1p-100f), w(2 * k, 0x1p-100f);
    const DotWeight dw{DotWeightType::F32, w.data(), nullptr, 128};
    for_each_path([&](const char* path) {
        const auto y = run(dw, x, 1, k, 2);
        EXPECT_EQ(ecf8::f32_to_bits(y[0]), 0x80000000u) << path;
        EXPECT_EQ(ecf8::f32_to_bits(y[1]), ecf8::f32_to_bits(contract_dot(x.data(), w.data(), k))) << path;
    });
}

TEST(DotGemm, EmptySizes) {
    auto rng = seeded(808);
    const TestWeight tw(DotWeightType::BF16, 3, 5, 128, rng);
    const std::vector<float> x(10, 1.0f);
    EXPECT_EQ(dot_gemm_scratch_floats(2, 0, 3), 0u);
    EXPECT_EQ(dot_gemm_scratch_floats(2, 5, 0), 0u);
    std::vector<float> y(6, -1.0f);
    dot_gemm(x.data(), 2, 0, tw.view(), 3, y.data(), nullptr);  // empty sums are +0
    for (float v : y) EXPECT_EQ(ecf8::f32_to_bits(v), 0u);
    dot_gemm(nullptr, 0, 5, tw.view(), 3, nullptr, nullptr);  // no rows: nothing to do
}

TEST(DotGemm, ScratchNeverExceedsWeight) {
    ecf8::ThreadPool pool(3);
    for (int64_t k : {1, 7, 8, 100, 511, 512, 513, 7168}) {
        for (int64_t n : {1, 3, 4, 5, 8, 11, 12, 13, 2048}) {
            EXPECT_LE(dot_gemm_scratch_floats(4, k, n), static_cast<size_t>(n * k)) << k << " " << n;
            EXPECT_LE(dot_gemm_scratch_floats(4, k, n, &pool), static_cast<size_t>(n * k)) << k << " " << n;
        }
    }
}

TEST(DotGemm, ArgumentErrors) {
    auto rng = seeded(909);
    const TestWeight tw(DotWeightType::FP8, 4, 16, 8, rng);
    const std::vector<float> x(32, 1.0f);
    std::vector<float> y(8), scratch(dot_gemm_scratch_floats(2, 16, 4));
    const DotWeight ok = tw.view();
    EXPECT_NO_THROW(dot_gemm(x.data(), 2, 16, ok, 4, y.data(), scratch.data()));
    EXPECT_THROW(dot_gemm(x.data(), -1, 16, ok, 4, y.data(), scratch.data()), ecf8::Error);
    EXPECT_THROW(dot_gemm(x.data(), 2, -16, ok, 4, y.data(), scratch.data()), ecf8::Error);
    EXPECT_THROW(dot_gemm(x.data(), 2, 16, ok, -4, y.data(), scratch.data()), ecf8::Error);
    EXPECT_THROW(dot_gemm(nullptr, 2, 16, ok, 4, y.data(), scratch.data()), ecf8::Error);
    EXPECT_THROW(dot_gemm(x.data(), 2, 16, ok, 4, nullptr, scratch.data()), ecf8::Error);
    EXPECT_THROW(dot_gemm(x.data(), 2, 16, ok, 4, y.data(), nullptr), ecf8::Error);
    DotWeight bad = ok;
    bad.data = nullptr;
    EXPECT_THROW(dot_gemm(x.data(), 2, 16, bad, 4, y.data(), scratch.data()), ecf8::Error);
    bad = ok;
    bad.scale_inv = nullptr;
    EXPECT_THROW(dot_gemm(x.data(), 2, 16, bad, 4, y.data(), scratch.data()), ecf8::Error);
    bad = ok;
    bad.block = 0;
    EXPECT_THROW(dot_gemm(x.data(), 2, 16, bad, 4, y.data(), scratch.data()), ecf8::Error);
    bad = ok;
    bad.type = static_cast<DotWeightType>(7);
    EXPECT_THROW(dot_gemm(x.data(), 2, 16, bad, 4, y.data(), scratch.data()), ecf8::Error);
    EXPECT_THROW(dot_gemm_scratch_floats(-1, 16, 4), ecf8::Error);
    EXPECT_THROW(dot_weight_to_float(ok, 4, 16, 4, 0, 16, y.data()), ecf8::Error);  // row out of range
    EXPECT_THROW(dot_weight_to_float(ok, 4, 16, 0, 10, 7, y.data()), ecf8::Error);  // columns past k
    EXPECT_THROW(dot_weight_to_float(ok, 4, 16, 0, 0, 4, nullptr), ecf8::Error);
}

}  // namespace
