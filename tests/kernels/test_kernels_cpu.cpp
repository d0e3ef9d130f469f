// The CPU reference kernels of the DeepSeek-V3 forward pass (kernels/cpu/: rmsnorm, rope, linear,
// mla_attention, mlp, embedding), each against a plain float64 reference written here from DeepSeek-V3's
// inference/model.py, on seeded random inputs, plus hand-made cases for YaRN and causality. The gate and
// sampling have their own files (test_moe_gate_cpu.cpp, test_sampling_cpu.cpp) in the same test binary.
//
// Tolerances: float ops are checked to 1e-5 relative (of the value, or of the sum of |terms| for dot
// products, which bounds float summation error whatever the cancellation).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <numbers>
#include <numeric>
#include <random>
#include <set>
#include <tuple>
#include <vector>

#include "common/error.h"
#include "common/float_formats.h"
#include "kernels/cpu/embedding.h"
#include "kernels/cpu/linear.h"
#include "kernels/cpu/mla_attention.h"
#include "kernels/cpu/mlp.h"
#include "kernels/cpu/rmsnorm.h"
#include "kernels/cpu/rope.h"
#include "sharding/model_config.h"
#include "sharding/synth_weights.h"
#include "tests/kernels/kernel_test_inputs.h"

namespace {

using namespace ecf8::cpu;
using ecf8::ModelConfig;
using namespace ecf8::test;

// y[t, o] = sum_k x[t, k] w[o, k] in double, and the matching error bound kRel * sum_k |x w|.
void naive_linear(const float* x, const float* w, int64_t T, int64_t in, int64_t out, std::vector<double>* y,
                  std::vector<double>* bound) {
    y->assign(static_cast<size_t>(T * out), 0.0);
    bound->assign(y->size(), 0.0);
    for (int64_t t = 0; t < T; ++t) {
        for (int64_t o = 0; o < out; ++o) {
            double s = 0.0, a = 0.0;
            for (int64_t k = 0; k < in; ++k) {
                const double p = static_cast<double>(x[t * in + k]) * w[o * in + k];
                s += p;
                a += std::fabs(p);
            }
            (*y)[static_cast<size_t>(t * out + o)] = s;
            (*bound)[static_cast<size_t>(t * out + o)] = kRel * a + 1e-30;
        }
    }
}

void expect_linear_close(const std::vector<float>& got, const std::vector<double>& ref,
                         const std::vector<double>& bound) {
    ASSERT_EQ(got.size(), ref.size());
    for (size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], ref[i], bound[i]) << "element " << i;
}

// ---------------------------------------------------------------------------------------------------
// rmsnorm

TEST(RmsNorm, MatchesDoubleReference) {
    const int64_t T = 5, D = 300;
    const float eps = 1e-6f;
    const auto x = uniform(T * D, 1, 3.0);
    const auto w = to_bf16(uniform(D, 2, 2.0));
    std::vector<float> y(x.size());
    rmsnorm(x.data(), w.data(), T, D, eps, y.data());
    for (int64_t t = 0; t < T; ++t) {
        double ss = 0.0;
        for (int64_t i = 0; i < D; ++i) ss += static_cast<double>(x[t * D + i]) * x[t * D + i];
        const double r = 1.0 / std::sqrt(ss / D + eps);
        for (int64_t i = 0; i < D; ++i) {
            const double ref = x[t * D + i] * r * ecf8::bf16_to_float(w[i]);
            ASSERT_NEAR(y[t * D + i], ref, kRel * std::fabs(ref) + 1e-30) << t << "," << i;
        }
    }
    // In place gives the same bits.
    auto inplace = x;
    rmsnorm(inplace.data(), w.data(), T, D, eps, inplace.data());
    EXPECT_EQ(inplace, y);
    // eps dominates an all-zero row: the output is zero, not NaN.
    std::vector<float> zeros(D, 0.0f), z(D, 1.0f);
    rmsnorm(zeros.data(), w.data(), 1, D, eps, z.data());
    for (float v : z) EXPECT_EQ(v, 0.0f);
    EXPECT_THROW(rmsnorm(x.data(), w.data(), 1, 0, eps, y.data()), ecf8::Error);
}

// ---------------------------------------------------------------------------------------------------
// rope

// DeepSeek-V3: rope_theta 10000, qk_rope_head_dim 64, YaRN factor 40, beta_fast 32, beta_slow 1,
// original_max_position_embeddings 4096 (ModelConfig's defaults).
TEST(Rope, YarnFrequenciesOfDeepSeekV3) {
    const ModelConfig cfg;
    ASSERT_EQ(cfg.qk_rope_head_dim, 64);
    ASSERT_TRUE(cfg.has_rope_scaling);
    EXPECT_TRUE(yarn_active(cfg));
    const auto f = rope_frequencies(cfg);
    ASSERT_EQ(f.size(), 32u);

    // find_correction_range by hand: floor(64 ln(4096 / (32 * 2 pi)) / (2 ln 10000)) = floor(10.47) = 10 and
    // ceil(64 ln(4096 / (2 pi)) / (2 ln 10000)) = ceil(22.5) = 23.
    const double two_ln_base = 2.0 * std::log(10000.0);
    const double low = std::floor(64.0 * std::log(4096.0 / (32.0 * 2.0 * std::numbers::pi)) / two_ln_base);
    const double high = std::ceil(64.0 * std::log(4096.0 / (1.0 * 2.0 * std::numbers::pi)) / two_ln_base);
    ASSERT_EQ(low, 10.0);
    ASSERT_EQ(high, 23.0);
    for (int i = 0; i < 32; ++i) {
        const double base_freq = std::pow(10000.0, -2.0 * i / 64.0);
        const double ramp = std::clamp((i - low) / (high - low), 0.0, 1.0);
        const double smooth = 1.0 - ramp;
        const double want = base_freq / 40.0 * (1.0 - smooth) + base_freq * smooth;
        EXPECT_NEAR(f[i], want, 1e-6 * want) << "pair " << i;
    }
    // A few by hand: untouched below the ramp, divided by the factor above it, blended inside.
    EXPECT_FLOAT_EQ(f[0], 1.0f);
    EXPECT_NEAR(f[10], std::pow(10000.0, -20.0 / 64.0), 1e-7);
    EXPECT_NEAR(f[31], std::pow(10000.0, -62.0 / 64.0) / 40.0, 1e-12);
    const double b16 = std::pow(10000.0, -0.5);  // pair 16: ramp 6/13
    EXPECT_NEAR(f[16], b16 / 40.0 * (6.0 / 13.0) + b16 * (7.0 / 13.0), 1e-6 * b16);
}

TEST(Rope, NoYarnWithoutScaling) {
    ModelConfig cfg;
    cfg.has_rope_scaling = false;
    EXPECT_FALSE(yarn_active(cfg));
    const auto plain = rope_frequencies(cfg);
    for (int i = 0; i < 32; ++i) EXPECT_NEAR(plain[i], std::pow(10000.0, -2.0 * i / 64.0), 1e-6 * plain[i]);
    EXPECT_DOUBLE_EQ(attention_softmax_scale(cfg), std::pow(192.0, -0.5));
}

// YaRN follows config.json alone (as transformers, vLLM and SGLang): the table's length, the deployment's
// max_model_len, changes neither the frequencies nor the softmax scale.
TEST(Rope, YarnDoesNotDependOnTheTableLength) {
    const ModelConfig cfg;
    const RopeTable short_table = make_rope_table(cfg, 64), long_table = make_rope_table(cfg, 8192);
    EXPECT_EQ(short_table.freqs, long_table.freqs);
    EXPECT_EQ(short_table.freqs, rope_frequencies(cfg));
    EXPECT_LT(short_table.freqs.back(), std::pow(10000.0, -62.0 / 64.0) / 39.0);  // divided by the factor 40
    for (int64_t p = 0; p < 64; ++p)
        for (int64_t i = 0; i < short_table.pairs(); ++i)
            ASSERT_EQ(short_table.cos_row(p)[i], long_table.cos_row(p)[i]) << "position " << p << " pair " << i;
}

TEST(Rope, SoftmaxScaleWithYarnMscale) {
    const ModelConfig cfg;
    // 192^-0.5 * (0.1 ln 40 + 1)^2, computed by hand.
    EXPECT_NEAR(attention_softmax_scale(cfg), 0.1352337788608801, 1e-15);
    ModelConfig v2 = cfg;
    v2.rope_scaling.mscale_all_dim = 0.707;
    const double m = 0.1 * 0.707 * std::log(40.0) + 1.0;
    EXPECT_NEAR(attention_softmax_scale(v2), std::pow(192.0, -0.5) * m * m, 1e-15);
}

TEST(Rope, TableIsCosSinOfTheFloatAngle) {
    const ModelConfig cfg;
    const int64_t L = 16384;
    const RopeTable tab = make_rope_table(cfg, L);
    ASSERT_EQ(tab.pairs(), 32);
    ASSERT_EQ(tab.cos.size(), static_cast<size_t>(L * 32));
    for (const int64_t p : {int64_t{0}, int64_t{1}, int64_t{7}, int64_t{1000}, L - 1}) {
        for (int i = 0; i < 32; ++i) {
            const double freq = tab.freqs[i];
            // The reference rounds the angle p * freq to float (torch.outer in float32) before polar().
            const float angle = static_cast<float>(static_cast<double>(p) * freq);
            EXPECT_EQ(tab.cos_row(p)[i], static_cast<float>(std::cos(static_cast<double>(angle))));
            EXPECT_EQ(tab.sin_row(p)[i], static_cast<float>(std::sin(static_cast<double>(angle))));
            // And the exact angle differs by at most that rounding.
            const double tol = std::fabs(p * freq) * 0x1p-24 + 1e-7;
            EXPECT_NEAR(tab.cos_row(p)[i], std::cos(p * freq), tol);
            EXPECT_NEAR(tab.sin_row(p)[i], std::sin(p * freq), tol);
        }
    }
}

TEST(Rope, ApplyRotatesConsecutivePairsAndNothingElse) {
    ModelConfig cfg;
    cfg.qk_rope_head_dim = 8;
    const RopeTable tab = make_rope_table(cfg, 64);
    const int64_t T = 3, H = 2, nope = 5, head = nope + 8, stride = H * head + 1;  // 1 padding float per token
    auto x = uniform(T * stride, 3);
    const auto orig = x;
    const std::vector<int64_t> pos = {0, 17, 63};
    apply_rope(x.data() + nope, T, stride, H, head, 8, pos.data(), tab);
    for (int64_t t = 0; t < T; ++t) {
        for (int64_t h = 0; h < H; ++h) {
            const int64_t base = t * stride + h * head;
            for (int64_t i = 0; i < nope; ++i) EXPECT_EQ(x[base + i], orig[base + i]);
            for (int64_t i = 0; i < 4; ++i) {
                const double a = orig[base + nope + 2 * i], b = orig[base + nope + 2 * i + 1];
                const double c = tab.cos_row(pos[t])[i], s = tab.sin_row(pos[t])[i];
                EXPECT_NEAR(x[base + nope + 2 * i], a * c - b * s, 1e-7);
                EXPECT_NEAR(x[base + nope + 2 * i + 1], a * s + b * c, 1e-7);
            }
        }
        EXPECT_EQ(x[t * stride + H * head], orig[t * stride + H * head]);
    }
    const std::vector<int64_t> bad = {64};
    EXPECT_THROW(apply_rope(x.data(), 1, stride, 1, head, 8, bad.data(), tab), ecf8::Error);
    EXPECT_THROW(apply_rope(x.data(), 1, stride, 1, head, 6, pos.data(), tab), ecf8::Error);
}

// ---------------------------------------------------------------------------------------------------
// linear

TEST(Linear, F32AndBf16MatchNaiveProducts) {
    const int64_t T = 4, in = 300, out = 70;
    const auto x = uniform(T * in, 4);
    const auto wf = uniform(out * in, 5, 0.1);
    std::vector<float> y(T * out);
    std::vector<double> ref, bound;
    linear_f32(x.data(), wf.data(), y.data(), T, in, out);
    naive_linear(x.data(), wf.data(), T, in, out, &ref, &bound);
    expect_linear_close(y, ref, bound);

    const auto wb = to_bf16(wf);
    std::vector<float> wb_f(wb.size()), scratch(wb.size());
    for (size_t i = 0; i < wb.size(); ++i) wb_f[i] = ecf8::bf16_to_float(wb[i]);
    linear_bf16(x.data(), wb.data(), scratch.data(), y.data(), T, in, out);
    std::vector<float> y_wide(y.size());  // the same product on the widened weight: the same bits
    linear_f32(x.data(), wb_f.data(), y_wide.data(), T, in, out);
    EXPECT_EQ(0, std::memcmp(y.data(), y_wide.data(), y.size() * sizeof(float)));
    naive_linear(x.data(), wb_f.data(), T, in, out, &ref, &bound);
    expect_linear_close(y, ref, bound);
    // Same inputs, same bits.
    std::vector<float> y2(y.size());
    linear_bf16(x.data(), wb.data(), scratch.data(), y2.data(), T, in, out);
    EXPECT_EQ(y, y2);
}

TEST(Linear, Fp8DequantizeMatchesBlockRule) {
    // Both dimensions leave partial edge blocks.
    const int64_t rows = 300, cols = 260;
    const auto w = uniform(rows * cols, 6, 0.05);
    std::vector<uint8_t> q(w.size());
    std::vector<float> s(static_cast<size_t>(scale_blocks(rows) * scale_blocks(cols)));
    ecf8::quantize_fp8_block(w.data(), rows, cols, q.data(), s.data());
    std::vector<float> got(w.size()), theirs(w.size());
    dequantize_fp8_block_to_float(q.data(), s.data(), rows, cols, got.data());
    ecf8::dequantize_fp8_block(q.data(), s.data(), rows, cols, theirs.data());
    EXPECT_EQ(got, theirs);
    for (int64_t r = 0; r < rows; r += 37) {
        for (int64_t c = 0; c < cols; c += 11) {
            const float want = ecf8::fp8_e4m3_to_float(q[r * cols + c]) * s[(r / 128) * 3 + c / 128];
            EXPECT_EQ(got[r * cols + c], want);
        }
    }
    // Another block size.
    std::vector<float> s64(static_cast<size_t>(scale_blocks(rows, 64) * scale_blocks(cols, 64)));
    for (size_t i = 0; i < s64.size(); ++i) s64[i] = static_cast<float>(i + 1) * 0.25f;
    dequantize_fp8_block_to_float(q.data(), s64.data(), rows, cols, got.data(), 64);
    const int64_t sc = scale_blocks(cols, 64);
    for (int64_t r = 0; r < rows; r += 13) {
        for (int64_t c = 0; c < cols; c += 7) {
            EXPECT_EQ(got[r * cols + c], ecf8::fp8_e4m3_to_float(q[r * cols + c]) * s64[(r / 64) * sc + c / 64]);
        }
    }
}

TEST(Linear, Fp8EqualsDequantizeThenNaiveMatmul) {
    const int64_t T = 3, in = 260, out = 300;
    const auto w = uniform(out * in, 7, 0.05);
    std::vector<uint8_t> q(w.size());
    std::vector<float> s(static_cast<size_t>(scale_blocks(out) * scale_blocks(in)));
    ecf8::quantize_fp8_block(w.data(), out, in, q.data(), s.data());
    std::vector<float> deq(w.size());
    ecf8::dequantize_fp8_block(q.data(), s.data(), out, in, deq.data());
    const auto x = uniform(T * in, 8);
    std::vector<float> y(T * out), scratch(w.size());
    linear_fp8(x.data(), q.data(), s.data(), scratch.data(), y.data(), T, in, out);
    std::vector<double> ref, bound;
    naive_linear(x.data(), deq.data(), T, in, out, &ref, &bound);
    expect_linear_close(y, ref, bound);
}

// Tensor parallelism cuts a weight at 128-block boundaries: a column-parallel rank holds a row slice (and its
// scale rows), a row-parallel rank a column slice (its scale columns) and the matching slice of x.
TEST(Linear, Fp8TensorParallelPartsMatchTheWhole) {
    const int64_t T = 5, in = 384, out = 512;
    const auto w = uniform(out * in, 9, 0.05);
    const int64_t sr = scale_blocks(out), sc = scale_blocks(in);
    std::vector<uint8_t> q(w.size());
    std::vector<float> s(static_cast<size_t>(sr * sc));
    ecf8::quantize_fp8_block(w.data(), out, in, q.data(), s.data());
    const auto x = uniform(T * in, 10);
    std::vector<float> whole(T * out), scratch(w.size());
    linear_fp8(x.data(), q.data(), s.data(), scratch.data(), whole.data(), T, in, out);
    std::vector<double> ref, bound;
    std::vector<float> deq(w.size());
    ecf8::dequantize_fp8_block(q.data(), s.data(), out, in, deq.data());
    naive_linear(x.data(), deq.data(), T, in, out, &ref, &bound);

    // Rows [256, 512): a contiguous slice of the weight and scale rows [2, 4).
    {
        const int64_t r0 = 256, rows = 256;
        std::vector<uint8_t> qp(q.begin() + r0 * in, q.begin() + (r0 + rows) * in);
        std::vector<float> sp(s.begin() + (r0 / 128) * sc, s.begin() + ((r0 + rows) / 128) * sc);
        std::vector<float> part(T * rows);
        linear_fp8(x.data(), qp.data(), sp.data(), scratch.data(), part.data(), T, in, rows);
        for (int64_t t = 0; t < T; ++t) {
            for (int64_t o = 0; o < rows; ++o) {
                const size_t wi = static_cast<size_t>(t * out + r0 + o);
                ASSERT_EQ(part[t * rows + o], whole[wi]);  // dot_gemm: a row's sum does not depend on the others
            }
        }
    }
    // Columns [0, 128) and [128, 384) (scale columns [0, 1) and [1, 3)): the partial products add up to the
    // whole, as the all-reduce of a row-parallel linear does.
    {
        std::vector<float> sum(T * out, 0.0f);
        for (const auto& [c0, cols] : {std::pair<int64_t, int64_t>{0, 128}, std::pair<int64_t, int64_t>{128, 256}}) {
            std::vector<uint8_t> qp(out * cols);
            std::vector<float> sp(sr * (cols / 128)), xp(T * cols), part(T * out);
            for (int64_t r = 0; r < out; ++r) std::copy_n(q.begin() + r * in + c0, cols, qp.begin() + r * cols);
            for (int64_t r = 0; r < sr; ++r)
                std::copy_n(s.begin() + r * sc + c0 / 128, cols / 128, sp.begin() + r * (cols / 128));
            for (int64_t t = 0; t < T; ++t) std::copy_n(x.begin() + t * in + c0, cols, xp.begin() + t * cols);
            linear_fp8(xp.data(), qp.data(), sp.data(), scratch.data(), part.data(), T, cols, out);
            add(sum.data(), part.data(), T * out, sum.data());
        }
        for (size_t i = 0; i < sum.size(); ++i) ASSERT_NEAR(sum[i], ref[i], bound[i]) << i;
    }
}

TEST(Linear, RejectsBadArguments) {
    std::vector<float> x(4), w(4), y(4);
    EXPECT_THROW(linear_f32(x.data(), w.data(), y.data(), -1, 2, 2), ecf8::Error);
    EXPECT_THROW(linear_f32(x.data(), w.data(), y.data(), 1, 0, 2), ecf8::Error);
    EXPECT_THROW(linear_f32(x.data(), nullptr, y.data(), 1, 2, 2), ecf8::Error);
    EXPECT_THROW(cpu_blas_init(0), ecf8::Error);
    linear_f32(nullptr, w.data(), nullptr, 0, 2, 2);  // no tokens: nothing to do
}

// `ecf8 run --threads N` gives the linear layers N threads on the CPU backend. They split the output, not the
// sum, across threads, so the bits must not depend on the thread count (ranks with different --threads, and
// ECF8 vs raw comparisons, rely on it). Shapes: decode, prefill and an odd edge.
TEST(Linear, ThreadCountDoesNotChangeTheBits) {
    std::mt19937 rng(11);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    for (const auto& [T, in, out] :
         {std::tuple<int64_t, int64_t, int64_t>{1, 1024, 2048}, {257, 512, 768}, {64, 7168 / 4, 1536}, {3, 129, 65}}) {
        std::vector<float> x(T * in), w(out * in), y1(T * out), y4(T * out);
        for (float& v : x) v = nd(rng);
        for (float& v : w) v = nd(rng) * 0.05f;
        cpu_blas_init(1);
        linear_f32(x.data(), w.data(), y1.data(), T, in, out);
        cpu_blas_init(4);
        linear_f32(x.data(), w.data(), y4.data(), T, in, out);
        cpu_blas_init(1);
        ASSERT_EQ(0, std::memcmp(y1.data(), y4.data(), y1.size() * sizeof(float))) << T << "x" << in << "x" << out;
    }
}

// ---------------------------------------------------------------------------------------------------
// mla_attention

struct MlaCase {
    MlaDims d{3, 16, 8, 12, 32};
    int64_t max_len = 12;
    std::vector<float> q, kv, pe, wkv_b;
    float scale = 0.0f;

    explicit MlaCase(int64_t n_tokens) {
        q = uniform(n_tokens * d.n_heads * d.qk_head_dim(), 11, 1.0);
        kv = uniform(max_len * d.kv_lora_rank, 12, 1.0);
        pe = uniform(max_len * d.qk_rope_head_dim, 13, 1.0);
        wkv_b = uniform(d.n_heads * (d.qk_nope_head_dim + d.v_head_dim) * d.kv_lora_rank, 14, 0.4);
        scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(d.qk_head_dim())));
    }

    // Attention of tokens [first, first + n) (rows of q from q_row0) of one sequence over a paged F32 cache
    // of blocks of 4 tokens, its table in reverse block order, holding kvc / pec's rows. With `other`, a
    // second sequence's decode token (position 2, over the same rows) comes first in the batch.
    std::vector<float> run(int64_t first, int64_t n, int64_t q_row0, const std::vector<float>& kvc,
                           const std::vector<float>& pec, bool other = false) const {
        const int64_t C = d.kv_lora_rank, R = d.qk_rope_head_dim, bt = 4, blocks = (max_len + bt - 1) / bt;
        std::vector<float> pool(static_cast<size_t>(blocks * bt * (C + R)), kNaN);
        std::vector<int32_t> tables;
        for (int64_t b = 0; b < blocks; ++b) tables.push_back(static_cast<int32_t>(blocks - 1 - b));
        for (int64_t p = 0; p < max_len; ++p) {
            float* row = pool.data() + (tables[p / bt] * bt + p % bt) * (C + R);
            std::copy(kvc.begin() + p * C, kvc.begin() + (p + 1) * C, row);
            std::copy(pec.begin() + p * R, pec.begin() + (p + 1) * R, row + C);
        }
        tables.insert(tables.end(), tables.begin(), tables.end());  // sequence 1: the same rows
        std::vector<int64_t> positions;
        std::vector<int32_t> seqs;
        std::vector<float> qs;
        const int64_t qrow = d.n_heads * d.qk_head_dim();
        if (other) {
            positions.push_back(2);
            seqs.push_back(1);
            qs.insert(qs.end(), q.end() - qrow, q.end());
        }
        for (int64_t t = 0; t < n; ++t) {
            positions.push_back(first + t);
            seqs.push_back(0);
        }
        qs.insert(qs.end(), q.begin() + q_row0 * qrow, q.begin() + (q_row0 + n) * qrow);
        const int64_t T = static_cast<int64_t>(positions.size());
        const ecf8::core::KvPages pages{pool.data(), ecf8::core::KvDType::F32, bt, blocks, C + R};
        const ecf8::core::RaggedBatch batch{T, positions.data(), seqs.data(), tables.data(), 2, blocks};
        std::vector<float> scratch(
            static_cast<size_t>(ecf8::core::paged_attention_scratch_floats(d.n_heads, C, R, bt, T)));
        std::vector<float> out(static_cast<size_t>(T * d.n_heads * d.v_head_dim));
        paged_mla_attention(qs.data(), pages, wkv_b.data(), d, batch, scale, scratch.data(), out.data());
        if (other) out.erase(out.begin(), out.begin() + d.n_heads * d.v_head_dim);
        return out;
    }
};

// The reference's "naive" path in double: k and v expanded from the latent with wkv_b, then standard
// causal attention.
std::vector<double> naive_mla(const MlaCase& c, int64_t n_tokens, int64_t start_pos) {
    const MlaDims& d = c.d;
    const int64_t H = d.n_heads, C = d.kv_lora_rank, NOPE = d.qk_nope_head_dim, R = d.qk_rope_head_dim;
    const int64_t V = d.v_head_dim, QK = d.qk_head_dim(), end = start_pos + n_tokens;
    std::vector<double> out(static_cast<size_t>(n_tokens * H * V), 0.0);
    for (int64_t h = 0; h < H; ++h) {
        const float* wk = c.wkv_b.data() + h * (NOPE + V) * C;
        const float* wv = wk + NOPE * C;
        std::vector<double> k(static_cast<size_t>(end * QK)), v(static_cast<size_t>(end * V));
        for (int64_t s = 0; s < end; ++s) {
            for (int64_t i = 0; i < NOPE; ++i) {
                double a = 0.0;
                for (int64_t j = 0; j < C; ++j) a += static_cast<double>(wk[i * C + j]) * c.kv[s * C + j];
                k[s * QK + i] = a;
            }
            for (int64_t i = 0; i < R; ++i) k[s * QK + NOPE + i] = c.pe[s * R + i];
            for (int64_t i = 0; i < V; ++i) {
                double a = 0.0;
                for (int64_t j = 0; j < C; ++j) a += static_cast<double>(wv[i * C + j]) * c.kv[s * C + j];
                v[s * V + i] = a;
            }
        }
        for (int64_t t = 0; t < n_tokens; ++t) {
            const float* qt = c.q.data() + (t * H + h) * QK;
            const int64_t keys = start_pos + t + 1;
            std::vector<double> p(static_cast<size_t>(keys));
            double m = -1e300, sum = 0.0;
            for (int64_t s = 0; s < keys; ++s) {
                double a = 0.0;
                for (int64_t i = 0; i < QK; ++i) a += qt[i] * k[s * QK + i];
                p[s] = a * c.scale;
                m = std::max(m, p[s]);
            }
            for (auto& e : p) sum += (e = std::exp(e - m));
            for (int64_t s = 0; s < keys; ++s) {
                for (int64_t i = 0; i < V; ++i) out[(t * H + h) * V + i] += p[s] / sum * v[s * V + i];
            }
        }
    }
    return out;
}

double max_abs(const std::vector<double>& v) {
    double m = 0.0;
    for (double x : v) m = std::max(m, std::fabs(x));
    return m;
}

TEST(MlaAttention, AbsorbPathEqualsNaivePath) {
    const int64_t T = 7;
    const MlaCase c(T);
    for (const int64_t start : {int64_t{0}, int64_t{5}}) {
        const auto got = c.run(start, T, 0, c.kv, c.pe);
        const auto ref = naive_mla(c, T, start);
        const double tol = kRel * max_abs(ref);
        for (size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], ref[i], tol) << "start " << start << " i " << i;
    }
}

// A token's result depends on its own position and cache only: not on the tokens batched with it, so a
// prefix, decoding one token at a time, a chunked prefill and a batch with another sequence give the same
// bits as the whole prompt at once. Cache rows beyond the last query's position are never read.
TEST(MlaAttention, TokensAreIndependentOfTheirBatch) {
    const int64_t T = 7;
    const MlaCase c(T);
    const int64_t row = c.d.n_heads * c.d.v_head_dim;
    const auto all = c.run(0, T, 0, c.kv, c.pe);
    auto same = [&](const std::vector<float>& got, int64_t first_token, const char* what) {
        ASSERT_EQ(0, std::memcmp(got.data(), all.data() + first_token * row, got.size() * sizeof(float))) << what;
    };
    for (const int64_t n : {int64_t{1}, int64_t{4}}) {
        auto kv = c.kv, pe = c.pe;
        std::fill(kv.begin() + n * c.d.kv_lora_rank, kv.end(), kNaN);
        std::fill(pe.begin() + n * c.d.qk_rope_head_dim, pe.end(), kNaN);
        same(c.run(0, n, 0, kv, pe), 0, "prefix");
    }
    for (int64_t t = 0; t < T; ++t) same(c.run(t, 1, t, c.kv, c.pe), t, "one token");
    same(c.run(3, 4, 3, c.kv, c.pe), 3, "chunk");
    same(c.run(0, T, 0, c.kv, c.pe, true), 0, "beside another sequence");
}

TEST(MlaAttention, ScratchSizeAndArguments) {
    const MlaDims d{4, 8, 4, 8, 16};
    // Queries and latents, then the larger of the CPU's key tile and the CUDA kernel's split partials.
    EXPECT_EQ(ecf8::core::paged_attention_scratch_floats(4, 16, 4, 8, 3),
              2 * 3 * 4 * 16 + ecf8::core::kAttentionSplitCtas * (16 + 2));
    EXPECT_EQ(ecf8::core::paged_attention_scratch_floats(4, 16, 4, 1024, 3),
              2 * 3 * 4 * 16 + 1024 * 20 + 4 * 1024 + 2 * 4);
    std::vector<float> buf(4096);
    std::vector<int64_t> positions = {0};
    std::vector<int32_t> seqs = {0}, table = {0};
    const ecf8::core::KvPages pages{buf.data(), ecf8::core::KvDType::F32, 8, 1, 20};
    const ecf8::core::RaggedBatch batch{1, positions.data(), seqs.data(), table.data(), 1, 1};
    MlaDims bad = d;
    bad.kv_lora_rank = 0;
    EXPECT_THROW(paged_mla_attention(buf.data(), pages, buf.data(), bad, batch, 1.0f, buf.data(), buf.data()),
                 ecf8::Error);
    table[0] = 1;  // outside the pool of one block
    EXPECT_THROW(paged_mla_attention(buf.data(), pages, buf.data(), d, batch, 1.0f, buf.data(), buf.data()),
                 ecf8::Error);
    table[0] = 0;
    positions[0] = 8;  // beyond the sequence's one block
    EXPECT_THROW(paged_mla_attention(buf.data(), pages, buf.data(), d, batch, 1.0f, buf.data(), buf.data()),
                 ecf8::Error);
    positions[0] = 3;  // inside the block, but the host said no token has more than 3 keys
    ecf8::core::RaggedBatch short_keys = batch;
    short_keys.max_keys = 3;
    EXPECT_THROW(paged_mla_attention(buf.data(), pages, buf.data(), d, short_keys, 1.0f, buf.data(), buf.data()),
                 ecf8::Error);
    const std::vector<int64_t> slot = {8};  // the pool has slots [0, 8)
    EXPECT_THROW(kv_cache_write(buf.data(), 1, slot.data(), pages), ecf8::Error);
}

// ---------------------------------------------------------------------------------------------------
// mlp helpers, embedding

TEST(Mlp, SiluMulAndAdds) {
    const int64_t n = 1000;
    const auto g = uniform(n, 20, 8.0);
    const auto u = uniform(n, 21, 2.0);
    std::vector<float> y(n);
    silu_mul(g.data(), u.data(), n, y.data());
    for (int64_t i = 0; i < n; ++i) {
        const double ref = g[i] / (1.0 + std::exp(-static_cast<double>(g[i]))) * u[i];
        ASSERT_NEAR(y[i], ref, kRel * std::fabs(ref) + 1e-30) << i;
    }
    std::vector<float> s(n);
    add(g.data(), u.data(), n, s.data());
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(s[i], g[i] + u[i]);
    std::vector<float> acc = u;
    add_scaled(g.data(), 0.3f, n, acc.data());
    for (int64_t i = 0; i < n; ++i) {
        const float prod = g[i] * 0.3f;
        ASSERT_EQ(acc[i], u[i] + prod);
    }
}

TEST(Embedding, VocabPartsGiveZerosOutsideAndSumToTheWholeTable) {
    const int64_t V = 300, D = 16;
    const auto table = to_bf16(uniform(V * D, 22));
    const std::vector<int32_t> tokens = {5, 150, 199, 200, 100, 299};
    const int64_t T = static_cast<int64_t>(tokens.size());
    std::vector<float> part(T * D);
    embedding_bf16(tokens.data(), T, table.data() + 100 * D, 100, 200, D, part.data());
    for (int64_t t = 0; t < T; ++t) {
        const bool mine = tokens[t] >= 100 && tokens[t] < 200;
        for (int64_t i = 0; i < D; ++i) {
            ASSERT_EQ(part[t * D + i], mine ? ecf8::bf16_to_float(table[tokens[t] * D + i]) : 0.0f) << t;
        }
    }
    // Three ranks' parts, summed as the all-reduce does, give the full lookup.
    std::vector<float> sum(T * D, 0.0f);
    for (int64_t r = 0; r < 3; ++r) {
        embedding_bf16(tokens.data(), T, table.data() + r * 100 * D, r * 100, (r + 1) * 100, D, part.data());
        add(sum.data(), part.data(), T * D, sum.data());
    }
    for (int64_t t = 0; t < T; ++t) {
        for (int64_t i = 0; i < D; ++i) ASSERT_EQ(sum[t * D + i], ecf8::bf16_to_float(table[tokens[t] * D + i]));
    }
    const std::vector<int32_t> negative = {-1};
    EXPECT_THROW(embedding_bf16(negative.data(), 1, table.data(), 0, V, D, part.data()), ecf8::Error);
}

}  // namespace
