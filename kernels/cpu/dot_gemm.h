// A batch-invariant GEMM for the CPU linear layers: y[m, n_out] = x[m, k] . W^T with W [n_out, k] stored
// as F32, BF16 or block-scaled FP8 e4m3fn. Every output element is computed in one fixed order that depends
// only on k, never on m, on the row's position in the batch, on which weight rows are in the call, on the
// tiling or on the threads, so a token's result is bit for bit the same whatever batch it is part of. The
// weight is converted to float a few rows at a time (no FP32 copy of the whole weight), which makes small
// m (decode) cheap.
//
// The order (the contract):
//   1. Weight value wf[j][c]: F32 as stored; BF16 widened to float (exact); FP8
//      fp8_e4m3_to_float(byte) * scale_inv[j / block][c / block], one float multiply, i.e. exactly what
//      dequantize_fp8_block_to_float (kernels/cpu/linear.h) writes.
//   2. Eight lanes: lane l (0..7) starts at +0.0f and, for c = l, l + 8, l + 16, ... < k in increasing c,
//      does acc_l = fma(x[i][c], wf[j][c], acc_l) (one rounding per step).
//   3. y[i][j] = ((acc_0 + acc_4) + (acc_2 + acc_6)) + ((acc_1 + acc_5) + (acc_3 + acc_7)).
// k = 0 gives +0. The AVX2 path (x86-64 with AVX2, FMA and F16C, chosen at run time) and the portable
// scalar path (std::fma) follow this order and give identical bits for all inputs, except that where a NaN
// arises its payload may differ between the two paths.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ecf8 {
class ThreadPool;
}

namespace ecf8::cpu {

enum class DotWeightType { F32, BF16, FP8 };

// A weight W [n_out, k], row-major and contiguous.
struct DotWeight {
    DotWeightType type = DotWeightType::F32;
    const void* data = nullptr;        // float, uint16_t (bf16 bits) or uint8_t (fp8 e4m3fn bytes)
    const float* scale_inv = nullptr;  // FP8 only: [ceil(n_out / block), ceil(k / block)] row-major
    int64_t block = 128;               // FP8 only: the side of a scale block
};

// Floats of scratch dot_gemm needs with this pool (null: one thread): a panel of at most 4 weight rows x
// 512 columns per worker, for BF16 and FP8 weights (F32 is read in place and needs none, but the same
// size may be passed). Never more than n_out * k; 0 when n_out or k is 0.
size_t dot_gemm_scratch_floats(int64_t m, int64_t k, int64_t n_out, const ThreadPool* pool = nullptr);

// y[m, n_out] = x[m, k] . W^T in the fixed order above. x and y are row-major and contiguous, with no
// alignment requirement; y must not overlap x, W or scratch. scratch holds at least
// dot_gemm_scratch_floats(m, k, n_out, pool) floats (may be null when that is 0). With a pool the weight
// rows are split over its threads; the result is bit-identical to the call without a pool.
void dot_gemm(const float* x, int64_t m, int64_t k, const DotWeight& w, int64_t n_out, float* y, float* scratch,
              ThreadPool* pool = nullptr);

// out[i] = wf[row][col0 + i] for i in [0, len): the float weight values of step 1, converted exactly as
// dot_gemm converts them (with the same path). n_out and k are W's shape.
void dot_weight_to_float(const DotWeight& w, int64_t n_out, int64_t k, int64_t row, int64_t col0, int64_t len,
                         float* out);

// Testing and benchmarking: true forces the portable scalar path for every later call (process-wide).
void dot_gemm_force_scalar(bool on);

// Whether calls now take the AVX2 path (the CPU supports it and the scalar path is not forced).
bool dot_gemm_uses_avx2();

}  // namespace ecf8::cpu
