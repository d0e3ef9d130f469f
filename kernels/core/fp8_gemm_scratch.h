// The device memory of one FP8 linear on the GPU (--gemm fp8: cuda::quantize_activations_fp8, then
// cuda::Fp8BlockGemm), shared by kernels/cuda/fp8_gemm.cu, runtime/cuda_ops.cpp and the memory plan, so the
// plan counts what a call lays out. One call of T tokens through a weight [out, in] uses, from one region:
//   cuBLASLt's workspace (kFp8GemmWorkspaceBytes), the activations as e4m3 [T, in] and their scales
//   [T, in / 128], then Fp8BlockGemm's scratch: the weight's scales in cuBLASLt's layout, the activations'
//   scales transposed, and where T is not a multiple of 4 the activations and the output padded to
//   round_up(T, 4) tokens (kernels/cuda/fp8_gemm.cu says why). Every piece starts 256-byte aligned.
#pragma once

#include <cstdint>

namespace ecf8::core {

inline constexpr uint64_t kFp8GemmWorkspaceBytes = uint64_t{32} << 20;  // cuBLAS's advice for Hopper
inline constexpr int64_t kFp8GemmBlock = 128;                           // elements per scale block side

inline constexpr int64_t fp8_round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }
inline constexpr int64_t fp8_aligned_floats(int64_t bytes) { return fp8_round_up(bytes, 256) / 4; }

// Fp8BlockGemm's scratch for one call, in floats from its start.
struct Fp8GemmScratch {
    bool padded = false;  // T % 4 != 0: x and y go through padded copies
    int64_t ldx = 0;      // tokens rounded up to a multiple of 4
    int64_t w_off = 0, x_off = 0, q_off = 0, y_off = 0, total = 0;
};

inline Fp8GemmScratch fp8_gemm_scratch(int64_t n_tokens, int64_t in, int64_t out) {
    Fp8GemmScratch s;
    s.padded = n_tokens % 4 != 0;
    s.ldx = fp8_round_up(n_tokens, 4);
    const int64_t nkb = in / kFp8GemmBlock, nob = (out + kFp8GemmBlock - 1) / kFp8GemmBlock;
    const int64_t ldw = fp8_round_up(nkb, 4);
    s.w_off = 0;
    s.x_off = s.w_off + fp8_aligned_floats(nob * ldw * 4);
    s.q_off = s.x_off + fp8_aligned_floats(nkb * s.ldx * 4);
    s.y_off = s.q_off + (s.padded ? fp8_aligned_floats(s.ldx * in) : 0);
    s.total = s.y_off + (s.padded ? fp8_aligned_floats(s.ldx * out * 4) : 0);
    return s;
}

// The region of one FP8 linear call, in bytes from its start: workspace, activations, scales, scratch.
struct Fp8LinearRegion {
    uint64_t act_off = 0, scales_off = 0, scratch_off = 0, total = 0;
};

inline Fp8LinearRegion fp8_linear_region(int64_t n_tokens, int64_t in, int64_t out) {
    Fp8LinearRegion r;
    r.act_off = kFp8GemmWorkspaceBytes;
    r.scales_off = r.act_off + uint64_t(fp8_aligned_floats(n_tokens * in)) * 4;
    r.scratch_off = r.scales_off + uint64_t(fp8_aligned_floats(n_tokens * (in / kFp8GemmBlock) * 4)) * 4;
    r.total = r.scratch_off + uint64_t(fp8_gemm_scratch(n_tokens, in, out).total) * 4;
    return r;
}

// The largest region of any call of 1 to max_tokens tokens through [out, in]: the largest T of each route
// (every piece grows with T within a route).
inline uint64_t fp8_linear_region_bound(int64_t max_tokens, int64_t in, int64_t out) {
    uint64_t most = fp8_linear_region(max_tokens, in, out).total;
    for (int64_t t = max_tokens - 1; t >= 1 && t >= max_tokens - 3; --t) {
        const uint64_t b = fp8_linear_region(t, in, out).total;
        if (b > most) most = b;
    }
    return most;
}

}  // namespace ecf8::core
