// Multi-head latent attention on the CPU over the paged latent KV cache (kernels/core/paged_kv.h), for every
// token of a step at once: decode tokens and prefill chunks of many sequences mixed. The "absorb" path of
// MLA.forward in DeepSeek-V3's inference/model.py, tiled over the cache's blocks with an online softmax, so no
// score matrix over a whole context is ever formed.
#pragma once

#include <cstdint>

#include "kernels/core/paged_kv.h"

namespace ecf8::cpu {

// Shapes of one rank's share of an MLA layer.
struct MlaDims {
    int64_t n_heads = 0;  // local heads (num_attention_heads / tensor-parallel ranks)
    int64_t qk_nope_head_dim = 0;
    int64_t qk_rope_head_dim = 0;
    int64_t v_head_dim = 0;
    int64_t kv_lora_rank = 0;

    int64_t qk_head_dim() const { return qk_nope_head_dim + qk_rope_head_dim; }
};

// Throws unless every dimension is positive; both attention twins (CPU and CUDA) call it.
void check_mla_dims(const MlaDims& d);
// v as the int that BLAS takes; throws naming `what` when it does not fit (both twins call it).
int mla_blas_int(int64_t v, const char* what);

// Writes n_tokens rows of `row` floats (rows[t * row ..]: the normed latent then the roped key) into the
// layer's slots slots[t] (block * block_tokens + offset), rounded to the cache's dtype (BF16: nearest even).
// Throws on a slot outside the pool.
void kv_cache_write(const float* rows, int64_t n_tokens, const int64_t* slots, const core::KvPages& kv);

// Attention of the batch's tokens over the paged cache.
//   q         [n_tokens, n_heads, qk_head_dim]: q_nope then the roped q_pe per head.
//   kv        the layer's pages; every position a token attends to must be written.
//   wkv_b     [n_heads * (qk_nope_head_dim + v_head_dim), kv_lora_rank]: the local heads' rows, as float.
//   scratch   core::paged_attention_scratch_floats(...) floats.
//   out       [n_tokens, n_heads * v_head_dim], the input of wo.
// Per token and head: q_lat = q_nope . wkv_b_k (the absorb), then over the keys [0, position] in tiles of
// one block: scores = (q_lat . latent + q_pe . rope_key) * softmax_scale, an online softmax (running max and
// sum, the accumulated latent rescaled when the max grows), and out = (acc / sum) . wkv_b_v^T. A token's
// result does not depend on the other tokens of the batch. Throws on a block id outside the pool, a
// position beyond its sequence's table or one not below batch.max_keys (when given).
void paged_mla_attention(const float* q, const core::KvPages& kv, const float* wkv_b, const MlaDims& d,
                         const core::RaggedBatch& batch, float softmax_scale, float* scratch, float* out);

}  // namespace ecf8::cpu
