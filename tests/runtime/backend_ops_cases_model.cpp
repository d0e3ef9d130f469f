// The op harness's cases for the model's heavy ops (linear, dequantize, MLA attention, MoE routing) and the
// list of every case (backend_ops_harness.h).
#include <algorithm>

#include "kernels/core/fp8_gemm_scratch.h"
#include "kernels/cpu/fp8_gemm.h"
#include "tests/runtime/backend_ops_harness.h"

namespace ecf8::opstest {

// ---------------------------------------------------------------------------------------------------
// linear and dequantize: FP8 e4m3 with [ceil(rows / block), ceil(cols / block)] scales, or BF16

std::shared_ptr<HostWeight> random_weight(std::mt19937& rng, DType dtype, int64_t rows, int64_t cols, int64_t block) {
    auto w = std::make_shared<HostWeight>(HostWeight{dtype, rows, cols, block, {}, {}});
    if (dtype == DType::BF16) {
        const auto v = bf16_uniform(rng, rows * cols, -0.1f, 0.1f);
        w->data.resize(v.size() * 2);
        std::memcpy(w->data.data(), v.data(), w->data.size());
        return w;
    }
    std::uniform_int_distribution<int> byte(0, 255);
    w->data.resize(rows * cols);
    for (uint8_t& b : w->data) {
        do b = static_cast<uint8_t>(byte(rng));
        while ((b & 0x7F) == 0x7F);  // e4m3 NaN
    }
    std::uniform_real_distribution<float> e(-14.0f, -6.0f);
    w->scale_inv.resize(blocks(rows, block) * blocks(cols, block));
    for (float& s : w->scale_inv) s = std::exp2(e(rng));
    return w;
}

// The weight in backend memory; the buffers live in `keep`.
LinearWeight upload(const Device& d, const HostWeight& w, std::vector<Buffer>& keep) {
    keep.push_back(d.up(w.data));
    LinearWeight lw{keep.back().as<uint8_t>(), w.dtype, w.rows, w.cols, nullptr, w.block};
    if (w.dtype == DType::F8_E4M3) {
        keep.push_back(d.up(w.scale_inv));
        lw.scale_inv = keep.back().as<float>();
    }
    return lw;
}

// The activations as the FP8 GEMM sees them: quantized to e4m3 with 1 x 128 block scales, then widened.
std::vector<float> fp8_activations(const std::vector<float>& x, int64_t n_tokens, int64_t cols) {
    std::vector<uint8_t> q(x.size());
    std::vector<float> scales(static_cast<size_t>(n_tokens * ((cols + 127) / 128)));
    cpu::quantize_activations_fp8(x.data(), n_tokens, cols, q.data(), scales.data());
    std::vector<float> out(x.size());
    for (size_t i = 0; i < x.size(); ++i) {
        const int64_t t = static_cast<int64_t>(i) / cols, k = static_cast<int64_t>(i) % cols;
        out[i] = static_cast<float>(e4m3_value(q[i]) * scales[t * ((cols + 127) / 128) + k / 128]);
    }
    return out;
}

// fp8_gemm: the CUDA side runs through use_fp8_gemm(true) (op "linear_fp8_gemm", bounded by max |y|). The CPU
// has no FP8 GEMM, so it and the reference take the activations that the GEMM quantizes (fp8_activations):
// the bound then covers the GEMM's accumulation, not the e4m3 rounding of x (several % of y).
OpCase make_linear(std::mt19937& rng, DType dtype, int64_t n_tokens, int64_t rows, int64_t cols, int64_t block,
                   bool fp8_gemm = false) {
    auto w = random_weight(rng, dtype, rows, cols, block);
    auto x_in = std::make_shared<std::vector<float>>(uniform(rng, n_tokens * cols, -1, 1));
    auto x = fp8_gemm ? std::make_shared<std::vector<float>>(fp8_activations(*x_in, n_tokens, cols)) : x_in;
    return {fp8_gemm ? "linear_fp8_gemm" : "linear",
            [=](const Device& d) {
                std::vector<Buffer> keep;
                const LinearWeight lw = upload(d, *w, keep);
                const bool on_cpu = d.backend->kind() == BackendKind::Cpu;
                Buffer xb = d.up(on_cpu ? *x : *x_in), y = d.alloc(n_tokens * rows);
                const bool gemm = fp8_gemm && !on_cpu;
                // The FP8 GEMM works in the linear's scratch: size it as the plan does (compute.gemm fp8).
                const uint64_t fp8_bytes = gemm ? core::fp8_linear_region(n_tokens, cols, rows).total : 0;
                d.ops().reserve_linear_scratch(std::max<int64_t>(rows * cols, int64_t(fp8_bytes / sizeof(float))));
                if (gemm) d.ops().use_fp8_gemm(true);
                d.ops().linear(lw, xb.as<float>(), n_tokens, y.as<float>(), d.s());
                auto out = d.down<float>(y, n_tokens * rows);
                if (gemm) d.ops().use_fp8_gemm(false);
                return Output{out, {}};
            },
            [=] {
                Reference r;
                for (int64_t t = 0; t < n_tokens; ++t) {
                    for (int64_t o = 0; o < rows; ++o) {
                        double s = 0.0, m = 0.0;
                        for (int64_t k = 0; k < cols; ++k) {
                            const double p = (*x)[t * cols + k] * w->at(o, k);
                            s += p;
                            m += std::fabs(p);
                        }
                        r.f.push_back(s);
                        r.mag.push_back(m);
                    }
                }
                if (fp8_gemm) {
                    double top = 0.0;
                    for (double v : r.f) top = std::max(top, std::fabs(v));
                    r.mag.assign(r.f.size(), top);
                }
                return r;
            }};
}

OpCase make_dequantize(std::mt19937& rng, DType dtype, int64_t rows, int64_t cols, int64_t block) {
    auto w = random_weight(rng, dtype, rows, cols, block);
    return {"dequantize",
            [=](const Device& d) {
                std::vector<Buffer> keep;
                const LinearWeight lw = upload(d, *w, keep);
                Buffer o = d.alloc(rows * cols);
                d.ops().dequantize(lw, o.as<float>(), d.s());
                return Output{d.down<float>(o, rows * cols), {}};
            },
            [=] {
                Reference r;
                for (int64_t k = 0; k < rows * cols; ++k) r.f.push_back(w->at(k / cols, k % cols));
                r.mag.assign(r.f.size(), 0.0);
                return r;
            }};
}

// ---------------------------------------------------------------------------------------------------
// moe_route: sigmoid scores, group-limited top-k (DeepSeek-V3's Gate.forward) in float64

// Routes one token; false where a decision (the group cut, the expert order up to the cut) is within
// `margin` of a tie, so the inputs can be redrawn.
bool route_token(const float* logits, const float* bias, const cpu::GateParams& p, double margin, int32_t* experts,
                 double* weights) {
    const int64_t E = p.n_experts, G = p.n_group, per = E / G;
    std::vector<double> score(E), choice(E);
    for (int64_t e = 0; e < E; ++e) {
        score[e] = 1.0 / (1.0 + std::exp(-static_cast<double>(logits[e])));
        choice[e] = score[e] + (bias ? bias[e] : 0.0);
    }
    std::vector<std::pair<double, int64_t>> groups;
    for (int64_t g = 0; g < G; ++g) {
        std::vector<double> c(choice.begin() + g * per, choice.begin() + (g + 1) * per);
        std::sort(c.rbegin(), c.rend());
        groups.push_back({bias && G > 1 ? c[0] + c[1] : c[0], g});
    }
    std::sort(groups.rbegin(), groups.rend());
    if (p.topk_group < G && groups[p.topk_group - 1].first - groups[p.topk_group].first < margin) return false;
    std::vector<std::pair<double, int64_t>> cand;
    for (int64_t k = 0; k < p.topk_group; ++k) {
        const int64_t g = groups[k].second;
        for (int64_t e = g * per; e < (g + 1) * per; ++e) cand.push_back({choice[e], -e});  // lower index first
    }
    std::sort(cand.rbegin(), cand.rend());
    for (size_t k = 1; k < std::min<size_t>(p.topk + 1, cand.size()); ++k) {
        if (cand[k - 1].first - cand[k].first < margin) return false;
    }
    double sum = 0.0;
    for (int64_t k = 0; k < p.topk; ++k) sum += score[-cand[k].second];
    for (int64_t k = 0; k < p.topk; ++k) {
        experts[k] = static_cast<int32_t>(-cand[k].second);
        weights[k] = score[experts[k]] / (p.norm_topk_prob ? sum : 1.0) * p.routed_scaling_factor;
    }
    return true;
}

constexpr double kRouteMargin = 1e-5;  // far above float rounding of the choice values (~1e-7)

OpCase make_moe(std::mt19937& rng, cpu::GateParams p, int64_t n_tokens, bool with_bias) {
    const int64_t E = p.n_experts;
    auto bias = std::make_shared<std::vector<float>>(with_bias ? uniform(rng, E, -0.1f, 0.1f) : std::vector<float>());
    auto logits = std::make_shared<std::vector<float>>(n_tokens * E);
    std::vector<int32_t> ex(p.topk);
    std::vector<double> wt(p.topk);
    for (int64_t t = 0; t < n_tokens; ++t) {
        float* row = logits->data() + t * E;
        int tries = 0;
        do {
            const auto v = uniform(rng, E, -4, 4);
            std::copy(v.begin(), v.end(), row);
            ECF8_CHECK(++tries < 1000, "moe_route case: no tie-free logits drawn");
        } while (!route_token(row, with_bias ? bias->data() : nullptr, p, kRouteMargin, ex.data(), wt.data()));
    }
    return {"moe_route",
            [=](const Device& d) {
                Buffer l = d.up(*logits), b = d.up(*bias);
                Buffer w = d.alloc(n_tokens * p.topk);
                Buffer e = d.alloc(n_tokens * p.topk);
                d.ops().moe_route(l.as<float>(), with_bias ? b.as<float>() : nullptr, n_tokens, p, w.as<float>(),
                                  e.as<int32_t>(), d.s());
                return Output{d.down<float>(w, n_tokens * p.topk), d.down<int32_t>(e, n_tokens * p.topk)};
            },
            [=] {
                Reference r;
                r.f.resize(n_tokens * p.topk);
                r.i.resize(r.f.size());
                for (int64_t t = 0; t < n_tokens; ++t) {
                    route_token(logits->data() + t * E, with_bias ? bias->data() : nullptr, p, 0.0,
                                r.i.data() + t * p.topk, r.f.data() + t * p.topk);
                }
                for (double v : r.f) r.mag.push_back(std::fabs(v));
                return r;
            }};
}

// ---------------------------------------------------------------------------------------------------
// The cases

cpu::GateParams gate(int64_t experts, int64_t topk, int64_t groups, int64_t topk_group, float factor, bool norm) {
    cpu::GateParams p;
    p.n_experts = experts;
    p.topk = topk;
    p.n_group = groups;
    p.topk_group = topk_group;
    p.scoring = cpu::ScoringFunc::Sigmoid;
    p.norm_topk_prob = norm;
    p.routed_scaling_factor = factor;
    return p;
}

std::vector<CaseSpec> all_cases() {
    using R = std::mt19937;
    const int64_t kHidden = 7168, kQLora = 1536, kKvLora = 512, kRope = 64, kMoeInter = 2048;
    const cpu::MlaDims kSmallMla{3, 16, 8, 12, 32}, kDeepSeekMla{16, 128, kRope, 128, kKvLora};
    const auto kDeepSeekGate = gate(256, 8, 8, 4, 2.5f, true);
    const DType F8 = DType::F8_E4M3, BF = DType::BF16;
    const core::KvDType BF16 = core::KvDType::BF16, F32 = core::KvDType::F32;
    // Decode tokens and prefill chunks together: a chunk after a cached prefix, a decode token at a block's
    // last row, a fresh prompt, a decode token at a block's first row.
    const std::vector<PagedSeq> kRagged = {{5, 7}, {15, 1}, {0, 9}, {16, 1}};
    return {
        {"to_device_4001_bytes", [](R& r) { return make_to_device(r, 4001); }},
        {"to_device_4_tokens_hidden", [=](R& r) { return make_to_device(r, 4 * kHidden * 4); }},
        {"fill_zero_1_byte", [](R& r) { return make_fill_zero(r, 1, 0, 1); }},
        {"fill_zero_129_bytes_at_3", [](R& r) { return make_fill_zero(r, 64, 3, 129); }},
        {"copy_rows_1x1", [](R& r) { return make_copy_rows(r, 1, 1, 1, 1); }},
        {"copy_rows_7x129_strided", [](R& r) { return make_copy_rows(r, 7, 129, 131, 200); }},
        {"copy_rows_kv_to_cache", [=](R& r) { return make_copy_rows(r, 4, kKvLora, kKvLora + kRope, kKvLora); }},
        {"embedding_vocab_part_hidden", [=](R& r) { return make_embedding(r, 8000, 3000, 4000, kHidden, 5); }},
        {"embedding_1_token_129", [](R& r) { return make_embedding(r, 10, 0, 10, 129, 1); }},
        {"embedding_empty_part", [](R& r) { return make_embedding(r, 50, 20, 20, 3, 4); }},
        {"rmsnorm_4x7168", [=](R& r) { return make_rmsnorm(r, 4, kHidden, kHidden, kHidden); }},
        {"rmsnorm_1x129", [](R& r) { return make_rmsnorm(r, 1, 129, 129, 129); }},
        {"rmsnorm_3x1536", [=](R& r) { return make_rmsnorm(r, 3, kQLora, kQLora, kQLora); }},
        {"rmsnorm_strided_kv_norm", [=](R& r) { return make_rmsnorm(r, 3, kKvLora, kKvLora + kRope, kKvLora); }},
        {"rmsnorm_strided_129", [](R& r) { return make_rmsnorm(r, 2, 129, 130, 140); }},
        {"rope_q_pe_16_heads",
         [=](R& r) {
             return make_rope(r, {3, 16, 192, 16 * 192, 128, kRope, 4096});
         }},
        {"rope_k_pe",
         [=](R& r) {
             return make_rope(r, {5, 1, 576, kKvLora + kRope, kKvLora, kRope, 4096});
         }},
        {"rope_1_token_odd",
         [](R& r) {
             return make_rope(r, {1, 3, 7, 23, 1, 6, 10});
         }},
        {"add_1", [](R& r) { return make_elementwise(r, 1, false); }},
        {"add_4x7168", [=](R& r) { return make_elementwise(r, 4 * kHidden, false); }},
        {"silu_mul_129", [](R& r) { return make_elementwise(r, 129, true); }},
        {"silu_mul_4x2048", [=](R& r) { return make_elementwise(r, 4 * kMoeInter, true); }},
        {"linear_bf16_1x129x131", [=](R& r) { return make_linear(r, BF, 1, 131, 129, 128); }},
        {"linear_bf16_gate_4x7168x256", [=](R& r) { return make_linear(r, BF, 4, 256, kHidden, 128); }},
        {"linear_fp8_1x200x129", [=](R& r) { return make_linear(r, F8, 1, 129, 200, 128); }},
        {"linear_fp8_wq_a_4x7168x1536", [=](R& r) { return make_linear(r, F8, 4, kQLora, kHidden, 128); }},
        {"linear_fp8_wkv_a_1x7168x576", [=](R& r) { return make_linear(r, F8, 1, kKvLora + kRope, kHidden, 128); }},
        {"linear_fp8_wq_b_3x1536x3072", [=](R& r) { return make_linear(r, F8, 3, 16 * 192, kQLora, 128); }},
        {"linear_fp8_down_2x2048x7168", [=](R& r) { return make_linear(r, F8, 2, kHidden, kMoeInter, 128); }},
        // CUDA: up to 64 tokens with rows of whole 16-byte loads take the one-warp-per-column kernel (the cases
        // above with 7168 or 2048 inputs; a head-like BF16 one with two passes of rows here), more tokens the
        // dequantize + SGEMM path, as do the 129- and 200-input cases.
        {"linear_bf16_head_5x7168x1000", [=](R& r) { return make_linear(r, BF, 5, 1000, kHidden, 128); }},
        {"linear_fp8_prefill_80x1024x512", [=](R& r) { return make_linear(r, F8, 80, 512, 1024, 128); }},
        {"dequantize_fp8_129x260", [=](R& r) { return make_dequantize(r, F8, 129, 260, 128); }},
        {"dequantize_fp8_block64", [=](R& r) { return make_dequantize(r, F8, 100, 70, 64); }},
        {"dequantize_fp8_576x7168", [=](R& r) { return make_dequantize(r, F8, kKvLora + kRope, kHidden, 128); }},
        {"dequantize_bf16_3x129", [=](R& r) { return make_dequantize(r, BF, 3, 129, 128); }},
        {"kv_write_bf16_ragged", [=](R& r) { return make_kv_cache_write(r, kDeepSeekMla, BF16, 16, kRagged); }},
        {"kv_write_f32_1_token",
         [=](R& r) {
             return make_kv_cache_write(r, kSmallMla, F32, 4, {{0, 1}});
         }},
        {"paged_mla_small_1_token_at_0",
         [=](R& r) {
             return make_paged_mla(r, kSmallMla, F32, 4, {{0, 1}});
         }},
        {"paged_mla_small_ragged_f32", [=](R& r) { return make_paged_mla(r, kSmallMla, F32, 4, kRagged); }},
        {"paged_mla_small_ragged_bf16", [=](R& r) { return make_paged_mla(r, kSmallMla, BF16, 3, kRagged); }},
        {"paged_mla_deepseek_decode_batch",
         [=](R& r) {
             return make_paged_mla(r, kDeepSeekMla, BF16, 64, {{31, 1}, {0, 1}, {130, 1}, {64, 1}});
         }},
        {"paged_mla_deepseek_mixed", [=](R& r) { return make_paged_mla(r, kDeepSeekMla, BF16, 16, kRagged); }},
        // Long contexts under few (token, head) pairs: the CUDA kernel splits them into parts and combines.
        {"paged_mla_deepseek_long_decode_split",
         [=](R& r) {
             return make_paged_mla(r, kDeepSeekMla, BF16, 16, {{3000, 1}});
         }},
        // The runtime's tables are max_model_len wide (here 131072 in blocks of 64): the split follows the
        // longest context, not the table.
        {"paged_mla_deepseek_wide_table_split",
         [=](R& r) {
             return make_paged_mla(r, kDeepSeekMla, BF16, 64, {{3000, 1}, {700, 1}}, 2048);
         }},
        {"paged_mla_small_ragged_split",
         [=](R& r) {
             return make_paged_mla(r, kSmallMla, F32, 4, {{700, 1}, {5, 1}, {0, 1}, {300, 2}});
         }},
        {"paged_mla_deepseek_prefill_129",
         [=](R& r) {
             return make_paged_mla(r, kDeepSeekMla, F32, 64, {{0, 129}});
         }},
        {"moe_route_deepseek_bias_5", [=](R& r) { return make_moe(r, kDeepSeekGate, 5, true); }},
        {"moe_route_deepseek_no_bias_3", [=](R& r) { return make_moe(r, kDeepSeekGate, 3, false); }},
        {"moe_route_deepseek_bias_1", [=](R& r) { return make_moe(r, kDeepSeekGate, 1, true); }},
        {"moe_route_64_groups_4_bias", [](R& r) { return make_moe(r, gate(64, 6, 4, 2, 1.0f, true), 4, true); }},
        {"moe_route_16_no_groups_no_norm", [](R& r) { return make_moe(r, gate(16, 4, 1, 1, 1.5f, false), 3, false); }},
        {"moe_dispatch_deepseek_3_tokens", [](R& r) { return make_moe_dispatch(r, 3, 8, 256, 32, 32); }},
        {"moe_dispatch_1_token_none_local", [](R& r) { return make_moe_dispatch(r, 1, 8, 256, 0, 8, true); }},
        {"moe_dispatch_all_local", [](R& r) { return make_moe_dispatch(r, 6, 2, 4, 0, 4); }},
        {"routed_experts_small",
         [](R& r) {
             return make_routed_experts(r, {8, 2, 5, 3, 129, 64, DType::F8_E4M3});
         }},
        {"routed_experts_bf16_1_token",
         [](R& r) {
             return make_routed_experts(r, {4, 2, 1, 4, 33, 17, DType::BF16});
         }},
        // About 600 picks per expert: more row tiles than CUDA's linear_picks has CTAs along the rows, so they loop.
        {"routed_experts_many_picks",
         [](R& r) {
             return make_routed_experts(r, {4, 2, 1200, 2, 40, 24, DType::BF16});
         }},
        // Experts in groups: two groups (64 + 36 local experts), tokens picking several experts of one group.
        {"routed_experts_grouped",
         [](R& r) {
             return make_routed_experts(r, {128, 8, 5, 100, 40, 24, DType::BF16, true});
         }},
        {"routed_experts_small_grouped",
         [](R& r) {
             return make_routed_experts(r, {8, 2, 5, 3, 129, 64, DType::F8_E4M3, true});
         }},
        {"routed_experts_deepseek",
         [=](R& r) {
             return make_routed_experts(r, {256, 8, 3, 2, kHidden, kMoeInter, F8});
         }},
        // CUDA's few-picks kernel (16-byte weight loads, one warp per output): BF16 in whole loads, and FP8
        // with about 20 picks per expert, several passes of its rows. The cases above with 129 or 33 inputs
        // take the tiled kernel, and so do steps of more than 64 tokens.
        {"routed_experts_bf16_whole_loads",
         [](R& r) {
             return make_routed_experts(r, {16, 4, 6, 5, 48, 40, DType::BF16, true});
         }},
        {"routed_experts_fp8_row_passes",
         [](R& r) {
             return make_routed_experts(r, {2, 1, 40, 2, 256, 128, DType::F8_E4M3});
         }},
        // Steps of more than 64 tokens under compute.gemm fp8: CUDA's BF16 tensor-core kernel. About 75 picks
        // per expert with partial tiles and scale blocks (200 inputs, 136 outputs); BF16 weights; and 256 tokens
        // of topk 8 over 64 experts with 512 x 256 experts (about 32 picks each, grids sized for 256).
        {"routed_experts_tc_fp8_partial_tiles",
         [](R& r) {
             ExpertsShape sh{8, 2, 300, 3, 200, 136, DType::F8_E4M3};
             sh.tensor_cores = true;
             return make_routed_experts(r, sh);
         }},
        {"routed_experts_tc_bf16",
         [](R& r) {
             ExpertsShape sh{4, 2, 150, 2, 72, 40, DType::BF16};
             sh.tensor_cores = true;
             return make_routed_experts(r, sh);
         }},
        {"routed_experts_tc_fp8_topk8",
         [](R& r) {
             ExpertsShape sh{64, 8, 256, 4, 512, 256, DType::F8_E4M3};
             sh.tensor_cores = true;
             return make_routed_experts(r, sh);
         }},
        {"blob_decode_mixed",
         [=](R& r) {
             using P = PickRange;
             return make_blob_decode(r, {{F8, 1},
                                         {F8, 65537, P::Picked},
                                         {BF, 131073, P::Empty},
                                         {F8, 300000, P::Picked, true},
                                         {BF, 250000},
                                         {BF, 1, P::Picked},
                                         {F8, 65537, P::Empty, true},
                                         {DType::U8, 1001, P::Picked}});
         }},
        {"blob_decode_all_skipped",
         [=](R& r) {
             using P = PickRange;
             return make_blob_decode(r, {{F8, 65537, P::Empty}, {BF, 3000, P::Empty}, {DType::U8, 100, P::Empty}});
         }},
        {"blob_decode_raw_copy_pinned",
         [=](R& r) {
             return make_blob_decode(r, {{DType::U8, 4096, PickRange::None, true}, {F8, 200000, PickRange::Picked}});
         }},
        {"gather_rows_8_of_32_hidden", [=](R& r) { return make_gather(r, 32, kHidden, 8); }},
        {"gather_rows_1x129", [](R& r) { return make_gather(r, 1, 129, 1); }},
        {"gather_rows_repeats", [](R& r) { return make_gather(r, 10, 3, 12); }},
        {"scatter_add_8_of_32_hidden", [=](R& r) { return make_scatter(r, 32, kHidden, 8); }},
        {"scatter_add_1x129", [](R& r) { return make_scatter(r, 1, 129, 1); }},
        {"scatter_add_5_of_10", [](R& r) { return make_scatter(r, 10, 3, 5); }},
        {"argmax_rows_4x129280", [](R& r) { return make_argmax_rows(r, 4, 1, 129280); }},
        {"argmax_rows_6_of_8_parts", [](R& r) { return make_argmax_rows(r, 6, 8, 129280 / 8); }},
        {"argmax_rows_1x1", [](R& r) { return make_argmax_rows(r, 1, 1, 1); }},
        {"argmax_rows_5_of_3x7", [](R& r) { return make_argmax_rows(r, 5, 3, 7); }},
        {"all_reduce_sum_1", [](R& r) { return make_collective(r, 1, false); }},
        {"all_reduce_sum_4x7168", [=](R& r) { return make_collective(r, 4 * kHidden, false); }},
        {"all_gather_1", [](R& r) { return make_collective(r, 1, true); }},
        {"all_gather_4x7168", [=](R& r) { return make_collective(r, 4 * kHidden, true); }},
        {"fp8_gemm_wq_a_4x7168x1536", [=](R& r) { return make_linear(r, F8, 4, kQLora, kHidden, 128, true); }, true},
        {"fp8_gemm_down_1x2048x7168", [=](R& r) { return make_linear(r, F8, 1, kHidden, kMoeInter, 128, true); }, true},
    };
}

std::vector<CaseSpec> cases(bool with_cuda_only) {
    std::vector<CaseSpec> out;
    for (auto& c : all_cases()) {
        if (with_cuda_only || !c.cuda_only) out.push_back(std::move(c));
    }
    return out;
}

// Each case draws from its own generator, seeded by the test seed and its name.
std::mt19937 case_rng(const std::string& name) {
    uint32_t h = 2166136261u;  // FNV-1a
    for (char c : name) h = (h ^ static_cast<uint8_t>(c)) * 16777619u;
    const uint64_t s = test_seed();
    std::seed_seq seq{static_cast<uint32_t>(s), static_cast<uint32_t>(s >> 32), h};
    return std::mt19937(seq);
}

std::string case_name(const ::testing::TestParamInfo<CaseSpec>& info) { return info.param.name; }

}  // namespace ecf8::opstest
