// The linear for few rows of x (decode steps), shared by the routed experts (moe_experts.cu, rows read from
// routing's pick counts on the device) and the dense linears (linear.cu, rows known on the host). Device code:
// include it from .cu files only.
#pragma once

#include <cstdint>

#include "common/float_formats.h"
#include "kernels/cuda/ops.cuh"

namespace ecf8::cuda {
namespace {

constexpr int kFewWarps = 8;           // output columns per CTA, one warp each
constexpr int kFewRows = 4;            // rows of x per pass over the weights
constexpr int64_t kFewRowsBound = 64;  // used where a matrix has at most this many rows (a host bound)

// Rows of a dense linear: all n of them, from row 0.
struct DenseRows {
    int64_t n;
    __device__ int64_t start(int64_t) const { return 0; }
    __device__ int64_t count(int64_t) const { return n; }
};

// y[r] = x[r] . W^T for the few rows r of each matrix j (decode steps): one warp per output column n, whose lanes
// stride over n's weights 16 bytes at a time (a warp reads 512 contiguous bytes; one block scale per 16
// bytes since the host asks block % 16 == 0), dequantize each weight once and multiply it into up to
// kFewRows rows of x, then add their partial sums by shuffles. The experts' tiled kernel walks K in 32-wide
// tiles with two barriers each and little memory in flight, so at one or two picks per expert it waits on
// latency, and the dense linears' dequantize + SGEMM writes and reads every weight as FP32; here a warp keeps
// its whole row of weights in flight and reads each once. Whole warps return together: no barriers.
// Products and sums are rounded one by one (no FMA: --fmad=false), as everywhere in these kernels.
// The host checks the 16-byte alignment of the weights and of x's rows (in_features % kPer == 0).
template <bool kFp8, class Rows>
__global__ void __launch_bounds__(kFewWarps * 32)
    linear_few_kernel(ExpertMatrices m, int64_t block, int64_t out_features, int64_t in_features, const float* x_all,
                      Rows g, float* y_all) {
    constexpr int kPer = kFp8 ? 16 : 8;  // weights per 16-byte load
    const int64_t j = blockIdx.y, count = g.count(j);
    const int64_t n = int64_t{blockIdx.x} * kFewWarps + (threadIdx.x >> 5);
    const int lane = static_cast<int>(threadIdx.x & 31);
    if (count == 0 || n >= out_features) return;
    const float* x = x_all + g.start(j) * in_features;
    float* y = y_all + g.start(j) * out_features;
    const int64_t chunks = in_features / kPer;
    const auto* w_row = reinterpret_cast<const uint4*>(m.w[j] + n * in_features * (kFp8 ? 1 : 2));
    const float* s_row = kFp8 ? m.scale_inv[j] + (n / block) * ((in_features + block - 1) / block) : nullptr;
    for (int64_t r0 = 0; r0 < count; r0 += kFewRows) {
        const int64_t rows = min(int64_t{kFewRows}, count - r0);
        float acc[kFewRows] = {};
        for (int64_t c = lane; c < chunks; c += 32) {
            const uint4 raw = __ldg(w_row + c);
            const uint32_t words[4] = {raw.x, raw.y, raw.z, raw.w};
            const int64_t k0 = c * kPer;
            float wv[kPer];
            if constexpr (kFp8) {
                // 32-bit: a 64-bit division costs several times more, once per 16 weights (the host asks
                // in_features < 2^31).
                const float scale = s_row[static_cast<uint32_t>(k0) / static_cast<uint32_t>(block)];
#pragma unroll
                for (int i = 0; i < kPer; ++i)
                    wv[i] = fp8_e4m3_to_float(static_cast<uint8_t>(words[i / 4] >> (8 * (i % 4)))) * scale;
            } else {
#pragma unroll
                for (int i = 0; i < kPer; ++i)
                    wv[i] = bf16_to_float(static_cast<uint16_t>(words[i / 2] >> (16 * (i % 2))));
            }
#pragma unroll
            for (int r = 0; r < kFewRows; ++r) {
                if (r >= rows) break;
                const auto* xr = reinterpret_cast<const float4*>(x + (r0 + r) * in_features + k0);
#pragma unroll
                for (int q = 0; q < kPer / 4; ++q) {
                    const float4 v = __ldg(xr + q);
                    acc[r] += v.x * wv[4 * q];
                    acc[r] += v.y * wv[4 * q + 1];
                    acc[r] += v.z * wv[4 * q + 2];
                    acc[r] += v.w * wv[4 * q + 3];
                }
            }
        }
#pragma unroll
        for (int r = 0; r < kFewRows; ++r) {
            float v = acc[r];
            for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xFFFFFFFFu, v, offset);
            if (lane == 0 && r < rows) y[(r0 + r) * out_features + n] = v;
        }
    }
}

// Whether linear_few_kernel's 16-byte loads fit: whole loads per weight row and x row, aligned bases,
// and (FP8) one block scale per load.
inline bool few_rows_fit(const uint8_t* const* w, int64_t count, bool fp8, int64_t block, int64_t in_features,
                         const float* x) {
    const int64_t per = fp8 ? 16 : 8;
    auto aligned = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; };
    if (in_features % per != 0 || in_features > INT32_MAX || (fp8 && block % 16 != 0) || !aligned(x)) return false;
    for (int64_t j = 0; j < count; ++j)
        if (!aligned(w[j])) return false;
    return true;
}

}  // namespace
}  // namespace ecf8::cuda
