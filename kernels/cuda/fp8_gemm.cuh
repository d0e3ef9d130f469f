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

namespace ecf8::cuda {

// Twin of cpu::quantize_activations_fp8 (same bytes, same scales): x [rows, cols] float, q [rows, cols]
// e4m3 bytes, scales [rows, ceil(cols / 128)] row-major. Device pointers; enqueued on stream.
void quantize_activations_fp8(const float* x, int64_t rows, int64_t cols, uint8_t* q, float* scales,
                              cudaStream_t stream);

// y[T, out] (float, row-major) = x . W^T from xq [T, in] e4m3 with x_scales [T, in / 128] (the layout
// quantize_activations_fp8 writes) and w [out, in] e4m3 with w_scale_inv [ceil(out / 128), in / 128].
// Holds a cuBLASLt handle, a workspace, a scratch buffer (the scales in cuBLASLt's layouts; for T not a
// multiple of 4 and not 1, also x and y padded to a multiple of 4 tokens, see fp8_gemm.cu) and one plan
// (descriptors and the heuristic's algorithm) per shape, made on a shape's first call. Not thread-safe;
// one object per stream that calls it concurrently. The scratch only grows (a device-wide sync when it
// does), so a first call per shape is not graph-capturable; later ones are plain async work on stream.
class Fp8BlockGemm {
public:
    static constexpr size_t kDefaultWorkspaceBytes = size_t{32} << 20;  // cuBLAS's advice for Hopper

    explicit Fp8BlockGemm(size_t workspace_bytes = kDefaultWorkspaceBytes);
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
    void linear(const uint8_t* xq, const float* x_scales, const uint8_t* w, const float* w_scale_inv, float* y,
                int64_t n_tokens, int64_t in, int64_t out, cudaStream_t stream);

private:
    struct Plan;  // descriptors and algorithm of one shape (fp8_gemm.cu)
    Plan& plan_for(int64_t n_tokens, int64_t in, int64_t out, const float* a_scale, const float* b_scale);
    float* scratch(size_t floats);

    cublasLtHandle_t handle_ = nullptr;
    void* workspace_ = nullptr;
    size_t workspace_bytes_ = 0;
    float* scratch_ = nullptr;  // repacked scales, padded x and y
    size_t scratch_floats_ = 0;
    std::map<std::tuple<int64_t, int64_t, int64_t>, std::unique_ptr<Plan>> plans_;
};

}  // namespace ecf8::cuda
