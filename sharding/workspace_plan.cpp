// plan_workspace: the step's buffers, sized from the model, the rank's share and the step limits.
#include "sharding/workspace_plan.h"

#include <algorithm>
#include <vector>

#include "common/error.h"
#include "kernels/core/fp8_gemm_scratch.h"
#include "kernels/core/paged_kv.h"

namespace ecf8 {
namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

constexpr const char* kNames[] = {"positions",
                                  "slots",
                                  "tokens",
                                  "token_seq",
                                  "out_rows",
                                  "block_tables",
                                  "x",
                                  "h",
                                  "block",
                                  "expert_x",
                                  "expert_y",
                                  "qa",
                                  "q",
                                  "kv",
                                  "attn",
                                  "mla_scratch",
                                  "gate",
                                  "up",
                                  "route_logits",
                                  "route_weights",
                                  "pick_scales",
                                  "route_experts",
                                  "pick_rows",
                                  "pick_offsets",
                                  "last",
                                  "local_logits",
                                  "gathered",
                                  "ids",
                                  "host_inputs",
                                  "host_logits",
                                  "host_ids"};
static_assert(sizeof(kNames) / sizeof(kNames[0]) == static_cast<size_t>(WsBuf::count), "one name per buffer");

}  // namespace

void StepLimits::validate() const {
    ECF8_CHECK(tokens >= 1, "step limits: tokens per step must be >= 1, got " << tokens);
    ECF8_CHECK(seqs >= 1 && seqs <= tokens,
               "step limits: sequences per step must be in [1, tokens per step " << tokens << "], got " << seqs);
    ECF8_CHECK(logit_rows >= 1 && logit_rows <= tokens,
               "step limits: logit rows must be in [1, tokens per step " << tokens << "], got " << logit_rows);
    ECF8_CHECK(max_seq_len >= 1, "step limits: max_seq_len must be >= 1, got " << max_seq_len);
    ECF8_CHECK(block_tokens >= 1, "step limits: block_tokens must be >= 1, got " << block_tokens);
}

const char* ws_buf_name(WsBuf b) { return kNames[static_cast<int>(b)]; }
bool ws_buf_pinned(WsBuf b) { return b == WsBuf::host_inputs || b == WsBuf::host_logits || b == WsBuf::host_ids; }

uint64_t WorkspacePlan::device_bytes() const {
    uint64_t sum = dequant_bytes + gemm_bytes + rope_bytes;
    for (int i = 0; i < static_cast<int>(WsBuf::count); ++i)
        if (!ws_buf_pinned(static_cast<WsBuf>(i))) sum += bytes[i];
    return sum;
}

uint64_t WorkspacePlan::pinned_bytes() const {
    return of(WsBuf::host_inputs) + of(WsBuf::host_logits) + of(WsBuf::host_ids);
}

int64_t max_local_intermediate(const ModelConfig& c, const WorldConfig& w) {
    return std::max({ceil_div(c.intermediate_size, w.tp_size),
                     ceil_div(c.moe_intermediate_size * std::max<int64_t>(c.n_shared_experts, 1), w.tp_size),
                     c.moe_intermediate_size});
}

namespace {

struct LinearShape {
    int64_t out, in;
    bool fp8;  // may take the FP8 GEMM: an FP8 weight through Ops::linear on a step's tokens
};

// The weight matrices one rank multiplies by through Ops::linear (or dequantizes for it). lm_head and the
// router's gate are BF16 in every checkpoint (sharding/model_tensors.cpp), and CUDA runs the routed experts
// through routed_experts_mlp, so those never take the FP8 GEMM.
std::vector<LinearShape> linear_shapes(const ModelConfig& c, const WorldConfig& w) {
    const int64_t h = c.hidden_size, heads = ceil_div(c.num_attention_heads, w.tp_size);
    const int64_t dense = ceil_div(c.intermediate_size, w.tp_size);
    const int64_t shared = ceil_div(c.moe_intermediate_size * std::max<int64_t>(c.n_shared_experts, 1), w.tp_size);
    return {{ceil_div(c.vocab_size, w.tp_size), h, false},   // lm_head
            {c.q_lora_rank, h, true},                        // q_a_proj
            {heads * c.qk_head_dim(), c.q_lora_rank, true},  // q_b_proj
            {c.kv_lora_rank + c.qk_rope_head_dim, h, true},  // kv_a_proj_with_mqa
            {h, heads * c.v_head_dim, true},                 // o_proj
            {dense, h, true},                                // dense MLP: gate_proj, up_proj
            {h, dense, true},                                // down_proj
            {shared, h, true},                               // shared experts: gate_proj, up_proj
            {h, shared, true},                               // down_proj
            {c.moe_intermediate_size, h, false},             // a routed expert's gate_proj, up_proj
            {h, c.moe_intermediate_size, false},             // down_proj
            {c.n_routed_experts, h, false}};                 // the router's gate
}

}  // namespace

int64_t max_linear_weight_elems(const ModelConfig& c, const WorldConfig& w) {
    int64_t most = 0;
    for (const LinearShape& s : linear_shapes(c, w)) most = std::max(most, s.out * s.in);
    return most;
}

uint64_t fp8_gemm_bytes(const ModelConfig& c, const WorldConfig& w, int64_t max_tokens) {
    ECF8_CHECK(max_tokens >= 1, "fp8_gemm_bytes: max_tokens " << max_tokens << " must be >= 1");
    uint64_t most = 0;
    for (const LinearShape& s : linear_shapes(c, w)) {
        if (!s.fp8 || s.in < core::kFp8GemmBlock || s.in % core::kFp8GemmBlock != 0 || s.out < 16 || s.out % 16 != 0)
            continue;
        most = std::max(most, core::fp8_linear_region_bound(max_tokens, s.in, s.out));
    }
    return most;
}

WorkspacePlan plan_workspace(const ModelConfig& c, const WorldConfig& w, const StepLimits& l, GemmMode gemm) {
    l.validate();
    const int64_t T = l.tokens, S = l.seqs, R = l.logit_rows, dim = c.hidden_size;
    const int64_t heads = c.num_attention_heads / w.tp_size, lora = c.kv_lora_rank, rope = c.qk_rope_head_dim;
    const int64_t k = c.n_routed_experts > 0 ? c.num_experts_per_tok : 0;
    const int64_t local_experts =
        c.n_routed_experts > 0 ? w.experts_for_rank(static_cast<int>(c.n_routed_experts)).size() : 0;
    const int64_t part = c.vocab_size / w.tp_size;
    const uint64_t f = 4, i32 = 4, i64 = 8;
    WorkspacePlan p;
    auto set = [&p](WsBuf b, int64_t count, uint64_t elem) { p.bytes[static_cast<int>(b)] = uint64_t(count) * elem; };
    set(WsBuf::positions, T, i64);
    set(WsBuf::slots, T, i64);
    set(WsBuf::tokens, T, i32);
    set(WsBuf::token_seq, T, i32);
    set(WsBuf::out_rows, R, i32);
    set(WsBuf::block_tables, S * l.max_blocks(), i32);
    for (WsBuf b : {WsBuf::x, WsBuf::h, WsBuf::block, WsBuf::expert_x, WsBuf::expert_y}) set(b, T * dim, f);
    set(WsBuf::qa, T * c.q_lora_rank, f);
    set(WsBuf::q, T * heads * c.qk_head_dim(), f);
    set(WsBuf::kv, T * (lora + rope), f);
    set(WsBuf::attn, T * heads * c.v_head_dim, f);
    set(WsBuf::mla_scratch, core::paged_attention_scratch_floats(heads, lora, rope, l.block_tokens, T), f);
    set(WsBuf::gate, T * max_local_intermediate(c, w), f);
    set(WsBuf::up, T * max_local_intermediate(c, w), f);
    set(WsBuf::route_logits, T * c.n_routed_experts, f);
    set(WsBuf::route_weights, T * k, f);
    set(WsBuf::pick_scales, T * k, f);
    set(WsBuf::route_experts, T * k, i32);
    set(WsBuf::pick_rows, T * k, i32);
    set(WsBuf::pick_offsets, local_experts + 1, i32);
    set(WsBuf::last, R * dim, f);
    set(WsBuf::local_logits, R * part, f);
    set(WsBuf::gathered, R * part * w.world_size, f);
    set(WsBuf::ids, R, i32);
    uint64_t inputs = 0;
    for (WsBuf b :
         {WsBuf::positions, WsBuf::slots, WsBuf::tokens, WsBuf::token_seq, WsBuf::out_rows, WsBuf::block_tables})
        inputs += p.of(b);
    p.bytes[static_cast<int>(WsBuf::host_inputs)] = inputs;
    set(WsBuf::host_logits, R * part * w.world_size, f);
    set(WsBuf::host_ids, R, i32);
    p.dequant_bytes = uint64_t(heads * (c.qk_nope_head_dim + c.v_head_dim) * lora) * f;
    p.gemm_bytes = uint64_t(max_linear_weight_elems(c, w)) * f;
    if (gemm == GemmMode::Fp8) p.gemm_bytes = std::max(p.gemm_bytes, fp8_gemm_bytes(c, w, T));
    p.rope_bytes = 2 * uint64_t(l.max_seq_len) * uint64_t(rope / 2) * f;
    return p;
}

}  // namespace ecf8
