// Multi-head latent attention on the CPU: the "absorb" path of MLA.forward in DeepSeek-V3's
// inference/model.py, over a latent KV cache, for one sequence.
#include "kernels/cpu/mla_attention.h"

#include <cblas.h>

#include "common/error.h"
#include "kernels/cpu/linear.h"
#include "kernels/cpu/sampling.h"

namespace ecf8::cpu {

void check_mla_dims(const MlaDims& d) {
    ECF8_CHECK(d.n_heads > 0, "mla_attention: n_heads " << d.n_heads << " must be positive");
    ECF8_CHECK(d.qk_nope_head_dim > 0, "mla_attention: qk_nope_head_dim " << d.qk_nope_head_dim << " must be positive");
    ECF8_CHECK(d.qk_rope_head_dim > 0, "mla_attention: qk_rope_head_dim " << d.qk_rope_head_dim << " must be positive");
    ECF8_CHECK(d.v_head_dim > 0, "mla_attention: v_head_dim " << d.v_head_dim << " must be positive");
    ECF8_CHECK(d.kv_lora_rank > 0, "mla_attention: kv_lora_rank " << d.kv_lora_rank << " must be positive");
}

int mla_blas_int(int64_t v, const char* what) {
    ECF8_CHECK(v >= 0 && v <= INT32_MAX, "mla_attention: " << what << " " << v << " exceeds the BLAS int range");
    return static_cast<int>(v);
}

int64_t mla_attention_scratch_floats(const MlaDims& d, int64_t n_tokens, int64_t start_pos) {
    return 2 * n_tokens * d.n_heads * d.kv_lora_rank + d.n_heads * (start_pos + n_tokens);
}

void mla_attention(const float* q, const float* kv_cache, const float* pe_cache, const float* wkv_b, const MlaDims& d,
                   int64_t n_tokens, int64_t start_pos, float softmax_scale, float* scratch, float* out) {
    check_mla_dims(d);
    ECF8_CHECK(n_tokens >= 0, "mla_attention: n_tokens " << n_tokens << " is negative");
    ECF8_CHECK(start_pos >= 0, "mla_attention: start_pos " << start_pos << " is negative");
    if (n_tokens == 0) return;
    ECF8_CHECK(q != nullptr && kv_cache != nullptr && pe_cache != nullptr && wkv_b != nullptr,
               "mla_attention: null q, kv_cache, pe_cache or wkv_b");
    ECF8_CHECK(scratch != nullptr && out != nullptr, "mla_attention: null scratch or out");
    cpu_blas_ensure_init();

    const int64_t H = d.n_heads, C = d.kv_lora_rank, R = d.qk_rope_head_dim;
    const int64_t NOPE = d.qk_nope_head_dim, V = d.v_head_dim, QK = d.qk_head_dim();
    const int64_t end_pos = start_pos + n_tokens;
    const int T = mla_blas_int(n_tokens, "n_tokens"), iC = mla_blas_int(C, "kv_lora_rank"),
              iR = mla_blas_int(R, "qk_rope_head_dim");
    const int iNOPE = mla_blas_int(NOPE, "qk_nope_head_dim"), iV = mla_blas_int(V, "v_head_dim");
    const int iH = mla_blas_int(H, "n_heads"), iQK = mla_blas_int(QK, "qk_head_dim"),
              ldq = mla_blas_int(H * QK, "n_heads * qk_head_dim");
    const int ldl = mla_blas_int(H * C, "n_heads * kv_lora_rank"), ldo = mla_blas_int(H * V, "n_heads * v_head_dim");
    mla_blas_int(end_pos, "start_pos + n_tokens");

    float* q_lat = scratch;                    // [T, H, C]: q_nope absorbed into the latent space
    float* o_lat = q_lat + n_tokens * H * C;   // [T, H, C]: probability-weighted latent rows
    float* scores = o_lat + n_tokens * H * C;  // [H, end_pos]: one query token's scores
    const int64_t wrows = NOPE + V;            // wkv_b rows per head

    // q_lat[t, h, :] = q_nope[t, h, :] . wkv_b[h, :NOPE, :]  (einsum "bshd,hdc->bshc")
    for (int64_t h = 0; h < H; ++h) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, iC, iNOPE, 1.0f, q + h * QK, ldq,
                    wkv_b + h * wrows * C, iC, 0.0f, q_lat + h * C, ldl);
    }
    for (int64_t t = 0; t < n_tokens; ++t) {
        // Causal: keys [0, p] only, so nothing needs masking.
        const int64_t p = start_pos + t;
        const int keys = static_cast<int>(p + 1);
        // scores[h, s] = (q_lat[t, h] . kv_cache[s] + q_pe[t, h] . pe_cache[s]) * softmax_scale
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, iH, keys, iC, 1.0f, q_lat + t * H * C, iC, kv_cache, iC,
                    0.0f, scores, keys);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, iH, keys, iR, 1.0f, q + t * H * QK + NOPE, iQK, pe_cache,
                    iR, 1.0f, scores, keys);
        for (int64_t h = 0; h < H; ++h) {
            float* row = scores + h * keys;
            for (int s = 0; s < keys; ++s) row[s] *= softmax_scale;
            softmax(row, keys, row);
        }
        // o_lat[t, h] = sum_s scores[h, s] kv_cache[s]  (einsum "bsht,btc->bshc")
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, iH, iC, keys, 1.0f, scores, keys, kv_cache, iC, 0.0f,
                    o_lat + t * H * C, iC);
    }
    // out[t, h, :] = o_lat[t, h] . wkv_b[h, NOPE:, :]^T  (einsum "bshc,hdc->bshd")
    for (int64_t h = 0; h < H; ++h) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, iV, iC, 1.0f, o_lat + h * C, ldl,
                    wkv_b + (h * wrows + NOPE) * C, iC, 0.0f, out + h * V, ldo);
    }
}

}  // namespace ecf8::cpu
