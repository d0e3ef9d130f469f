// CUDA twin of kernels/cpu/mla_attention.h: MLA's absorb path over the paged latent KV cache
// (kernels/core/paged_kv.h), every token of a step at once, ragged over sequences.
//
// The two per-head projections are cuBLAS strided-batched SGEMMs (pedantic FP32; the CPU's BLAS calls). Between
// them one CTA per (token, head) walks the token's keys [0, position] one cache block (tile) at a time
// with an online softmax (flash-decoding style): its warps dot the query against the tile's rows into
// shared memory, warp 0 moves the running max m and sum l to the tile and turns the scores into weights,
// then every thread rescales its channels of the latent accumulator by exp(m_old - m_new) and adds the
// tile's weighted rows. Nothing grows with the context: shared memory holds the query, the accumulator and
// two tiles' scores (double-buffered, so one barrier per tile is saved), and no score matrix is formed, so
// neither scratch nor shared memory grows with a 32K-token context. A row's latent is read twice per tile
// (for the scores, then for the sum); the second read is meant to hit L1 or L2.
//
// Few (token, head) pairs over long contexts (a handful of decode tokens at 32K) would leave most SMs idle,
// so such steps split each context into parts (flash-decoding): one CTA per (token, head, part) writes
// its part's unnormalized latent sum, max and weight sum, and a second kernel combines the parts. Steps
// stay within kAttentionSplitCtas CTAs (kernels/core/paged_kv.h), whose partials the planned scratch holds.
//
// Against the CPU only the order of the sums differs: the dot products are split over lanes and reduced
// by shuffles, a tile's weighted rows are summed before the rescaled accumulator is added, and products
// are fused (fmaf). The tests compare within 1e-5 of the largest output.
//
// Bad inputs the CPU throws on cannot throw here: a slot outside the pool is not written, a block id
// outside the pool is skipped, positions beyond the token's block table are not read, and a token of a
// sequence outside the batch (or with no readable key) gets a zero output.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "common/error.h"
#include "common/float_formats.h"
#include "kernels/cuda/ops.cuh"

namespace ecf8::cuda {
namespace {

constexpr int kThreads = 256;  // 8 warps per (token, head): enough loads in flight for a decode token
constexpr int kWarps = kThreads / 32;
constexpr int kKeysPerWarp = 4;  // rows a warp dots at once, so their loads overlap
constexpr size_t kMaxSharedBytes = 48 * 1024;

// A cache element as float; pairs of adjacent elements in one load when rows and channels are even.
__device__ __forceinline__ float load1(const uint16_t* p) { return bf16_to_float(*p); }
__device__ __forceinline__ float load1(const float* p) { return *p; }
__device__ __forceinline__ float2 load2(const uint16_t* p) {
    const uint32_t u = *reinterpret_cast<const uint32_t*>(p);  // little-endian: element 0 is the low half
    return make_float2(bf16_to_float(static_cast<uint16_t>(u & 0xFFFFu)),
                       bf16_to_float(static_cast<uint16_t>(u >> 16)));
}
__device__ __forceinline__ float2 load2(const float* p) { return *reinterpret_cast<const float2*>(p); }

__device__ __forceinline__ void store(uint16_t* p, float v) { *p = float_to_bf16(v); }
__device__ __forceinline__ void store(float* p, float v) { *p = v; }

__device__ __forceinline__ float warp_sum(float v) {
    for (int off = 16; off > 0; off /= 2) v += __shfl_xor_sync(0xFFFFFFFFu, v, off);
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
    for (int off = 16; off > 0; off /= 2) v = fmaxf(v, __shfl_xor_sync(0xFFFFFFFFu, v, off));
    return v;
}

template <class T>
__global__ void kv_cache_write_kernel(const float* rows, int64_t n_tokens, const int64_t* slots, T* data,
                                      int64_t n_slots, int64_t row) {
    const int64_t total = n_tokens * row;
    for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total; i += int64_t{gridDim.x} * blockDim.x) {
        const int64_t slot = slots[i / row];
        if (slot < 0 || slot >= n_slots) continue;  // the host checks slots; never write outside the pool
        store(data + slot * row + i % row, rows[i]);
    }
}

// The attention kernel's arguments (all device pointers), passed by value.
struct AttnArgs {
    const float* q;      // [T, H, QK]: q_pe is q[t, h, nope ..]
    const float* q_lat;  // [T, H, C]
    float* o_lat;        // [T, H, C]
    const void* cache;   // [n_blocks, block_tokens, C + R]
    int64_t n_blocks, block_tokens;
    const int64_t* positions;
    const int32_t* token_seq;
    const int32_t* block_tables;
    int64_t n_seqs, max_blocks;
    int heads, C, R, qk_head, nope;
    float scale;
    // Context split: CTA (th, s) = (blockIdx.x, blockIdx.y) takes tiles [s * split_tiles, (s + 1) * split_tiles)
    // (the last part: to the token's end) and writes its partial [acc | max | sum] to partials[(th * gridDim.y + s) *
    // (C + 2)]; 0: no split, the CTA takes every tile and writes o_lat.
    int64_t split_tiles;
    float* partials;
};

// Scaled scores of a tile's rows [0, n) into s: warp w dots rows w*K .. w*K + K-1 (K = kKeysPerWarp), then
// each kWarps*K-th group after; the lanes split a row (q as [q_lat | q_pe], like the row) and shuffle-sum.
template <class T, bool kPairs>
__device__ void tile_scores(const T* tile, int n, int row, const float* q, float scale, float* s) {
    const int lane = threadIdx.x % 32;
    for (int j0 = threadIdx.x / 32 * kKeysPerWarp; j0 < n; j0 += kWarps * kKeysPerWarp) {
        const T* k[kKeysPerWarp];
        float dot[kKeysPerWarp];
#pragma unroll
        for (int u = 0; u < kKeysPerWarp; ++u) {
            k[u] = tile + int64_t{min(j0 + u, n - 1)} * row;  // past the tile's end: a valid row, its dot dropped
            dot[u] = 0.0f;
        }
        if constexpr (kPairs) {
            const float2* q2 = reinterpret_cast<const float2*>(q);
            for (int i = lane; i < row / 2; i += 32) {
                const float2 qi = q2[i];
#pragma unroll
                for (int u = 0; u < kKeysPerWarp; ++u) {
                    const float2 v = load2(k[u] + 2 * i);
                    dot[u] = fmaf(qi.y, v.y, fmaf(qi.x, v.x, dot[u]));
                }
            }
        } else {
            for (int i = lane; i < row; i += 32) {
                const float qi = q[i];
#pragma unroll
                for (int u = 0; u < kKeysPerWarp; ++u) dot[u] = fmaf(qi, load1(k[u] + i), dot[u]);
            }
        }
#pragma unroll
        for (int u = 0; u < kKeysPerWarp; ++u) {
            const float v = warp_sum(dot[u]);
            if (lane == 0 && j0 + u < n) s[j0 + u] = v * scale;
        }
    }
}

// Warp 0's online-softmax step over a tile's n scores: the running max m and sum l (warp 0's registers, the
// same in every lane) move to the tile and s becomes the weights exp(s - m). Returns the accumulator's
// rescale factor exp(m_old - m_new).
__device__ float tile_softmax(float* s, int n, float& m, float& l) {
    const int lane = threadIdx.x % 32;
    float mx = -INFINITY;
    for (int j = lane; j < n; j += 32) mx = fmaxf(mx, s[j]);
    const float m_new = fmaxf(m, warp_max(mx));
    const bool none = m_new == -INFINITY;  // every score so far -inf: no weight (not exp(-inf + inf) = NaN)
    const float alpha = none ? 1.0f : expf(m - m_new);
    float sum = 0.0f;
    for (int j = lane; j < n; j += 32) {
        const float p = none ? 0.0f : expf(s[j] - m_new);
        s[j] = p;
        sum += p;
    }
    l = l * alpha + warp_sum(sum);
    m = m_new;
    return alpha;
}

// acc[c] = acc[c] * alpha + sum_j p[j] * latent_j[c] for this thread's channels (pairs when kPairs): for
// one row j the threads read adjacent channels, so each row is one coalesced read per warp.
template <class T, bool kPairs>
__device__ void tile_accumulate(const T* tile, int n, int row, int C, const float* p, float alpha, float* acc) {
    if constexpr (kPairs) {
        float2* acc2 = reinterpret_cast<float2*>(acc);
        for (int c = threadIdx.x; c < C / 2; c += kThreads) {
            const T* v = tile + 2 * c;
            float2 a = make_float2(0.0f, 0.0f);
#pragma unroll 8
            for (int j = 0; j < n; ++j) {
                const float2 x = load2(v + int64_t{j} * row);
                a.x = fmaf(p[j], x.x, a.x);
                a.y = fmaf(p[j], x.y, a.y);
            }
            const float2 o = acc2[c];
            acc2[c] = make_float2(fmaf(o.x, alpha, a.x), fmaf(o.y, alpha, a.y));
        }
    } else {
        for (int c = threadIdx.x; c < C; c += kThreads) {
            const T* v = tile + c;
            float a = 0.0f;
#pragma unroll 8
            for (int j = 0; j < n; ++j) a = fmaf(p[j], load1(v + int64_t{j} * row), a);
            acc[c] = fmaf(acc[c], alpha, a);
        }
    }
}

// Shared memory of one CTA, in floats: q [C + R, rounded up to even], acc [C, rounded up to even], two
// tiles' scores [2, block_tokens], and the rescale factors and final sum [4].
int64_t shared_floats(int64_t C, int64_t R, int64_t block_tokens) {
    return (C + R + 1) / 2 * 2 + (C + 1) / 2 * 2 + 2 * block_tokens + 4;
}

// One CTA per (token, head) = blockIdx.x, and per context part = blockIdx.y when the context is split:
// o_lat[t, h] = softmax(scores) . latent over the token's keys, or the part's partial (see AttnArgs).
template <class T, bool kPairs>
__global__ void __launch_bounds__(kThreads) paged_attention_kernel(AttnArgs a) {
    extern __shared__ float4 shared_raw[];  // float4: aligned for the float2 views
    const int C = a.C, row = a.C + a.R;
    const int64_t bt = a.block_tokens, th = blockIdx.x, t = th / a.heads;
    float* q_s = reinterpret_cast<float*>(shared_raw);
    float* acc = q_s + (row + 1) / 2 * 2;
    float* scores = acc + (C + 1) / 2 * 2;
    float* stat = scores + 2 * bt;  // [0], [1]: each score buffer's rescale factor; [2]: the final sum
    for (int i = threadIdx.x; i < row; i += kThreads)
        q_s[i] = i < C ? a.q_lat[th * C + i] : a.q[th * a.qk_head + a.nope + (i - C)];
    for (int c = threadIdx.x; c < C; c += kThreads) acc[c] = 0.0f;
    __syncthreads();

    const int64_t seq = a.token_seq[t];
    const bool seq_ok = seq >= 0 && seq < a.n_seqs;
    // Keys [0, position]; none past the sequence's table (the CPU throws on those).
    const int64_t keys = seq_ok ? min(a.positions[t] + 1, a.max_blocks * bt) : 0;
    const int32_t* table = a.block_tables + (seq_ok ? seq : 0) * a.max_blocks;
    const T* cache = static_cast<const T*>(a.cache);
    float m = -INFINITY, l = 0.0f;  // warp 0's
    int buf = 0;
    const int64_t tile_begin = a.split_tiles > 0 ? blockIdx.y * a.split_tiles : 0;
    // The last part runs to the token's end, so a host max_keys that fell short would cost time, not keys.
    const int64_t tile_end = a.split_tiles > 0 && blockIdx.y + 1 < gridDim.y ? tile_begin + a.split_tiles : INT64_MAX;
    for (int64_t tile = tile_begin; tile < tile_end && tile * bt < keys; ++tile) {
        const int64_t b = table[tile];  // the same in every thread: the skip and the barriers stay uniform
        if (b < 0 || b >= a.n_blocks) continue;
        const T* rows = cache + b * bt * row;
        const int n = static_cast<int>(min(bt, keys - tile * bt));
        float* s = scores + buf * bt;
        tile_scores<T, kPairs>(rows, n, row, q_s, a.scale, s);
        __syncthreads();
        if (threadIdx.x < 32) {
            const float alpha = tile_softmax(s, n, m, l);
            if (threadIdx.x == 0) stat[buf] = alpha;
        }
        __syncthreads();
        // No barrier after: the next tile writes the other score buffer and factor (see the header).
        tile_accumulate<T, kPairs>(rows, n, row, C, s, stat[buf], acc);
        buf ^= 1;
    }
    if (a.split_tiles > 0) {  // the part's unnormalized sum, max and weight sum (an empty part: 0, -inf, 0)
        __syncthreads();      // acc's channels were last written by other threads (pairs)
        float* part = a.partials + (th * gridDim.y + blockIdx.y) * (C + 2);
        for (int c = threadIdx.x; c < C; c += kThreads) part[c] = acc[c];
        if (threadIdx.x == 0) part[C] = m, part[C + 1] = l;
        return;
    }
    if (threadIdx.x == 0) stat[2] = l;
    __syncthreads();
    const float sum = stat[2];
    for (int c = threadIdx.x; c < C; c += kThreads) a.o_lat[th * C + c] = sum == 0.0f ? 0.0f : acc[c] / sum;
}

// One CTA per (token, head): o_lat = sum_s acc_s exp(m_s - M) / sum_s l_s exp(m_s - M) over the `parts`
// partials, M their largest max; parts with no key (max -inf) weigh 0, and no key at all gives 0.
__global__ void __launch_bounds__(kThreads)
    combine_parts_kernel(const float* partials, int parts, int C, float* o_lat) {
    const int64_t th = blockIdx.x;
    const float* p = partials + th * parts * (C + 2);
    float mx = -INFINITY;
    for (int s = 0; s < parts; ++s) mx = fmaxf(mx, p[s * (C + 2) + C]);
    float sum = 0.0f;
    for (int s = 0; s < parts; ++s) {
        const float ms = p[s * (C + 2) + C];
        if (ms != -INFINITY) sum = fmaf(p[s * (C + 2) + C + 1], expf(ms - mx), sum);
    }
    for (int c = threadIdx.x; c < C; c += kThreads) {
        float v = 0.0f;
        for (int s = 0; s < parts; ++s) {
            const float ms = p[s * (C + 2) + C];
            if (ms != -INFINITY) v = fmaf(p[s * (C + 2) + c], expf(ms - mx), v);
        }
        o_lat[th * C + c] = sum == 0.0f ? 0.0f : v / sum;
    }
}

template <class T>
void launch_kernel(const AttnArgs& a, int64_t TH, int parts, bool pairs, size_t shared_bytes, cudaStream_t stream) {
    const dim3 grid(static_cast<unsigned>(TH), static_cast<unsigned>(parts));
    if (pairs)
        paged_attention_kernel<T, true><<<grid, kThreads, shared_bytes, stream>>>(a);
    else
        paged_attention_kernel<T, false><<<grid, kThreads, shared_bytes, stream>>>(a);
    CUDA_CHECK(cudaGetLastError());
    if (a.split_tiles > 0) {
        combine_parts_kernel<<<static_cast<unsigned>(TH), kThreads, 0, stream>>>(a.partials, parts, a.C, a.o_lat);
        CUDA_CHECK(cudaGetLastError());
    }
}

// How a step splits its contexts: `parts` per (token, head), each of `tiles` tiles (0: no split).
struct ContextSplit {
    int parts = 1;
    int64_t tiles = 0;
};

// As many parts as keep the step within kAttentionSplitCtas CTAs and give each at least kMinSplitTiles of
// the longest context's tiles (the batch's max_keys, else its whole table); none for batches that fill the
// GPU. Parts that would start past the longest context are dropped.
constexpr int64_t kMinSplitTiles = 4;
ContextSplit context_split(int64_t TH, const core::RaggedBatch& batch, int64_t block_tokens) {
    const int64_t longest = batch.max_keys > 0
                                ? std::min(batch.max_blocks, (batch.max_keys + block_tokens - 1) / block_tokens)
                                : batch.max_blocks;
    const int64_t parts = std::min(core::kAttentionSplitCtas / TH, longest / kMinSplitTiles);
    if (parts < 2) return {};
    const int64_t tiles = (longest + parts - 1) / parts;
    return {static_cast<int>((longest + tiles - 1) / tiles), tiles};
}

// Bytes of shared memory a CTA takes; throws beyond what a launch gets without opting in.
size_t shared_bytes_for(int64_t C, int64_t R, int64_t block_tokens) {
    const size_t bytes = static_cast<size_t>(shared_floats(C, R, block_tokens)) * sizeof(float);
    ECF8_CHECK(bytes <= kMaxSharedBytes, "paged_mla_attention (CUDA): a tile of "
                                             << block_tokens << " keys with kv_lora_rank " << C << " needs " << bytes
                                             << " bytes of shared memory, over " << kMaxSharedBytes);
    return bytes;
}

// Step (b): o_lat from q_lat and q_pe over the cache, one CTA per (token, head); TH = n_tokens * n_heads.
void launch_attention(const float* q, const float* q_lat, float* o_lat, float* partials, const core::KvPages& kv,
                      const core::RaggedBatch& batch, const cpu::MlaDims& d, int64_t TH, float scale,
                      size_t shared_bytes, cudaStream_t stream) {
    const int C = static_cast<int>(d.kv_lora_rank), R = static_cast<int>(d.qk_rope_head_dim);
    AttnArgs a;
    a.q = q, a.q_lat = q_lat, a.o_lat = o_lat;
    a.cache = kv.data, a.n_blocks = kv.n_blocks, a.block_tokens = kv.block_tokens;
    a.positions = batch.positions, a.token_seq = batch.token_seq, a.block_tables = batch.block_tables;
    a.n_seqs = batch.n_seqs, a.max_blocks = batch.max_blocks;
    a.heads = static_cast<int>(d.n_heads), a.C = C, a.R = R;
    a.qk_head = static_cast<int>(d.qk_head_dim()), a.nope = static_cast<int>(d.qk_nope_head_dim);
    a.scale = scale;
    const ContextSplit split = context_split(TH, batch, kv.block_tokens);
    const int parts = split.parts;
    a.split_tiles = split.tiles;
    a.partials = partials;
    // Pairs of elements per load when every row and its latent start on a pair.
    const int64_t elem = core::kv_elem_bytes(kv.dtype);
    const bool pairs = C % 2 == 0 && R % 2 == 0 && reinterpret_cast<uintptr_t>(kv.data) % (2 * elem) == 0;
    if (kv.dtype == core::KvDType::BF16)
        launch_kernel<uint16_t>(a, TH, parts, pairs, shared_bytes, stream);
    else
        launch_kernel<float>(a, TH, parts, pairs, shared_bytes, stream);
}

void check_pages(const core::KvPages& kv, const char* what) {
    ECF8_CHECK(kv.data != nullptr && kv.block_tokens > 0 && kv.n_blocks >= 0 && kv.row > 0,
               what << " (CUDA): bad KV pages (data " << kv.data << ", block_tokens " << kv.block_tokens
                    << ", n_blocks " << kv.n_blocks << ", row " << kv.row << ")");
    ECF8_CHECK(kv.dtype == core::KvDType::BF16 || kv.dtype == core::KvDType::F32,
               what << " (CUDA): unknown KV dtype " << static_cast<int>(kv.dtype));
}

}  // namespace

void kv_cache_write(const float* rows, int64_t n_tokens, const int64_t* slots, const core::KvPages& kv,
                    cudaStream_t stream) {
    ECF8_CHECK(n_tokens >= 0, "kv_cache_write (CUDA): n_tokens " << n_tokens << " is negative");
    if (n_tokens == 0) return;
    check_pages(kv, "kv_cache_write");
    const int64_t total = n_tokens * kv.row, n_slots = kv.n_blocks * kv.block_tokens;
    const unsigned blocks = static_cast<unsigned>(std::min<int64_t>((total + 255) / 256, 1 << 20));
    if (kv.dtype == core::KvDType::BF16)
        kv_cache_write_kernel<<<blocks, 256, 0, stream>>>(rows, n_tokens, slots, static_cast<uint16_t*>(kv.data),
                                                          n_slots, kv.row);
    else
        kv_cache_write_kernel<<<blocks, 256, 0, stream>>>(rows, n_tokens, slots, static_cast<float*>(kv.data), n_slots,
                                                          kv.row);
    CUDA_CHECK(cudaGetLastError());
}

void paged_mla_attention(Sgemm& gemm, const float* q, const core::KvPages& kv, const float* wkv_b,
                         const cpu::MlaDims& d, const core::RaggedBatch& batch, float softmax_scale, float* scratch,
                         float* out, cudaStream_t stream) {
    cpu::check_mla_dims(d);  // the CPU twin's checks, and its BLAS int range on every size below
    ECF8_CHECK(batch.n_tokens >= 0, "paged_mla_attention (CUDA): n_tokens " << batch.n_tokens << " is negative");
    if (batch.n_tokens == 0) return;
    check_pages(kv, "paged_mla_attention");
    ECF8_CHECK(kv.row == d.kv_lora_rank + d.qk_rope_head_dim,
               "paged_mla_attention (CUDA): cache rows of "
                   << kv.row
                   << " values, expected kv_lora_rank + qk_rope_head_dim = " << d.kv_lora_rank + d.qk_rope_head_dim);
    ECF8_CHECK(batch.n_seqs > 0 && batch.max_blocks > 0,
               "paged_mla_attention (CUDA): " << batch.n_seqs << " sequences of " << batch.max_blocks << " blocks");
    const int H = cpu::mla_blas_int(d.n_heads, "n_heads"), C = cpu::mla_blas_int(d.kv_lora_rank, "kv_lora_rank");
    cpu::mla_blas_int(d.qk_rope_head_dim, "qk_rope_head_dim");
    const int NOPE = cpu::mla_blas_int(d.qk_nope_head_dim, "qk_nope_head_dim");
    const int V = cpu::mla_blas_int(d.v_head_dim, "v_head_dim"), QK = cpu::mla_blas_int(d.qk_head_dim(), "qk_head_dim");
    const int T = cpu::mla_blas_int(batch.n_tokens, "n_tokens");
    const int TH = cpu::mla_blas_int(batch.n_tokens * d.n_heads, "n_tokens * n_heads");
    cpu::mla_blas_int(d.n_heads * d.qk_head_dim(), "n_heads * qk_head_dim");
    cpu::mla_blas_int(d.n_heads * std::max(d.kv_lora_rank, d.v_head_dim), "n_heads * kv_lora_rank");
    const size_t shared_bytes = shared_bytes_for(C, d.qk_rope_head_dim, kv.block_tokens);
    const long long wrows = NOPE + V;
    float* q_lat = scratch;                     // [T, H, C]
    float* o_lat = q_lat + int64_t{TH} * C;     // [T, H, C]
    float* partials = o_lat + int64_t{TH} * C;  // [parts of (token, head), C + 2] when the context is split
    cublasHandle_t h = gemm.handle();
    CUBLAS_CHECK(cublasSetStream(h, stream));
    const float one = 1.0f, zero = 0.0f;
    // Row-major products through column-major cuBLAS: a row-major [m, n] matrix is its column-major transpose.
    // q_lat[t, h, :] = q_nope[t, h, :] . wkv_b_k[h]   (per head, batched)
    CUBLAS_CHECK(cublasSgemmStridedBatched(h, CUBLAS_OP_N, CUBLAS_OP_N, C, T, NOPE, &one, wkv_b, C, wrows * C, q,
                                           H * QK, QK, &zero, q_lat, H * C, C, H));
    launch_attention(q, q_lat, o_lat, partials, kv, batch, d, TH, softmax_scale, shared_bytes, stream);
    // out[t, h, :] = o_lat[t, h] . wkv_b_v[h]^T   (per head, batched)
    CUBLAS_CHECK(cublasSgemmStridedBatched(h, CUBLAS_OP_T, CUBLAS_OP_N, V, T, C, &one, wkv_b + NOPE * int64_t{C}, C,
                                           wrows * C, o_lat, H * C, C, &zero, out, H * V, V, H));
}

}  // namespace ecf8::cuda
