// The activation workspace of one forward step, buffer by buffer: what the memory plan counts and what the
// runtime's Model allocates, from one table (the plan is the allocator). A step holds at most
// StepLimits::tokens token rows (prefill chunks and decode tokens together), seqs sequences and logit_rows
// rows of returned logits; nothing in the step grows beyond that.
#pragma once

#include <cstdint>
#include <string>

#include "sharding/deploy_config.h"
#include "sharding/model_config.h"
#include "sharding/world_config.h"

namespace ecf8 {

struct StepLimits {
    int64_t tokens = 0;        // token rows per step (kv_cache.max_num_batched_tokens)
    int64_t seqs = 0;          // sequences per step (kv_cache.max_num_seqs)
    int64_t logit_rows = 0;    // rows of logits a step returns (seqs; every token's for tests)
    int64_t max_seq_len = 0;   // positions per sequence (kv_cache.max_model_len)
    int64_t block_tokens = 0;  // KV block size (kv_cache.block_size)

    int64_t max_blocks() const { return (max_seq_len + block_tokens - 1) / block_tokens; }  // a table's length
    void validate() const;                                                                  // throws naming the field
};

// The step's buffers. Device memory (tag "activations") unless noted.
enum class WsBuf : int {
    // Step inputs, uploaded once per step from their pinned mirror (host_inputs).
    positions,     // int64 [tokens]
    slots,         // int64 [tokens]: each token's KV slot
    tokens,        // int32 [tokens]
    token_seq,     // int32 [tokens]: each token's sequence (a row of block_tables)
    out_rows,      // int32 [logit_rows]
    block_tables,  // int32 [seqs, max_blocks]
    // Activations, float.
    x,
    h,
    block,
    expert_x,
    expert_y,     // [tokens, hidden]
    qa,           // [tokens, q_lora_rank]
    q,            // [tokens, local heads, qk_head_dim]
    kv,           // [tokens, kv_lora_rank + qk_rope_head_dim]
    attn,         // [tokens, local heads, v_head_dim]
    mla_scratch,  // core::paged_attention_scratch_floats
    gate,
    up,            // [tokens, widest local MLP part]
    route_logits,  // [tokens, n_routed_experts]
    route_weights,
    pick_scales,  // [tokens, topk]
    route_experts,
    pick_rows,     // int32 [tokens, topk]
    pick_offsets,  // int32 [local experts + 1]
    last,          // [logit_rows, hidden]
    local_logits,  // [logit_rows, vocab / tp]
    gathered,      // [logit_rows, vocab]
    ids,           // int32 [logit_rows]: greedy tokens (argmax where the logits are)
    // Pinned host memory.
    host_inputs,  // the inputs above (positions .. block_tables), in that order
    host_logits,  // [logit_rows, vocab]
    host_ids,     // int32 [logit_rows]
    count
};

const char* ws_buf_name(WsBuf b);
bool ws_buf_pinned(WsBuf b);

struct WorkspacePlan {
    uint64_t bytes[static_cast<int>(WsBuf::count)] = {};
    uint64_t dequant_bytes = 0;  // wkv_b of the local heads as float (tag "dequant_scratch")
    uint64_t gemm_bytes = 0;     // the linear's dequantized weight and, with GemmMode::Fp8, the FP8 GEMM's
                                 // largest call (tag "gemm_scratch")
    uint64_t rope_bytes = 0;     // the rotary tables (tag "rope_table")

    uint64_t of(WsBuf b) const { return bytes[static_cast<int>(b)]; }
    uint64_t device_bytes() const;  // every device buffer: activations, dequant, gemm, rope
    uint64_t pinned_bytes() const;
};

// Elements of the largest weight matrix one rank multiplies by (the linear's dequantization scratch).
int64_t max_linear_weight_elems(const ModelConfig& c, const WorldConfig& w);
// The widest MLP part one rank multiplies (dense, shared experts split by tp, or one routed expert).
int64_t max_local_intermediate(const ModelConfig& c, const WorldConfig& w);

// The bytes of the largest call of 1 to max_tokens tokens through the FP8 GEMM over the rank's linear
// layers that can take it (FP8 weights through Ops::linear: attention's projections and the dense and shared
// MLPs; in a multiple of 128, out of 16).
uint64_t fp8_gemm_bytes(const ModelConfig& c, const WorldConfig& w, int64_t max_tokens);

WorkspacePlan plan_workspace(const ModelConfig& c, const WorldConfig& w, const StepLimits& limits,
                             GemmMode gemm = GemmMode::Fp32);

}  // namespace ecf8
