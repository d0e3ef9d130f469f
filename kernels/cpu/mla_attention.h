// Multi-head latent attention on the CPU: the "absorb" path of MLA.forward in DeepSeek-V3's
// inference/model.py, over a latent KV cache (kv_cache / pe_cache), for one sequence.
#pragma once

#include <cstdint>

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

// Floats of scratch mla_attention needs: 2 * n_tokens * n_heads * kv_lora_rank + n_heads * (start_pos + n_tokens).
int64_t mla_attention_scratch_floats(const MlaDims& d, int64_t n_tokens, int64_t start_pos);

// Attention of n_tokens new tokens of one sequence at positions start_pos .. start_pos + n_tokens - 1. The
// runtime calls it once per sequence (each sequence has its own caches and start_pos).
//   q         [n_tokens, n_heads, qk_head_dim]: q_nope then q_pe per head, q_pe already roped.
//   kv_cache  [>= start_pos + n_tokens, kv_lora_rank]: the sequence's kv_norm(kv) rows; rows
//             [0, start_pos + n_tokens) must be written, this call's tokens included.
//   pe_cache  [>= start_pos + n_tokens, qk_rope_head_dim]: the roped k_pe rows, likewise.
//   wkv_b     [n_heads * (qk_nope_head_dim + v_head_dim), kv_lora_rank]: the local heads' rows of wkv_b,
//             dequantized to float (head h: qk_nope rows of its k part, then v_head rows of its v part).
//   softmax_scale: attention_softmax_scale() (rope.h), as float.
//   scratch   mla_attention_scratch_floats(d, n_tokens, start_pos) floats.
//   out       [n_tokens, n_heads * v_head_dim], the input of wo.
// Causal: the query at position p attends to cache rows [0, p] only (the reference's -inf upper mask).
// Math as the reference's absorb path, all float: q_nope is projected into the latent space with wkv_b's k
// part, scores = (q_lat . kv + q_pe . pe) * softmax_scale, softmax with max subtraction (its sum in double),
// then the probability-weighted latent goes through wkv_b's v part. Products run through cblas_sgemm.
void mla_attention(const float* q, const float* kv_cache, const float* pe_cache, const float* wkv_b, const MlaDims& d,
                   int64_t n_tokens, int64_t start_pos, float softmax_scale, float* scratch, float* out);

}  // namespace ecf8::cpu
