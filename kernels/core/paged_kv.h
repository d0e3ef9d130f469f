// The paged latent KV cache's layout and the batched attention's arguments, shared by the CPU kernels
// (kernels/cpu/mla_attention.h), their CUDA twins (kernels/cuda/ops.cuh) and the memory plan.
//
// A layer's cache is a pool of fixed-size blocks, in the style of vLLM's block tables: block b holds
// block_tokens token rows, each row MLA's normed latent (kv_lora_rank values) then its roped key
// (qk_rope_head_dim values), in BF16 (round to nearest even) or F32. A sequence owns a list of blocks (its
// block table): position p lives in row p % block_tokens of block table[p / block_tokens], in slot
// table[p / block_tokens] * block_tokens + p % block_tokens of the layer.
#pragma once

#include <cstdint>

namespace ecf8::core {

inline constexpr int64_t kKvBlockTokens = 64;  // the default block size

enum class KvDType : int32_t { BF16 = 0, F32 = 1 };

inline constexpr int64_t kv_elem_bytes(KvDType t) { return t == KvDType::BF16 ? 2 : 4; }

// One layer of the pool, in backend memory.
struct KvPages {
    void* data = nullptr;  // [n_blocks, block_tokens, row] elements of dtype
    KvDType dtype = KvDType::BF16;
    int64_t block_tokens = kKvBlockTokens;
    int64_t n_blocks = 0;
    int64_t row = 0;  // kv_lora_rank + qk_rope_head_dim
};

// The step's token rows, ragged over sequences, in backend memory. Token t belongs to sequence
// token_seq[t] (a row of block_tables) and sits at position positions[t]; it attends to its sequence's
// positions [0, positions[t]], which must all be written (this step's tokens included).
struct RaggedBatch {
    int64_t n_tokens = 0;
    const int64_t* positions = nullptr;     // [n_tokens]
    const int32_t* token_seq = nullptr;     // [n_tokens]
    const int32_t* block_tables = nullptr;  // [n_seqs, max_blocks]
    int64_t n_seqs = 0;
    int64_t max_blocks = 0;
    // The most keys (position + 1) of any token, from the host's positions; 0: not known (max_blocks whole
    // blocks). Tables are as wide as max_model_len, so the CUDA attention sizes its context split by this.
    int64_t max_keys = 0;
};

// CTAs the CUDA attention may spread a step over when it splits long contexts (flash-decoding): a few
// decode tokens over a long context would otherwise run one CTA per (token, head) on a GPU of 132 SMs.
inline constexpr int64_t kAttentionSplitCtas = 512;

// Floats of scratch the batched attention takes for n_tokens rows: the absorbed queries and the weighted
// latents ([n_tokens, n_heads, kv_lora_rank] each), then one region each backend uses its own way: the
// CPU's key tile (its widened rows and scores), the CUDA kernel's context-split partials (per CTA the
// unnormalized latent sum, the running max and the sum of weights). The plan counts the same.
inline int64_t paged_attention_scratch_floats(int64_t n_heads, int64_t kv_lora_rank, int64_t qk_rope_head_dim,
                                              int64_t block_tokens, int64_t n_tokens) {
    const int64_t cpu_tile = block_tokens * (kv_lora_rank + qk_rope_head_dim) + n_heads * block_tokens + 2 * n_heads;
    const int64_t split_partials = kAttentionSplitCtas * (kv_lora_rank + 2);
    return 2 * n_tokens * n_heads * kv_lora_rank + (cpu_tile > split_partials ? cpu_tile : split_partials);
}

}  // namespace ecf8::core
