// CUDA twins of kernels/cpu/moe_dispatch.h and the routed-expert MLP's steps, with the picks' counts read on
// the device (moe_dispatch's offsets), so that no host ever waits for routing. The host knows only a bound on
// an expert's picks (max_rows, the step's tokens), so the grids are capped at a few waves and their blocks loop
// over the actual count: a prefill step's experts do not launch CTAs by the hundred thousand only to exit.
#include <cuda_bf16.h>
#include <mma.h>

#include <algorithm>

#include "common/error.h"
#include "common/float_formats.h"
#include "kernels/core/elementwise_core.h"
#include "kernels/cuda/linear_few.cuh"
#include "kernels/cuda/ops.cuh"

namespace ecf8::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kTile = 32;                  // linear_picks: a 32 x 32 output tile per block
constexpr int kTileRows = 8;               // ... computed by 32 x 8 threads, four rows each
constexpr int64_t kMaxBlocks = 2048;       // element-wise grids: a few waves of an H100/H200 (132 SMs)
constexpr int64_t kMaxRowTileCtas = 16;    // linear_picks: CTAs along the rows, each looping over row tiles
constexpr int kTcRows = 64, kTcCols = 64;  // linear_picks_tc: picks x output columns per CTA
constexpr int kTcK = 64;                   // ... inputs per staged tile; FP8 block scales span whole tiles
constexpr int kTcWarps = 8;                // ... each a 16 x 32 part of the output tile (two 16 x 16 fragments)
constexpr int kTcPitch = kTcK + 16;        // ... BF16 pitch of the staged tiles: rows 32-byte aligned (WMMA's rule)
constexpr int kTcOutPitch = kTcCols + 8;   // ... float pitch of the output tile: rows 32-byte aligned

unsigned blocks_for(int64_t n) {
    return static_cast<unsigned>(std::max<int64_t>(1, std::min((n + kThreads - 1) / kThreads, kMaxBlocks)));
}

// One block: thread e counts local expert e's picks, thread 0 turns the counts into offsets, and thread e
// writes e's picks in (token, slot) order: the CPU's order, with no atomics.
__global__ void moe_dispatch_kernel(const int32_t* experts, const float* weights, int64_t picks, int64_t topk,
                                    int64_t expert_begin, int64_t n_local, int32_t* offsets, int32_t* rows,
                                    float* scales) {
    extern __shared__ int32_t start[];  // n_local + 1
    for (int64_t e = threadIdx.x; e < n_local; e += blockDim.x) {
        int32_t n = 0;
        for (int64_t i = 0; i < picks; ++i) n += experts[i] == expert_begin + e ? 1 : 0;
        start[e + 1] = n;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        start[0] = 0;
        for (int64_t e = 0; e < n_local; ++e) start[e + 1] += start[e];
    }
    __syncthreads();
    for (int64_t e = threadIdx.x; e <= n_local; e += blockDim.x) offsets[e] = start[e];
    for (int64_t e = threadIdx.x; e < n_local; e += blockDim.x) {
        int32_t at = start[e];
        for (int64_t i = 0; i < picks; ++i) {
            if (experts[i] != expert_begin + e) continue;
            rows[at] = static_cast<int32_t>(i / topk);
            scales[at] = weights[i];
            ++at;
        }
    }
}

// The scratch rows of a group of local experts [e0, e0 + n): expert e0 + j's picks are scratch rows
// [start(j), start(j) + count(j)), pick p at row p - offsets[e0]; rows at or past cap_rows are dropped.
struct GroupRows {
    const int32_t* offsets;
    int64_t e0, n, cap_rows;
    __device__ int64_t base() const { return offsets[e0]; }
    __device__ int64_t total() const { return min(int64_t{offsets[e0 + n]} - base(), cap_rows); }
    __device__ int64_t start(int64_t j) const { return offsets[e0 + j] - base(); }
    __device__ int64_t count(int64_t j) const {
        return max(int64_t{0}, min(int64_t{offsets[e0 + j + 1]} - base(), cap_rows) - start(j));
    }
};

__global__ void gather_picks_kernel(const float* src, const int32_t* rows, GroupRows g, int64_t dim, float* out) {
    const int32_t* mine = rows + g.base();
    const int64_t total = g.total() * dim;
    for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total; i += int64_t{gridDim.x} * blockDim.x)
        out[i] = src[mine[i / dim] * dim + i % dim];
}

__global__ void silu_mul_picks_kernel(const float* gate, const float* up, GroupRows g, int64_t width, float* out) {
    const int64_t total = g.total() * width;
    for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total; i += int64_t{gridDim.x} * blockDim.x)
        out[i] = core::silu_mul_one(gate[i], up[i]);
}

// One expert's picks: a token picks an expert once, so no two threads add into one element.
__global__ void scatter_add_picks_kernel(const float* y, const int32_t* rows, const float* scales, GroupRows g,
                                         int64_t dim, float* out) {
    const int64_t begin = g.base(), total = g.total() * dim;
    for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total; i += int64_t{gridDim.x} * blockDim.x) {
        const int64_t r = i / dim;
        float* dst = out + rows[begin + r] * dim + i % dim;
        *dst = core::add_scaled_one(*dst, y[i], scales[begin + r]);
    }
}

// A group's picks, one block per token: thread j finds the token among expert e0 + j's picks (rows ascend
// within an expert: moe_dispatch writes them in token order), then the block adds the token's picks in
// expert order, as one expert after another would.
__global__ void scatter_add_group_kernel(const float* y, const int32_t* rows, const float* scales, GroupRows g,
                                         int64_t dim, float* out) {
    __shared__ int64_t found[kMaxExpertGroup];
    const int64_t token = blockIdx.x, base = g.base();
    for (int64_t j = threadIdx.x; j < g.n; j += blockDim.x) {
        const int64_t end = base + g.start(j) + g.count(j);
        int64_t lo = base + g.start(j), hi = end;  // the first pick in [lo, end) whose token is not below
        while (lo < hi) {
            const int64_t mid = (lo + hi) / 2;
            if (rows[mid] < token)
                lo = mid + 1;
            else
                hi = mid;
        }
        found[j] = lo < end && rows[lo] == token ? lo : -1;
    }
    __syncthreads();
    for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) {
        float v = out[token * dim + i];
        for (int64_t j = 0; j < g.n; ++j)
            if (found[j] >= 0) v = core::add_scaled_one(v, y[(found[j] - base) * dim + i], scales[found[j]]);
        out[token * dim + i] = v;
    }
}

// y[r, n] = sum_k x[r, k] * W[n, k] for the picks r of expert e0 + blockIdx.z: W FP8 e4m3 with block scales
// (dequantized as the CPU does, one float product) or BF16, loaded a 32 x 32 tile at a time; FP32 sums in k
// order.
template <bool kFp8>
__global__ void linear_picks_kernel(ExpertMatrices m, int64_t block, int64_t out_features, int64_t in_features,
                                    const float* x_all, GroupRows g, float* y_all) {
    const int64_t j = blockIdx.z, count = g.count(j);
    const float* x = x_all + g.start(j) * in_features;
    float* y = y_all + g.start(j) * out_features;
    const uint8_t* w = m.w[j];
    const float* scale_inv = m.scale_inv[j];
    const int64_t col0 = int64_t{blockIdx.x} * kTile;
    __shared__ float xs[kTile][kTile + 1], ws[kTile][kTile + 1];
    const int tx = threadIdx.x, ty = threadIdx.y;
    // The scale rows of the weight rows this thread stages, found once, and their block column once per tile,
    // rather than two 64-bit divisions per staged weight. The same scales, so the same bits.
    const float* scale_rows[kTile / kTileRows] = {};
    if constexpr (kFp8) {
        const int64_t scale_cols = (in_features + block - 1) / block;
        for (int q = 0; q < kTile / kTileRows; ++q)
            scale_rows[q] = scale_inv + ((col0 + ty + kTileRows * q) / block) * scale_cols;
    }
    // The same for every thread of the CTA, so the barriers inside stay uniform.
    for (int64_t row0 = int64_t{blockIdx.y} * kTile; row0 < count; row0 += int64_t{gridDim.y} * kTile) {
        float acc[kTile / kTileRows] = {};
        for (int64_t k0 = 0; k0 < in_features; k0 += kTile) {
            const int64_t k = k0 + tx, k_block = kFp8 ? k / block : 0;
            for (int r = ty; r < kTile; r += kTileRows) {
                const int64_t row = row0 + r, n = col0 + r;
                xs[r][tx] = row < count && k < in_features ? x[row * in_features + k] : 0.0f;
                float wv = 0.0f;
                if (n < out_features && k < in_features) {
                    if constexpr (kFp8) {
                        wv = fp8_e4m3_to_float(w[n * in_features + k]) * scale_rows[(r - ty) / kTileRows][k_block];
                    } else {
                        wv = bf16_to_float(reinterpret_cast<const uint16_t*>(w)[n * in_features + k]);
                    }
                }
                ws[r][tx] = wv;
            }
            __syncthreads();
            for (int kk = 0; kk < kTile; ++kk) {
                const float wv = ws[tx][kk];
                for (int q = 0; q < kTile / kTileRows; ++q) acc[q] += xs[ty + kTileRows * q][kk] * wv;
            }
            __syncthreads();
        }
        for (int q = 0; q < kTile / kTileRows; ++q) {
            const int64_t row = row0 + ty + kTileRows * q, n = col0 + tx;
            if (row < count && n < out_features) y[row * out_features + n] = acc[q];
        }
    }
}

// linear_picks on tensor cores, for steps whose experts have many picks (prefill) under compute.gemm fp8:
// the picks' rows of x are rounded to BF16 (8 significant bits, finer than the e4m3 activations of the FP8
// GEMM of the same mode), the weights' e4m3 or BF16 values are BF16 values exactly, WMMA multiplies 16 x 16
// x 16 fragments with FP32 sums, and an FP8 weight's block scale multiplies the sums of its block once (a
// 64-column tile and a 64-input stage lie inside one 128 x 128 scale block, so the scale is one number per
// CTA and block; the host asks block % 64 == 0). x and the weights are staged through shared memory tile by
// tile; rows past the expert's picks and columns or inputs past the matrix are zeros. Sums are in an order of
// the hardware's, so results differ from the SIMT kernels' in the last bits (the op harness bounds them).
template <bool kFp8>
__global__ void __launch_bounds__(kTcWarps * 32)
    linear_picks_tc_kernel(ExpertMatrices m, int64_t block, int64_t out_features, int64_t in_features,
                           const float* x_all, GroupRows g, float* y_all) {
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
    namespace wmma = nvcuda::wmma;
    using Acc = wmma::fragment<wmma::accumulator, 16, 16, 16, float>;
    const int64_t j = blockIdx.z, count = g.count(j);
    const float* x = x_all + g.start(j) * in_features;
    float* y = y_all + g.start(j) * out_features;
    const uint8_t* w = m.w[j];
    const int64_t col0 = int64_t{blockIdx.x} * kTcCols;
    const float* s_row = kFp8 ? m.scale_inv[j] + (col0 / block) * ((in_features + block - 1) / block) : nullptr;
    __shared__ __align__(32) __nv_bfloat16 xs[kTcRows][kTcPitch];
    __shared__ __align__(32) __nv_bfloat16 ws[kTcCols][kTcPitch];
    __shared__ __align__(32) float ys[kTcRows][kTcOutPitch];
    const int warp = static_cast<int>(threadIdx.x / 32);
    const int wr = warp / 2 * 16, wc = warp % 2 * 32;  // the warp's rows and columns in the tile
    // The same for every thread of the CTA, so the barriers inside stay uniform.
    for (int64_t row0 = int64_t{blockIdx.y} * kTcRows; row0 < count; row0 += int64_t{gridDim.y} * kTcRows) {
        Acc acc[2], part[2];  // the sums so far; an FP8 scale block's own
        for (int t = 0; t < 2; ++t) wmma::fill_fragment(acc[t], 0.0f), wmma::fill_fragment(part[t], 0.0f);
        for (int64_t k0 = 0; k0 < in_features; k0 += kTcK) {
            for (int e = threadIdx.x; e < kTcRows * kTcK; e += blockDim.x) {
                const int r = e / kTcK, kk = e % kTcK;
                const int64_t row = row0 + r, k = k0 + kk;
                xs[r][kk] = __float2bfloat16_rn(row < count && k < in_features ? x[row * in_features + k] : 0.0f);
            }
            for (int e = threadIdx.x; e < kTcCols * kTcK; e += blockDim.x) {
                const int c = e / kTcK, kk = e % kTcK;
                const int64_t n = col0 + c, k = k0 + kk;
                float v = 0.0f;
                if (n < out_features && k < in_features)
                    v = kFp8 ? fp8_e4m3_to_float(w[n * in_features + k])
                             : bf16_to_float(reinterpret_cast<const uint16_t*>(w)[n * in_features + k]);
                ws[c][kk] = __float2bfloat16_rn(v);  // exact: e4m3 and BF16 values are BF16 values
            }
            __syncthreads();
            for (int kk = 0; kk < kTcK; kk += 16) {
                wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> a;
                wmma::load_matrix_sync(a, &xs[wr][kk], kTcPitch);
                for (int t = 0; t < 2; ++t) {
                    // B[k][n] = W[n][k]: the staged weight rows, read column-major.
                    wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major> b;
                    wmma::load_matrix_sync(b, &ws[wc + 16 * t][kk], kTcPitch);
                    if constexpr (kFp8)
                        wmma::mma_sync(part[t], a, b, part[t]);
                    else
                        wmma::mma_sync(acc[t], a, b, acc[t]);
                }
            }
            __syncthreads();
            if (kFp8 && ((k0 + kTcK) % block == 0 || k0 + kTcK >= in_features)) {
                // The end of a scale block: one scale for all of the fragment's elements.
                const float s = s_row[k0 / block];
                for (int t = 0; t < 2; ++t) {
                    for (int i = 0; i < part[t].num_elements; ++i) acc[t].x[i] += s * part[t].x[i];
                    wmma::fill_fragment(part[t], 0.0f);
                }
            }
        }
        for (int t = 0; t < 2; ++t)
            wmma::store_matrix_sync(&ys[wr][wc + 16 * t], acc[t], kTcOutPitch, wmma::mem_row_major);
        __syncthreads();
        for (int e = threadIdx.x; e < kTcRows * kTcCols; e += blockDim.x) {
            const int r = e / kTcCols, c = e % kTcCols;
            const int64_t row = row0 + r, n = col0 + c;
            if (row < count && n < out_features) y[row * out_features + n] = ys[r][c];
        }
        __syncthreads();
    }
#endif
}

GroupRows group_rows(const PickGroup& g, const char* what) {
    ECF8_CHECK(g.offsets != nullptr && g.first >= 0 && g.count >= 1 && g.count <= kMaxExpertGroup && g.cap_rows >= 0 &&
                   g.expert_bound >= 0 && g.group_bound >= 0,
               what << ": experts [" << g.first << ", +" << g.count << ") (at most " << kMaxExpertGroup
                    << "), cap_rows " << g.cap_rows << ", bounds " << g.expert_bound << " and " << g.group_bound);
    return GroupRows{g.offsets, g.first, g.count, g.cap_rows};
}

// Rows the group's kernels may meet: the scratch's, or fewer by the host's bound.
int64_t group_rows_bound(const PickGroup& g) { return std::min(g.cap_rows, g.group_bound); }

}  // namespace

void moe_dispatch(const int32_t* experts, const float* weights, int64_t n_tokens, int64_t topk, int64_t expert_begin,
                  int64_t n_local, int32_t* offsets, int32_t* rows, float* scales, cudaStream_t stream) {
    ECF8_CHECK(n_tokens >= 0 && topk >= 1 && n_local >= 1 && n_local <= 4096 && expert_begin >= 0,
               "moe_dispatch: n_tokens " << n_tokens << ", topk " << topk << ", experts [" << expert_begin << ", +"
                                         << n_local << ")");
    const size_t shared = static_cast<size_t>(n_local + 1) * sizeof(int32_t);
    moe_dispatch_kernel<<<1, kThreads, shared, stream>>>(experts, weights, n_tokens * topk, topk, expert_begin, n_local,
                                                         offsets, rows, scales);
    CUDA_CHECK(cudaGetLastError());
}

void gather_picks(const float* src, const int32_t* rows, const PickGroup& g, int64_t dim, float* out,
                  cudaStream_t stream) {
    const GroupRows gr = group_rows(g, "gather_picks");
    const int64_t bound = group_rows_bound(g);
    if (bound == 0) return;
    gather_picks_kernel<<<blocks_for(bound * dim), kThreads, 0, stream>>>(src, rows, gr, dim, out);
    CUDA_CHECK(cudaGetLastError());
}

void silu_mul_picks(const float* gate, const float* up, const PickGroup& g, int64_t width, float* out,
                    cudaStream_t stream) {
    const GroupRows gr = group_rows(g, "silu_mul_picks");
    const int64_t bound = group_rows_bound(g);
    if (bound == 0) return;
    silu_mul_picks_kernel<<<blocks_for(bound * width), kThreads, 0, stream>>>(gate, up, gr, width, out);
    CUDA_CHECK(cudaGetLastError());
}

void scatter_add_picks(const float* y, const int32_t* rows, const float* scales, const PickGroup& g, int64_t dim,
                       float* out, cudaStream_t stream) {
    const GroupRows gr = group_rows(g, "scatter_add_picks");
    ECF8_CHECK(g.count == 1, "scatter_add_picks: one expert at a time (scatter_add_group for " << g.count << ")");
    const int64_t bound = group_rows_bound(g);
    if (bound == 0) return;
    scatter_add_picks_kernel<<<blocks_for(bound * dim), kThreads, 0, stream>>>(y, rows, scales, gr, dim, out);
    CUDA_CHECK(cudaGetLastError());
}

void scatter_add_group(const float* y, const int32_t* rows, const float* scales, const PickGroup& g, int64_t n_tokens,
                       int64_t dim, float* out, cudaStream_t stream) {
    const GroupRows gr = group_rows(g, "scatter_add_group");
    ECF8_CHECK(n_tokens >= 0 && n_tokens <= INT32_MAX, "scatter_add_group: n_tokens " << n_tokens);
    if (group_rows_bound(g) == 0 || n_tokens == 0) return;
    scatter_add_group_kernel<<<static_cast<unsigned>(n_tokens), kThreads, 0, stream>>>(y, rows, scales, gr, dim, out);
    CUDA_CHECK(cudaGetLastError());
}

void linear_picks(const ExpertMatrices& m, bool fp8, int64_t block, int64_t out_features, int64_t in_features,
                  const float* x, const PickGroup& g, float* y, bool tensor_cores, cudaStream_t stream) {
    const GroupRows gr = group_rows(g, "linear_picks");
    ECF8_CHECK(out_features > 0 && in_features > 0 && (!fp8 || block > 0),
               "linear_picks: " << out_features << " x " << in_features << " weights, block " << block);
    for (int64_t j = 0; j < g.count; ++j)
        ECF8_CHECK(m.w[j] != nullptr && (!fp8 || m.scale_inv[j] != nullptr),
                   "linear_picks: expert " << g.first + j << " has no weight or scales");
    const int64_t expert_rows = std::min({g.cap_rows, g.expert_bound, g.group_bound});
    if (expert_rows == 0) return;
    using Kernel = void (*)(ExpertMatrices, int64_t, int64_t, int64_t, const float*, GroupRows, float*);
    // The tiled kernels: CTAs along the rows for the most picks one expert can have, looping over the count.
    auto row_tiles = [&](int64_t tile) {
        return static_cast<unsigned>(std::min((expert_rows + tile - 1) / tile, kMaxRowTileCtas));
    };
    const auto cols = [&](int64_t per_cta) { return static_cast<unsigned>((out_features + per_cta - 1) / per_cta); };
    Kernel kernel;
    dim3 grid, threads;
    if (few_rows_fit(m.w, g.count, fp8, block, in_features, x) && expert_rows <= kFewRowsBound) {
        kernel = fp8 ? linear_few_kernel<true, GroupRows> : linear_few_kernel<false, GroupRows>;
        grid = dim3(cols(kFewWarps), static_cast<unsigned>(g.count));
        threads = dim3(kFewWarps * 32);
    } else if (tensor_cores && (!fp8 || block % kTcK == 0)) {
        kernel = fp8 ? linear_picks_tc_kernel<true> : linear_picks_tc_kernel<false>;
        grid = dim3(cols(kTcCols), row_tiles(kTcRows), static_cast<unsigned>(g.count));
        threads = dim3(kTcWarps * 32);
    } else {
        kernel = fp8 ? linear_picks_kernel<true> : linear_picks_kernel<false>;
        grid = dim3(cols(kTile), row_tiles(kTile), static_cast<unsigned>(g.count));
        threads = dim3(kTile, kTileRows);
    }
    kernel<<<grid, threads, 0, stream>>>(m, fp8 ? block : 1, out_features, in_features, x, gr, y);
    CUDA_CHECK(cudaGetLastError());
}

}  // namespace ecf8::cuda
