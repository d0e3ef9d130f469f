// DeepSeek-V3's FP8 linear on the GPU, the twin of kernels/cpu/fp8_gemm.h: activations quantized to FP8
// e4m3 per 1x128 block of each row (bytes and scales bit-identical to the CPU's), then y[T, out] =
// x[T, in] . W[out, in]^T by cuBLASLt's block-scaled FP8 matmul (Hopper): the weight with one float scale
// per 128x128 block (DeepSeek's weight_scale_inv as stored), the activations with one per 1x128 block.
//
// Where it applies: Fp8BlockGemm::supported() (compute capability 9.x, cuBLASLt >= 12.9, in % 128 == 0,
// out % 16 == 0). Elsewhere callers take the existing path of ops.cuh: dequantize_fp8_block_to_float +
// Sgemm::linear_f32 (FP32 activations, no activation quantization). The two paths differ by the
// activation rounding (up to 2^-4 relative per element, averaging out over K) and the tensor cores' FP8
// accumulation (relative L2 error about 2.5e-4 against the float CPU twin on an H100; the test bounds it
// by 1e-3). On an H100 it runs 3x (T = 1) to 24x (T = 256) faster than the fallback at DeepSeek-V3's
// shapes (bench/fp8_gemm_bench.cu).
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <tuple>

#include "kernels/core/fp8_gemm_scratch.h"

namespace ecf8::cuda {

// Twin of cpu::quantize_activations_fp8 (same bytes, same scales): x [rows, cols] float, q [rows, cols]
// e4m3 bytes, scales [rows, ceil(cols / 128)] row-major. Device pointers; enqueued on stream.
void quantize_activations_fp8(const float* x, int64_t rows, int64_t cols, uint8_t* q, float* scales,
                              cudaStream_t stream);

// Device memory one linear() call works in when the caller provides it (the runtime's planned
// "gemm_scratch", laid out by core::fp8_linear_region): cuBLASLt's workspace and Fp8BlockGemm's scratch.
struct Fp8GemmMemory {
    void* workspace = nullptr;
    size_t workspace_bytes = 0;
    float* scratch = nullptr;
    size_t scratch_floats = 0;
};

// y[T, out] (float, row-major) = x . W^T from xq [T, in] e4m3 with x_scales [T, in / 128] (the layout
// quantize_activations_fp8 writes) and w [out, in] e4m3 with w_scale_inv [ceil(out / 128), in / 128].
// Holds a cuBLASLt handle and one plan (descriptors and the heuristic's algorithm) per shape, made on a
// shape's first call. Its memory (a workspace and a scratch: the scales in cuBLASLt's layouts and, for T not
// a multiple of 4, x and y padded to a multiple of 4 tokens; kernels/core/fp8_gemm_scratch.h) is either its
// own or the caller's:
//   own (the constructor with a workspace size, for tests and benchmarks): the scratch only grows, with a
//     device-wide sync when it does, so a first call per shape is not graph-capturable;
//   the caller's (Fp8BlockGemm(Fp8BlockGemm::kCallerMemory), the runtime): each call takes an Fp8GemmMemory
//     and throws when its scratch is smaller than the call needs; nothing is allocated after construction.
// Not thread-safe; one object per stream that calls it concurrently.
class Fp8BlockGemm {
public:
    static constexpr size_t kDefaultWorkspaceBytes = core::kFp8GemmWorkspaceBytes;
    struct CallerMemory {};
    static constexpr CallerMemory kCallerMemory{};

    explicit Fp8BlockGemm(size_t workspace_bytes = kDefaultWorkspaceBytes);
    // Allocates nothing; every call goes through the overload of linear() with an Fp8GemmMemory whose
    // workspace holds kDefaultWorkspaceBytes.
    explicit Fp8BlockGemm(CallerMemory);
    ~Fp8BlockGemm();
    Fp8BlockGemm(const Fp8BlockGemm&) = delete;
    Fp8BlockGemm& operator=(const Fp8BlockGemm&) = delete;

    // True where linear() applies on the current device: n_tokens >= 1, in a positive multiple of 128,
    // out a positive multiple of 16, every dimension below 2^31, compute capability 9.x (cuBLASLt supports
    // these scale modes on Hopper only) and a cuBLASLt runtime of version 12.9 or later. False without a
    // device. Elsewhere use dequantize_fp8_block_to_float + Sgemm (see the top of this file).
    static bool supported(int64_t n_tokens, int64_t in, int64_t out);

    // Device pointers; xq, w and y 16-byte aligned. Throws ecf8::Error where supported() is false or
    // cuBLASLt finds no algorithm. The scales are repacked into cuBLASLt's layouts on stream first.
    // Own memory only.
    void linear(const uint8_t* xq, const float* x_scales, const uint8_t* w, const float* w_scale_inv, float* y,
                int64_t n_tokens, int64_t in, int64_t out, cudaStream_t stream);
    // The same in the caller's memory (either kind of object).
    void linear(const uint8_t* xq, const float* x_scales, const uint8_t* w, const float* w_scale_inv, float* y,
                int64_t n_tokens, int64_t in, int64_t out, const Fp8GemmMemory& memory, cudaStream_t stream);

private:
    struct Plan;  // descriptors and algorithm of one shape (fp8_gemm.cu)
    Plan& plan_for(int64_t n_tokens, int64_t in, int64_t out, const float* a_scale, const float* b_scale);
    float* scratch(size_t floats);

    cublasLtHandle_t handle_ = nullptr;
    bool own_memory_ = true;
    void* workspace_ = nullptr;
    size_t workspace_bytes_ = 0;  // own memory: the workspace; either way: what the heuristic may use
    float* scratch_ = nullptr;    // own memory: repacked scales, padded x and y
    size_t scratch_floats_ = 0;
    std::map<std::tuple<int64_t, int64_t, int64_t>, std::unique_ptr<Plan>> plans_;
};

}  // namespace ecf8::cuda
