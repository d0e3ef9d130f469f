// Every CUDA op of kernels/cuda/ops.cuh against its CPU twin (gpu label; skips without a device), on
// random inputs with the seed printed. Tolerances: bit-identical for add, add_scaled, embedding, rope,
// dequantization, rmsnorm (kernels/core fixes the order of its sum of squares) and argmax (same operations,
// same rounding); silu_mul within 2 float ulps (CUDA's double exp is within 1 ulp);
// the SGEMM and MLA attention within 1e-5 relative to the largest output (other summation orders).
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "common/float_formats.h"
#include "kernels/cpu/embedding.h"
#include "kernels/cpu/linear.h"
#include "kernels/cpu/mla_attention.h"
#include "kernels/cpu/mlp.h"
#include "kernels/cpu/moe_gate.h"
#include "kernels/cpu/rmsnorm.h"
#include "kernels/cpu/rope.h"
#include "kernels/cpu/sampling.h"
#include "kernels/cuda/ops.cuh"
#include "sharding/model_config.h"
#include "tests/kernels/cuda_test.h"

namespace ecf8 {
namespace {

constexpr uint64_t kSeed = 20261123;

class KernelsCuda : public test::CudaOpTest {
protected:
    KernelsCuda() : CudaOpTest(kSeed) {}
    std::vector<float> randn(size_t n, float scale = 1.0f) {
        std::normal_distribution<float> d(0.0f, scale);
        std::vector<float> v(n);
        for (float& x : v) x = d(rng_);
        return v;
    }
    std::vector<uint16_t> bf16(size_t n) {
        std::vector<uint16_t> v(n);
        const std::vector<float> f = randn(n);
        for (size_t i = 0; i < n; ++i) v[i] = float_to_bf16(1.0f + 0.1f * f[i]);
        return v;
    }
};

void expect_bits(const std::vector<float>& got, const std::vector<float>& want, const char* what) {
    ASSERT_EQ(got.size(), want.size());
    size_t differ = 0, first = got.size();
    for (size_t i = 0; i < got.size(); ++i)
        if (f32_to_bits(got[i]) != f32_to_bits(want[i])) first = std::min(first, i), ++differ;
    EXPECT_EQ(differ, 0u) << what << " differs in " << differ << " elements, first [" << first
                          << "]: " << (first < got.size() ? got[first] : 0.0f) << " vs "
                          << (first < got.size() ? want[first] : 0.0f);
}

void expect_ulps(const std::vector<float>& got, const std::vector<float>& want, int ulps, const char* what) {
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i) {
        const int64_t a = f32_to_bits(got[i]), b = f32_to_bits(want[i]);
        ASSERT_LE(std::llabs(a - b), ulps) << what << "[" << i << "]: " << got[i] << " vs " << want[i];
    }
}

TEST_F(KernelsCuda, ElementwiseOpsMatchTheirCpuTwins) {
    const int64_t n = 100003;
    const std::vector<float> a = randn(n, 3.0f), b = randn(n);
    std::vector<float> want(n);
    float* out = dev(std::vector<float>(n));

    cpu::silu_mul(a.data(), b.data(), n, want.data());
    cuda::silu_mul(dev(a), dev(b), n, out, nullptr);
    expect_ulps(host(out, n), want, 2, "silu_mul");

    cpu::add(a.data(), b.data(), n, want.data());
    cuda::add(dev(a), dev(b), n, out, nullptr);
    expect_bits(host(out, n), want, "add");
}

TEST_F(KernelsCuda, RowMovesMatchTheCpuForward) {
    const int64_t dim = 300, rows = 9;
    const std::vector<float> src = randn(rows * dim), y = randn(4 * dim), base = randn(rows * dim);
    const std::vector<int32_t> pick = {7, 0, 3, 8};
    const std::vector<float> scales = {0.25f, 1.5f, -0.3f, 0.7f};
    std::vector<float> want(pick.size() * dim);
    for (size_t r = 0; r < pick.size(); ++r) std::memcpy(&want[r * dim], &src[pick[r] * dim], dim * sizeof(float));
    float* out = dev(std::vector<float>(pick.size() * dim));
    cuda::gather_rows(dev(src), dev(pick), pick.size(), dim, out, nullptr);
    expect_bits(host(out, want.size()), want, "gather_rows");

    std::vector<float> acc = base;  // the CPU forward's expert combine: one add_scaled per picked row
    for (size_t r = 0; r < pick.size(); ++r) cpu::add_scaled(&y[r * dim], scales[r], dim, &acc[pick[r] * dim]);
    float* dacc = dev(base);
    cuda::scatter_add_scaled_rows(dev(y), dev(pick), dev(scales), pick.size(), dim, dacc, nullptr);
    expect_bits(host(dacc, acc.size()), acc, "scatter_add_scaled_rows");

    const std::vector<uint16_t> w = bf16(1000);
    std::vector<float> wide(w.size());
    cpu::bf16_to_float_array(w.data(), w.size(), wide.data());
    float* dwide = dev(std::vector<float>(w.size()));
    cuda::widen_bf16(dev(w), w.size(), dwide, nullptr);
    expect_bits(host(dwide, w.size()), wide, "widen_bf16");
}

TEST_F(KernelsCuda, RmsnormAndEmbeddingMatchTheirCpuTwins) {
    const int64_t tokens = 7, dim = 7168;
    const std::vector<float> x = randn(tokens * dim, 2.0f);
    const std::vector<uint16_t> w = bf16(dim);
    std::vector<float> want(tokens * dim);
    cpu::rmsnorm(x.data(), w.data(), tokens, dim, 1e-6f, want.data());
    float* out = dev(std::vector<float>(tokens * dim));
    cuda::rmsnorm(dev(x), dev(w), tokens, dim, 1e-6f, out, nullptr);
    expect_ulps(host(out, tokens * dim), want, 0, "rmsnorm");  // kernels/core fixes the order

    const int64_t begin = 500, end = 1000, edim = 64;  // this rank's half of a 1000-token vocabulary
    const std::vector<uint16_t> table = bf16((end - begin) * edim);
    const std::vector<int32_t> ids = {0, 499, 500, 777, 999, 3};
    std::vector<float> ewant(ids.size() * edim);
    cpu::embedding_bf16(ids.data(), ids.size(), table.data(), begin, end, edim, ewant.data());
    float* eout = dev(std::vector<float>(ids.size() * edim));
    cuda::embedding_bf16(dev(ids), ids.size(), dev(table), begin, end, edim, eout, nullptr);
    expect_bits(host(eout, ids.size() * edim), ewant, "embedding");
}

TEST_F(KernelsCuda, RopeMatchesItsCpuTwin) {
    ModelConfig cfg;  // DeepSeek-V3's YaRN settings
    const int64_t max_len = 8192, heads = 16, head = 192, rope = 64, tokens = 9;
    const cpu::RopeTable table = cpu::make_rope_table(cfg, max_len);
    std::vector<float> x = randn(tokens * heads * head);
    std::vector<int64_t> pos = {0, 1, 2, 100, 4095, 4096, 5000, 8000, 8191};
    float* dx = dev(x);
    cuda::apply_rope(dx + 128, tokens, heads * head, heads, head, rope, dev(pos), dev(table.cos), dev(table.sin),
                     nullptr);
    cpu::apply_rope(x.data() + 128, tokens, heads * head, heads, head, rope, pos.data(), table);
    expect_bits(host(dx, x.size()), x, "rope");
}

TEST_F(KernelsCuda, Fp8DequantizationAndSgemmMatchTheirCpuTwins) {
    const int64_t rows = 384, cols = 520, tokens = 5;  // a partial scale block in each direction
    std::vector<uint8_t> w(rows * cols);
    for (uint8_t& v : w) {
        v = static_cast<uint8_t>(rng_());
        if ((v & 0x7F) == 0x7F) v &= 0xFE;  // every finite e4m3 value of both signs; no NaN
    }
    const int64_t sr = cpu::scale_blocks(rows), sc = cpu::scale_blocks(cols);
    std::vector<float> scales = randn(sr * sc, 0.01f);
    std::vector<float> want(rows * cols);
    cpu::dequantize_fp8_block_to_float(w.data(), scales.data(), rows, cols, want.data());
    float* dw = dev(std::vector<float>(rows * cols));
    cuda::dequantize_fp8_block_to_float(dev(w), dev(scales), rows, cols, dw, 128, nullptr);
    expect_bits(host(dw, rows * cols), want, "dequantize");

    const std::vector<float> x = randn(tokens * cols);
    std::vector<float> y(tokens * rows);
    cpu::cpu_blas_ensure_init();
    cpu::linear_f32(x.data(), want.data(), y.data(), tokens, cols, rows);
    float* dy = dev(std::vector<float>(tokens * rows));
    cuda::Sgemm gemm;
    gemm.linear_f32(dev(x), dw, dy, tokens, cols, rows, nullptr);
    const std::vector<float> got = host(dy, tokens * rows);
    double worst = 0, scale = 0;
    for (size_t i = 0; i < y.size(); ++i) {
        worst = std::max(worst, std::fabs(double(got[i]) - y[i]));
        scale = std::max(scale, std::fabs(double(y[i])));
    }
    EXPECT_LT(worst / scale, 1e-5);
}

TEST_F(KernelsCuda, MoeRoutingMatchesItsCpuTwinBitForBit) {
    ModelConfig cfg;  // DeepSeek-V3: 256 experts, 8 groups, top-4 groups, top-8 experts, scaling 2.5
    const cpu::GateParams p = cpu::gate_params(cfg);
    const int64_t tokens = 300;
    std::vector<float> logits = randn(tokens * p.n_experts, 2.0f);
    for (int64_t e = 0; e < 16; ++e) logits[e] = 1.5f;  // ties inside and across groups of token 0
    const std::vector<float> bias = randn(p.n_experts, 0.01f);
    std::vector<float> want_w(tokens * p.topk);
    std::vector<int32_t> want_e(tokens * p.topk);
    cpu::moe_route(logits.data(), bias.data(), tokens, p, want_w.data(), want_e.data());
    float* w = dev(std::vector<float>(tokens * p.topk));
    int32_t* e = dev(std::vector<int32_t>(tokens * p.topk));
    cuda::moe_route(dev(logits), dev(bias), tokens, p, w, e, nullptr);
    EXPECT_EQ(host(e, want_e.size()), want_e);
    expect_bits(host(w, want_w.size()), want_w, "routing weights");
}

TEST_F(KernelsCuda, MlaAttentionMatchesItsCpuTwin) {
    const cpu::MlaDims d{16, 128, 64, 128, 512};  // DeepSeek-V3's head shapes, 16 local heads (tp 8)
    cuda::Sgemm gemm;
    // A prefill chunk that continues a cached prefix, and one decode step deep into the context.
    for (auto [tokens, start] : {std::pair<int64_t, int64_t>{5, 7}, {1, 300}}) {
        const int64_t end = start + tokens;
        const std::vector<float> q = randn(tokens * d.n_heads * d.qk_head_dim());
        const std::vector<float> kv = randn(end * d.kv_lora_rank), pe = randn(end * d.qk_rope_head_dim);
        const std::vector<float> wkv_b = randn(d.n_heads * (d.qk_nope_head_dim + d.v_head_dim) * d.kv_lora_rank, 0.05f);
        const float scale = 0.1147f;
        std::vector<float> want(tokens * d.n_heads * d.v_head_dim);
        std::vector<float> scratch(cpu::mla_attention_scratch_floats(d, tokens, start));
        cpu::mla_attention(q.data(), kv.data(), pe.data(), wkv_b.data(), d, tokens, start, scale, scratch.data(),
                           want.data());
        float* out = dev(std::vector<float>(want.size()));
        float* dscratch = dev(std::vector<float>(cuda::mla_attention_scratch_floats(d, tokens, start)));
        cuda::mla_attention(gemm, dev(q), dev(kv), dev(pe), dev(wkv_b), d, tokens, start, scale, dscratch, out,
                            nullptr);
        const std::vector<float> got = host(out, want.size());
        double worst = 0, top = 0;
        for (size_t i = 0; i < want.size(); ++i) {
            worst = std::max(worst, std::fabs(double(got[i]) - want[i]));
            top = std::max(top, std::fabs(double(want[i])));
        }
        EXPECT_LT(worst / top, 1e-5) << tokens << " tokens at " << start;
    }
}

TEST_F(KernelsCuda, ArgmaxMatchesItsCpuTwin) {
    const int64_t rows = 6, n = 129280;
    std::vector<float> x = randn(rows * n);
    x[1 * n + 5] = x[1 * n + 7] = 100.0f;                // a tie: the lower index wins
    x[2 * n + 3] = NAN;                                  // NaN is never chosen
    for (int64_t i = 0; i < n; ++i) x[3 * n + i] = NAN;  // all NaN: 0
    std::vector<int64_t> want(rows);
    for (int64_t r = 0; r < rows; ++r) want[r] = cpu::argmax(x.data() + r * n, n);
    int64_t* out = dev(std::vector<int64_t>(rows));
    cuda::argmax_rows(dev(x), rows, n, out, nullptr);
    EXPECT_EQ(host(out, rows), want);
}

}  // namespace
}  // namespace ecf8
