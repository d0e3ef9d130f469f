// Every CUDA op of kernels/cuda/ops.cuh against its CPU twin (gpu label; skips without a device), on
// random inputs with the seed printed. Tolerances: bit-identical for add, add_scaled, embedding, rope,
// dequantization, rmsnorm (kernels/core fixes the order of its sum of squares) and argmax (same operations,
// same rounding); silu_mul within 2 float ulps (CUDA's double exp is within 1 ulp);
// the SGEMM and the paged MLA attention within 1e-5 relative to the largest output (other summation orders);
// kv_cache_write bit-identical.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <utility>
#include <vector>

#include "common/float_formats.h"
#include "kernels/core/paged_kv.h"
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
    cuda::rmsnorm(dev(x), dim, dev(w), tokens, dim, 1e-6f, out, dim, nullptr);
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

// A layer's paged cache for the attention tests: the sequences' blocks drawn from a shuffled pool (out of
// order, interleaved between sequences, two blocks unused), every cached position written by the CPU and by
// the CUDA kv_cache_write from the same rows; the two pools must be equal byte for byte.
struct PagedPool {
    std::vector<uint8_t> cpu_bytes;
    uint8_t* dev_bytes = nullptr;
    core::KvPages cpu, cuda;  // the same pool, in host and in device memory
    std::vector<int32_t> tables;
    int64_t max_blocks = 0;
};

// One step's tokens: (sequence, position) pairs, in batch order.
using StepTokens = std::vector<std::pair<int32_t, int64_t>>;

class PagedAttentionCuda : public KernelsCuda {
protected:
    PagedPool make_pool(const cpu::MlaDims& d, int64_t bt, core::KvDType dtype, const std::vector<int64_t>& lengths) {
        PagedPool p;
        const int64_t row = d.kv_lora_rank + d.qk_rope_head_dim;
        int64_t used = 0;
        for (int64_t len : lengths) {
            p.max_blocks = std::max(p.max_blocks, (len + bt - 1) / bt + 1);  // a spare entry (-1) past the end
            used += (len + bt - 1) / bt;
        }
        std::vector<int32_t> ids(used + 2);
        std::iota(ids.begin(), ids.end(), 0);
        std::shuffle(ids.begin(), ids.end(), rng_);
        p.tables.assign(lengths.size() * p.max_blocks, -1);
        std::vector<int64_t> slots;
        size_t next = 0;
        for (size_t s = 0; s < lengths.size(); ++s) {
            for (int64_t b = 0; b * bt < lengths[s]; ++b) p.tables[s * p.max_blocks + b] = ids[next++];
            for (int64_t pos = 0; pos < lengths[s]; ++pos)
                slots.push_back(p.tables[s * p.max_blocks + pos / bt] * bt + pos % bt);
        }
        std::shuffle(slots.begin(), slots.end(), rng_);  // written in no particular order
        const int64_t n_blocks = used + 2;
        p.cpu_bytes.assign(n_blocks * bt * row * core::kv_elem_bytes(dtype), 0);
        p.dev_bytes = dev(p.cpu_bytes);
        p.cpu = core::KvPages{p.cpu_bytes.data(), dtype, bt, n_blocks, row};
        p.cuda = core::KvPages{p.dev_bytes, dtype, bt, n_blocks, row};
        const std::vector<float> rows = randn(slots.size() * row);
        cpu::kv_cache_write(rows.data(), slots.size(), slots.data(), p.cpu);
        cuda::kv_cache_write(dev(rows), slots.size(), dev(slots), p.cuda, nullptr);
        EXPECT_EQ(host(p.dev_bytes, p.cpu_bytes.size()), p.cpu_bytes) << "kv_cache_write";
        return p;
    }

    // The step's attention on both twins over the same pool; the CUDA result within 1e-5 of the largest output.
    void expect_attention_matches(const cpu::MlaDims& d, int64_t bt, core::KvDType dtype,
                                  const std::vector<int64_t>& lengths, const StepTokens& step, const char* what) {
        const PagedPool p = make_pool(d, bt, dtype, lengths);
        const int64_t T = step.size(), H = d.n_heads, C = d.kv_lora_rank;
        std::vector<int64_t> positions;
        std::vector<int32_t> token_seq;
        for (auto [seq, pos] : step) token_seq.push_back(seq), positions.push_back(pos);
        const std::vector<float> q = randn(T * H * d.qk_head_dim());
        const std::vector<float> wkv_b = randn(H * (d.qk_nope_head_dim + d.v_head_dim) * C, 0.05f);
        const float scale = 0.1147f;
        const int64_t scratch_floats = core::paged_attention_scratch_floats(H, C, d.qk_rope_head_dim, bt, T);

        core::RaggedBatch batch{
            T, positions.data(), token_seq.data(), p.tables.data(), static_cast<int64_t>(lengths.size()), p.max_blocks};
        std::vector<float> want(T * H * d.v_head_dim), scratch(scratch_floats);
        cpu::paged_mla_attention(q.data(), p.cpu, wkv_b.data(), d, batch, scale, scratch.data(), want.data());

        batch.positions = dev(positions);
        batch.token_seq = dev(token_seq);
        batch.block_tables = dev(p.tables);
        float* out = dev(std::vector<float>(want.size()));
        cuda::Sgemm gemm;
        cuda::paged_mla_attention(gemm, dev(q), p.cuda, dev(wkv_b), d, batch, scale,
                                  dev(std::vector<float>(scratch_floats)), out, nullptr);
        const std::vector<float> got = host(out, want.size());
        double worst = 0, top = 0;
        for (size_t i = 0; i < want.size(); ++i) {
            worst = std::max(worst, std::fabs(double(got[i]) - want[i]));
            top = std::max(top, std::fabs(double(want[i])));
        }
        ASSERT_GT(top, 0.0) << what;
        EXPECT_LT(worst / top, 1e-5) << what << (dtype == core::KvDType::BF16 ? ", BF16 cache" : ", F32 cache");
    }
};

// Decode tokens of three sequences of different lengths, listed out of sequence order.
StepTokens decode_step(const std::vector<int64_t>& lengths) {
    return {{2, lengths[2] - 1}, {0, lengths[0] - 1}, {1, lengths[1] - 1}};
}

// Sequence 1's last `chunk` positions as a prefill chunk between the decode tokens of sequences 2 and 0.
StepTokens mixed_step(const std::vector<int64_t>& lengths, int64_t chunk) {
    StepTokens step = {{2, lengths[2] - 1}};
    for (int64_t pos = lengths[1] - chunk; pos < lengths[1]; ++pos) step.push_back({1, pos});
    step.push_back({0, lengths[0] - 1});
    return step;
}

TEST_F(PagedAttentionCuda, MatchesItsCpuTwinAtDeepSeekDims) {
    const cpu::MlaDims d{16, 128, 64, 128, 512};  // DeepSeek-V3's head shapes, 16 local heads (tp 8)
    const std::vector<int64_t> lengths = {1, 200, 333};
    for (core::KvDType dtype : {core::KvDType::BF16, core::KvDType::F32}) {
        expect_attention_matches(d, 64, dtype, lengths, decode_step(lengths), "decode");
        // The chunk's positions 130 .. 199 cross a block boundary; each token sees a different prefix.
        expect_attention_matches(d, 64, dtype, lengths, mixed_step(lengths, 70), "decode + prefill");
    }
}

TEST_F(PagedAttentionCuda, MatchesItsCpuTwinAtSmallDims) {
    // Even dims (pairs of elements per load) with 16-token blocks, and odd kv_lora_rank (one element per load,
    // channels not a multiple of anything) with 4-token blocks: many tiles, a partial last one.
    const std::pair<cpu::MlaDims, int64_t> cases[] = {{{3, 8, 6, 10, 20}, 16}, {{2, 5, 3, 7, 9}, 4}};
    const std::vector<int64_t> lengths = {5, 40, 17};
    for (const auto& [d, bt] : cases) {
        for (core::KvDType dtype : {core::KvDType::BF16, core::KvDType::F32}) {
            expect_attention_matches(d, bt, dtype, lengths, decode_step(lengths), "decode");
            expect_attention_matches(d, bt, dtype, lengths, mixed_step(lengths, 23), "decode + prefill");
        }
    }
}

TEST_F(PagedAttentionCuda, StaysInsideThePool) {
    // Where the CPU throws, the CUDA twins must not touch memory outside the pool.
    const cpu::MlaDims d{2, 8, 4, 8, 12};
    const int64_t bt = 8, row = d.kv_lora_rank + d.qk_rope_head_dim;
    const PagedPool p = make_pool(d, bt, core::KvDType::BF16, {10, 3, 7});
    const std::vector<int64_t> bad_slots = {-1, p.cuda.n_blocks * bt};
    cuda::kv_cache_write(dev(randn(2 * row)), 2, dev(bad_slots), p.cuda, nullptr);
    EXPECT_EQ(host(p.dev_bytes, p.cpu_bytes.size()), p.cpu_bytes) << "a slot outside the pool was written";

    // A block id outside the pool is skipped: a token whose only block is bad sees no key and gets zeros.
    std::vector<int32_t> tables = p.tables;
    tables[0] = static_cast<int32_t>(p.cuda.n_blocks);
    const std::vector<int64_t> positions = {5};
    const std::vector<int32_t> token_seq = {0};
    const core::RaggedBatch batch{1, dev(positions), dev(token_seq), dev(tables), 3, p.max_blocks};
    const std::vector<float> q = randn(d.n_heads * d.qk_head_dim());
    const std::vector<float> wkv_b = randn(d.n_heads * (d.qk_nope_head_dim + d.v_head_dim) * d.kv_lora_rank);
    float* out = dev(randn(d.n_heads * d.v_head_dim));
    cuda::Sgemm gemm;
    cuda::paged_mla_attention(gemm, dev(q), p.cuda, dev(wkv_b), d, batch, 0.1f,
                              dev(std::vector<float>(core::paged_attention_scratch_floats(d.n_heads, d.kv_lora_rank,
                                                                                          d.qk_rope_head_dim, bt, 1))),
                              out, nullptr);
    EXPECT_EQ(host(out, d.n_heads * d.v_head_dim), std::vector<float>(d.n_heads * d.v_head_dim, 0.0f));

    core::RaggedBatch empty;  // no tokens: nothing is read, not even the null arrays
    cuda::paged_mla_attention(gemm, nullptr, p.cuda, nullptr, d, empty, 0.1f, nullptr, nullptr, nullptr);
    EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
}

TEST_F(KernelsCuda, ArgmaxRowsMatchesItsCpuTwin) {
    for (const int64_t blocks : {1, 4}) {
        const int64_t rows = 6, part = 129280 / blocks;
        std::vector<float> x = randn(rows * blocks * part);
        auto at = [&](int64_t r, int64_t v) -> float& { return x[((v / part) * rows + r) * part + v % part]; };
        at(1, 5) = at(1, part + 7) = 100.0f;  // a tie across parts: the lower index wins
        at(2, 3) = NAN;                       // a non-finite row: -1
        at(4, blocks * part - 1) = -INFINITY;
        at(5, blocks * part - 1) = 1000.0f;  // the last entry of the last part
        std::vector<int32_t> want(rows);
        cpu::argmax_rows(x.data(), rows, blocks, part, want.data());
        EXPECT_EQ(want[1], 5);
        EXPECT_EQ(want[2], -1);
        EXPECT_EQ(want[4], -1);
        int32_t* out = dev(std::vector<int32_t>(rows));
        cuda::argmax_rows(dev(x), rows, blocks, part, out, nullptr);
        EXPECT_EQ(host(out, rows), want) << blocks << " parts";
    }
}

}  // namespace
}  // namespace ecf8
