// Multi-head latent attention on the CPU over the paged latent cache: the "absorb" path of MLA.forward in
// DeepSeek-V3's inference/model.py, token by token, a cache block at a time with an online softmax.
#include "kernels/cpu/mla_attention.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>

#include "common/error.h"
#include "common/float_formats.h"
#include "kernels/cpu/linear.h"

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

namespace {

// The cache row of a slot, as floats: BF16 rows widened into `out`, F32 rows read in place.
const float* cache_rows(const core::KvPages& kv, int64_t block, int64_t rows, float* out) {
    const int64_t first = block * kv.block_tokens * kv.row;
    if (kv.dtype == core::KvDType::F32) return static_cast<const float*>(kv.data) + first;
    const uint16_t* src = static_cast<const uint16_t*>(kv.data) + first;
    for (int64_t i = 0; i < rows * kv.row; ++i) out[i] = bf16_to_float(src[i]);
    return out;
}

// One token of the batch: every local head over its sequence's keys [0, position], a block at a time.
//   q_lat [H, C] (absorbed), q_pe at q + NOPE with head stride QK; acc [H, C] receives the weighted latent.
//   tile: block_tokens * row floats, scores: H * block_tokens floats, ml: 2 * H floats (running max and sum).
void attend_one_token(const float* q_lat, const float* q, const core::KvPages& kv, const MlaDims& d,
                      const int32_t* table, int64_t table_blocks, int64_t position, float scale, float* tile,
                      float* scores, float* ml, float* acc) {
    const int64_t H = d.n_heads, C = d.kv_lora_rank, R = d.qk_rope_head_dim, QK = d.qk_head_dim();
    const int64_t bt = kv.block_tokens, row = kv.row;
    ECF8_CHECK(position / bt < table_blocks,
               "mla_attention: position " << position << " is beyond its sequence's " << table_blocks << " blocks");
    float *m = ml, *l = ml + H;
    std::fill(m, m + H, -INFINITY);
    std::fill(l, l + H, 0.0f);
    std::fill(acc, acc + H * C, 0.0f);
    for (int64_t b = 0; b * bt <= position; ++b) {
        const int32_t block = table[b];
        ECF8_CHECK(block >= 0 && block < kv.n_blocks,
                   "mla_attention: block id " << block << " is outside the pool of " << kv.n_blocks << " blocks");
        const int keys = static_cast<int>(std::min(bt, position + 1 - b * bt));
        const float* rows = cache_rows(kv, block, keys, tile);
        // scores[h, k] = q_lat[h] . latent[k] + q_pe[h] . rope_key[k]
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(H), keys, static_cast<int>(C), 1.0f,
                    q_lat, static_cast<int>(C), rows, static_cast<int>(row), 0.0f, scores, keys);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(H), keys, static_cast<int>(R), 1.0f,
                    q + d.qk_nope_head_dim, static_cast<int>(QK), rows + C, static_cast<int>(row), 1.0f, scores, keys);
        // Online softmax: rescale what was summed under the old max, then add this tile's exponentials.
        for (int64_t h = 0; h < H; ++h) {
            float* s = scores + h * keys;
            float tile_max = -INFINITY;
            for (int k = 0; k < keys; ++k) tile_max = std::max(tile_max, s[k] * scale);
            const float new_max = std::max(m[h], tile_max);
            const float correction = std::exp(m[h] - new_max);  // exp(-inf) = 0 on the first tile
            float sum = 0.0f;
            for (int k = 0; k < keys; ++k) sum += (s[k] = std::exp(s[k] * scale - new_max));
            l[h] = l[h] * correction + sum;
            m[h] = new_max;
            if (correction != 1.0f)
                for (int64_t c = 0; c < C; ++c) acc[h * C + c] *= correction;
        }
        // acc[h] += sum_k p[h, k] latent[k]
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(H), static_cast<int>(C), keys, 1.0f,
                    scores, keys, rows, static_cast<int>(row), 1.0f, acc, static_cast<int>(C));
    }
    for (int64_t h = 0; h < H; ++h)
        for (int64_t c = 0; c < C; ++c) acc[h * C + c] /= l[h];
}

}  // namespace

void kv_cache_write(const float* rows, int64_t n_tokens, const int64_t* slots, const core::KvPages& kv) {
    const int64_t n_slots = kv.n_blocks * kv.block_tokens;
    for (int64_t t = 0; t < n_tokens; ++t) {
        ECF8_CHECK(slots[t] >= 0 && slots[t] < n_slots,
                   "kv_cache_write: slot " << slots[t] << " is outside the pool of " << n_slots << " token rows");
        const float* src = rows + t * kv.row;
        if (kv.dtype == core::KvDType::F32) {
            std::copy(src, src + kv.row, static_cast<float*>(kv.data) + slots[t] * kv.row);
        } else {
            uint16_t* dst = static_cast<uint16_t*>(kv.data) + slots[t] * kv.row;
            for (int64_t i = 0; i < kv.row; ++i) dst[i] = float_to_bf16(src[i]);
        }
    }
}

void paged_mla_attention(const float* q, const core::KvPages& kv, const float* wkv_b, const MlaDims& d,
                         const core::RaggedBatch& batch, float softmax_scale, float* scratch, float* out) {
    check_mla_dims(d);
    const int64_t T = batch.n_tokens;
    ECF8_CHECK(T >= 0, "mla_attention: n_tokens " << T << " is negative");
    if (T == 0) return;
    ECF8_CHECK(q != nullptr && kv.data != nullptr && wkv_b != nullptr && scratch != nullptr && out != nullptr,
               "mla_attention: null q, cache, wkv_b, scratch or out");
    const int64_t H = d.n_heads, C = d.kv_lora_rank, R = d.qk_rope_head_dim;
    const int64_t NOPE = d.qk_nope_head_dim, V = d.v_head_dim, QK = d.qk_head_dim();
    ECF8_CHECK(kv.row == C + R && kv.block_tokens > 0,
               "mla_attention: cache rows of " << kv.row << " values, expected kv_lora_rank + qk_rope_head_dim");
    const int iC = mla_blas_int(C, "kv_lora_rank"), iNOPE = mla_blas_int(NOPE, "qk_nope_head_dim");
    const int iV = mla_blas_int(V, "v_head_dim");
    mla_blas_int(H * QK, "n_heads * qk_head_dim");
    mla_blas_int(kv.block_tokens * kv.row, "block_tokens * row");
    cpu_blas_ensure_init();

    float* q_lat = scratch;                           // [T, H, C]
    float* o_lat = q_lat + T * H * C;                 // [T, H, C]
    float* tile = o_lat + T * H * C;                  // [block_tokens, row]
    float* scores = tile + kv.block_tokens * kv.row;  // [H, block_tokens]
    float* ml = scores + H * kv.block_tokens;         // [2, H]
    const int64_t wrows = NOPE + V;                   // wkv_b rows per head
    for (int64_t t = 0; t < T; ++t) {
        // Token by token, so a token's result does not depend on the batch around it.
        const float* qt = q + t * H * QK;
        for (int64_t h = 0; h < H; ++h)  // q_lat[t, h] = q_nope[t, h] . wkv_b_k[h]  (einsum "bshd,hdc->bshc")
            cblas_sgemv(CblasRowMajor, CblasTrans, iNOPE, iC, 1.0f, wkv_b + h * wrows * C, iC, qt + h * QK, 1, 0.0f,
                        q_lat + (t * H + h) * C, 1);
        const int32_t seq = batch.token_seq[t];
        ECF8_CHECK(seq >= 0 && seq < batch.n_seqs,
                   "mla_attention: token " << t << " belongs to sequence " << seq << " of " << batch.n_seqs);
        ECF8_CHECK(batch.positions[t] >= 0, "mla_attention: token " << t << " has a negative position");
        ECF8_CHECK(batch.max_keys == 0 || batch.positions[t] < batch.max_keys,
                   "mla_attention: token " << t << " at position " << batch.positions[t]
                                           << " is past the batch's max_keys " << batch.max_keys);
        attend_one_token(q_lat + t * H * C, qt, kv, d, batch.block_tables + seq * batch.max_blocks, batch.max_blocks,
                         batch.positions[t], softmax_scale, tile, scores, ml, o_lat + t * H * C);
        for (int64_t h = 0; h < H; ++h)  // out[t, h] = o_lat[t, h] . wkv_b_v[h]^T  (einsum "bshc,hdc->bshd")
            cblas_sgemv(CblasRowMajor, CblasNoTrans, iV, iC, 1.0f, wkv_b + (h * wrows + NOPE) * C, iC,
                        o_lat + (t * H + h) * C, 1, 0.0f, out + t * H * V + h * V, 1);
    }
}

}  // namespace ecf8::cpu
