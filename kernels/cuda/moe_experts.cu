// CUDA twins of kernels/cpu/moe_dispatch.h and the routed-expert MLP's steps, with the picks' counts read on
// the device (moe_dispatch's offsets), so that no host ever waits for routing. The host knows only a bound on
// an expert's picks (max_rows, the step's tokens), so the grids are capped at a few waves and their blocks loop
// over the actual count: a prefill step's experts do not launch CTAs by the hundred thousand only to exit.
#include <algorithm>

#include "common/error.h"
#include "common/float_formats.h"
#include "kernels/core/elementwise_core.h"
#include "kernels/cuda/ops.cuh"

namespace ecf8::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kTile = 32;                // linear_picks: a 32 x 32 output tile per block
constexpr int kTileRows = 8;             // ... computed by 32 x 8 threads, four rows each
constexpr int64_t kMaxBlocks = 2048;     // element-wise grids: a few waves of an H100/H200 (132 SMs)
constexpr int64_t kMaxRowTileCtas = 16;  // linear_picks: CTAs along the rows, each looping over row tiles

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

// Expert e's picks: [offsets[e], offsets[e] + count), count capped at max_rows (the scratch's rows).
__device__ int64_t pick_count(const int32_t* offsets, int64_t e, int64_t max_rows) {
    const int64_t n = offsets[e + 1] - offsets[e];
    return n < max_rows ? n : max_rows;
}

__global__ void gather_picks_kernel(const float* src, const int32_t* rows, const int32_t* offsets, int64_t e,
                                    int64_t dim, int64_t max_rows, float* out) {
    const int32_t* mine = rows + offsets[e];
    const int64_t total = pick_count(offsets, e, max_rows) * dim;
    for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total; i += int64_t{gridDim.x} * blockDim.x)
        out[i] = src[mine[i / dim] * dim + i % dim];
}

__global__ void silu_mul_picks_kernel(const float* gate, const float* up, const int32_t* offsets, int64_t e,
                                      int64_t width, int64_t max_rows, float* out) {
    const int64_t total = pick_count(offsets, e, max_rows) * width;
    for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total; i += int64_t{gridDim.x} * blockDim.x)
        out[i] = core::silu_mul_one(gate[i], up[i]);
}

// A token picks an expert once, so no two threads add into one element.
__global__ void scatter_add_picks_kernel(const float* y, const int32_t* rows, const float* scales,
                                         const int32_t* offsets, int64_t e, int64_t dim, int64_t max_rows, float* out) {
    const int64_t begin = offsets[e], total = pick_count(offsets, e, max_rows) * dim;
    for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total; i += int64_t{gridDim.x} * blockDim.x) {
        const int64_t r = i / dim;
        float* dst = out + rows[begin + r] * dim + i % dim;
        *dst = core::add_scaled_one(*dst, y[i], scales[begin + r]);
    }
}

// y[r, n] = sum_k x[r, k] * W[n, k] for the expert's picks r: W FP8 e4m3 with block scales (dequantized as
// the CPU does, one float product) or BF16, loaded a 32 x 32 tile at a time; FP32 sums in k order.
template <bool kFp8>
__global__ void linear_picks_kernel(const float* x, const uint8_t* w, const float* scale_inv, int64_t block,
                                    int64_t out_features, int64_t in_features, const int32_t* offsets, int64_t e,
                                    int64_t max_rows, float* y) {
    const int64_t count = pick_count(offsets, e, max_rows);
    const int64_t col0 = int64_t{blockIdx.x} * kTile;
    __shared__ float xs[kTile][kTile + 1], ws[kTile][kTile + 1];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int64_t scale_cols = (in_features + block - 1) / block;
    // The same for every thread of the CTA, so the barriers inside stay uniform.
    for (int64_t row0 = int64_t{blockIdx.y} * kTile; row0 < count; row0 += int64_t{gridDim.y} * kTile) {
        float acc[kTile / kTileRows] = {};
        for (int64_t k0 = 0; k0 < in_features; k0 += kTile) {
            const int64_t k = k0 + tx;
            for (int j = ty; j < kTile; j += kTileRows) {
                const int64_t r = row0 + j, n = col0 + j;
                xs[j][tx] = r < count && k < in_features ? x[r * in_features + k] : 0.0f;
                float wv = 0.0f;
                if (n < out_features && k < in_features) {
                    if constexpr (kFp8) {
                        wv =
                            fp8_e4m3_to_float(w[n * in_features + k]) * scale_inv[(n / block) * scale_cols + k / block];
                    } else {
                        wv = bf16_to_float(reinterpret_cast<const uint16_t*>(w)[n * in_features + k]);
                    }
                }
                ws[j][tx] = wv;
            }
            __syncthreads();
            for (int kk = 0; kk < kTile; ++kk) {
                const float wv = ws[tx][kk];
                for (int q = 0; q < kTile / kTileRows; ++q) acc[q] += xs[ty + kTileRows * q][kk] * wv;
            }
            __syncthreads();
        }
        for (int q = 0; q < kTile / kTileRows; ++q) {
            const int64_t r = row0 + ty + kTileRows * q, n = col0 + tx;
            if (r < count && n < out_features) y[r * out_features + n] = acc[q];
        }
    }
}

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

void gather_picks(const float* src, const int32_t* rows, const int32_t* offsets, int64_t e, int64_t dim,
                  int64_t max_rows, float* out, cudaStream_t stream) {
    gather_picks_kernel<<<blocks_for(max_rows * dim), kThreads, 0, stream>>>(src, rows, offsets, e, dim, max_rows, out);
    CUDA_CHECK(cudaGetLastError());
}

void silu_mul_picks(const float* gate, const float* up, const int32_t* offsets, int64_t e, int64_t width,
                    int64_t max_rows, float* out, cudaStream_t stream) {
    silu_mul_picks_kernel<<<blocks_for(max_rows * width), kThreads, 0, stream>>>(gate, up, offsets, e, width, max_rows,
                                                                                 out);
    CUDA_CHECK(cudaGetLastError());
}

void scatter_add_picks(const float* y, const int32_t* rows, const float* scales, const int32_t* offsets, int64_t e,
                       int64_t dim, int64_t max_rows, float* out, cudaStream_t stream) {
    scatter_add_picks_kernel<<<blocks_for(max_rows * dim), kThreads, 0, stream>>>(y, rows, scales, offsets, e, dim,
                                                                                  max_rows, out);
    CUDA_CHECK(cudaGetLastError());
}

void linear_picks(const uint8_t* w, bool fp8, const float* scale_inv, int64_t block, int64_t out_features,
                  int64_t in_features, const float* x, const int32_t* offsets, int64_t e, int64_t max_rows, float* y,
                  cudaStream_t stream) {
    ECF8_CHECK(out_features > 0 && in_features > 0 && max_rows >= 0 && (!fp8 || (scale_inv && block > 0)),
               "linear_picks: " << out_features << " x " << in_features << " weight, max_rows " << max_rows);
    if (max_rows == 0) return;
    const dim3 grid(static_cast<unsigned>((out_features + kTile - 1) / kTile),
                    static_cast<unsigned>(std::min((max_rows + kTile - 1) / kTile, kMaxRowTileCtas)));
    const dim3 threads(kTile, kTileRows);
    if (fp8) {
        linear_picks_kernel<true>
            <<<grid, threads, 0, stream>>>(x, w, scale_inv, block, out_features, in_features, offsets, e, max_rows, y);
    } else {
        linear_picks_kernel<false>
            <<<grid, threads, 0, stream>>>(x, w, nullptr, 1, out_features, in_features, offsets, e, max_rows, y);
    }
    CUDA_CHECK(cudaGetLastError());
}

}  // namespace ecf8::cuda
