// DeepSeek-V3's FP8 linear on the GPU: the 1x128 activation quantization kernel (the CPU twin's core, so
// the same bytes) and Fp8BlockGemm, cuBLASLt's block-scaled FP8 matmul.
//
// cuBLASLt is column-major, so row-major y[T, out] = x W^T is computed as column-major
// D[out, T] = A^T B with
//   A = W: e4m3, stored in x out column-major (ld = in), TRANSA = T; scale mode BLK128x128_32F, its
//          scales ceil(out / 128) x (in / 128) with the K blocks contiguous and each row padded to a
//          multiple of 4 floats (16 bytes): scale(ob, kb) at ob * round_up(in / 128, 4) + kb.
//   B = x: e4m3, stored in x T column-major (ld = in), TRANSB = N; scale mode VEC128_32F, its scales
//          with the token dimension contiguous: scale(t, kb) at kb * T + t (DeepSeek's act_quant writes
//          t * (in / 128) + kb, so they are transposed on the way).
//   C = D = y: float, out x T column-major (ld = out); alpha = 1, beta = 0 (host pointers).
// Compute type CUBLAS_COMPUTE_32F, scale type CUDA_R_32F, no fast accumulation.
//
// cuBLASLt 13.1 on an H100 offers an algorithm only where the VEC128 operand's outer dimension (T here)
// is a multiple of 4 (as operand A it also accepts 1, but that swapped form gave wrong results and
// faulting reads in our tests, so it is not used). So (core::Fp8GemmScratch::padded says which):
//   direct (T % 4 == 0): as above.
//   padded (otherwise):  as direct with T rounded up to a multiple of 4: x is copied into a scratch with
//                        zero tokens appended (scales 1), D goes to a scratch, and y is its first T * out
//                        floats (column-major D[out, T_padded] begins with row-major y[T, out]). Costs
//                        one device-to-device copy more than direct.
// The scratch's layout is kernels/core/fp8_gemm_scratch.h's, which the memory plan counts.
#include <algorithm>
#include <climits>

#include "common/error.h"
#include "kernels/cpu/fp8_gemm.h"
#include "kernels/cuda/fp8_gemm.cuh"

namespace ecf8::cuda {
namespace {

constexpr int kWarpsPerBlock = 8;

// One warp per 1x128 block: lane l quantizes the block's elements l, l + 32, l + 64 and l + 96. The amax
// is order-independent (cpu::fp8_amax_step), so bytes and scale equal the CPU's.
__global__ void quantize_kernel(const float* x, int64_t rows, int64_t cols, int64_t nkb, uint8_t* q, float* scales) {
    const int lane = threadIdx.x % 32;
    const int64_t first = blockIdx.x * int64_t{kWarpsPerBlock} + threadIdx.x / 32;
    const int64_t stride = int64_t{gridDim.x} * kWarpsPerBlock;
    for (int64_t blk = first; blk < rows * nkb; blk += stride) {
        const int64_t r = blk / nkb, c0 = (blk % nkb) * cpu::kFp8Block;
        const int64_t n = cols - c0 < cpu::kFp8Block ? cols - c0 : cpu::kFp8Block;
        const float* xb = x + r * cols + c0;
        float v[4];
        float amax = 0.0f;
        for (int i = 0; i < 4; ++i) {
            const int64_t c = lane + 32 * i;
            v[i] = c < n ? xb[c] : 0.0f;
            amax = cpu::fp8_amax_step(amax, v[i]);
        }
        for (int off = 16; off > 0; off /= 2) amax = cpu::fp8_amax_step(amax, __shfl_xor_sync(0xFFFFFFFFu, amax, off));
        const float s = cpu::fp8_act_scale(amax);
        uint8_t* qb = q + r * cols + c0;
        for (int i = 0; i < 4; ++i) {
            const int64_t c = lane + 32 * i;
            if (c < n) qb[c] = cpu::fp8_act_quantize(v[i], s);
        }
        if (lane == 0) scales[blk] = s;
    }
}

// One launch prepares cuBLASLt's operands (see the top of this file): the weight's [nob, nkb] scale rows
// into rows of ldw floats, the activations' [T, nkb] scales transposed into [nkb, ldx] (ldx >= T; padding
// is 1) and, where q_pad is set, xq [T, in] copied into q_pad [ldx, in] with zero rows appended (16 bytes
// per thread step; in % 128 == 0 and 16-byte aligned pointers).
__global__ void prepare_kernel(const float* x_scales, const float* w_scale_inv, const uint8_t* xq, int64_t n_tokens,
                               int64_t ldx, int64_t in, int64_t nkb, int64_t nob, int64_t ldw, float* x_out,
                               float* w_out, uint8_t* q_pad) {
    const int64_t n_w = nob * ldw, n_x = ldx * nkb, n_q = q_pad != nullptr ? ldx * in / 16 : 0;
    const int64_t total = n_w + n_x + n_q;
    for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total; i += int64_t{gridDim.x} * blockDim.x) {
        if (i < n_w) {
            const int64_t ob = i / ldw, kb = i % ldw;
            w_out[i] = kb < nkb ? w_scale_inv[ob * nkb + kb] : 1.0f;
        } else if (i < n_w + n_x) {
            const int64_t j = i - n_w, kb = j / ldx, t = j % ldx;
            x_out[j] = t < n_tokens ? x_scales[t * nkb + kb] : 1.0f;
        } else {
            const int64_t j = i - n_w - n_x;
            reinterpret_cast<uint4*>(q_pad)[j] =
                j * 16 < n_tokens * in ? reinterpret_cast<const uint4*>(xq)[j] : make_uint4(0, 0, 0, 0);
        }
    }
}

unsigned grid_for(int64_t items, int64_t per_block) {
    return static_cast<unsigned>(std::clamp<int64_t>((items + per_block - 1) / per_block, 1, 1 << 20));
}

int64_t round_up(int64_t v, int64_t m) { return core::fp8_round_up(v, m); }

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

template <class T>
void set_attr(cublasLtMatmulDesc_t desc, cublasLtMatmulDescAttributes_t attr, const T& value) {
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, attr, &value, sizeof(value)));
}

}  // namespace

// ---------------------------------------------------------------------------------------------------
// Activation quantization

void quantize_activations_fp8(const float* x, int64_t rows, int64_t cols, uint8_t* q, float* scales,
                              cudaStream_t stream) {
    ECF8_CHECK(rows >= 0 && cols >= 0, "quantize_activations_fp8: rows " << rows << ", cols " << cols);
    if (rows == 0 || cols == 0) return;
    const int64_t nkb = (cols + cpu::kFp8Block - 1) / cpu::kFp8Block;
    quantize_kernel<<<grid_for(rows * nkb, kWarpsPerBlock), 32 * kWarpsPerBlock, 0, stream>>>(x, rows, cols, nkb, q,
                                                                                              scales);
    CUDA_CHECK(cudaGetLastError());
}

// ---------------------------------------------------------------------------------------------------
// Fp8BlockGemm

struct Fp8BlockGemm::Plan {
    cublasLtMatmulDesc_t desc = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
    cublasLtMatmulHeuristicResult_t heuristic{};

    Plan() = default;
    Plan(const Plan&) = delete;
    Plan& operator=(const Plan&) = delete;
    ~Plan() {
        if (d != nullptr) cublasLtMatrixLayoutDestroy(d);
        if (b != nullptr) cublasLtMatrixLayoutDestroy(b);
        if (a != nullptr) cublasLtMatrixLayoutDestroy(a);
        if (desc != nullptr) cublasLtMatmulDescDestroy(desc);
    }
};

Fp8BlockGemm::Fp8BlockGemm(CallerMemory) : own_memory_(false), workspace_bytes_(kDefaultWorkspaceBytes) {
    CUBLAS_CHECK(cublasLtCreate(&handle_));
}

Fp8BlockGemm::Fp8BlockGemm(size_t workspace_bytes) : workspace_bytes_(workspace_bytes) {
    CUBLAS_CHECK(cublasLtCreate(&handle_));
    if (workspace_bytes_ > 0) {
        const cudaError_t err = cudaMalloc(&workspace_, workspace_bytes_);
        if (err != cudaSuccess) cublasLtDestroy(handle_);
        CUDA_CHECK(err);
    }
}

Fp8BlockGemm::~Fp8BlockGemm() {
    plans_.clear();
    cudaFree(scratch_);
    cudaFree(workspace_);
    cublasLtDestroy(handle_);
}

bool Fp8BlockGemm::supported(int64_t n_tokens, int64_t in, int64_t out) {
    if (n_tokens < 1 || in < cpu::kFp8Block || in % cpu::kFp8Block != 0 || out < 16 || out % 16 != 0) return false;
    if (n_tokens > INT32_MAX || in > INT32_MAX || out > INT32_MAX) return false;
    if (CUBLAS_VERSION < 120900 || cublasLtGetVersion() < 120900) return false;
    int dev = 0, major = 0;
    if (cudaGetDevice(&dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess) {
        cudaGetLastError();  // leave no sticky error behind for the caller
        return false;
    }
    return major == 9;
}

float* Fp8BlockGemm::scratch(size_t floats) {
    if (floats > scratch_floats_) {
        // Earlier calls may still read the old buffer on some stream: wait before freeing it (rare: the
        // buffer only grows, to the largest shape seen).
        CUDA_CHECK(cudaDeviceSynchronize());
        CUDA_CHECK(cudaFree(scratch_));
        scratch_ = nullptr;
        scratch_floats_ = 0;
        const size_t n = std::max(floats, size_t{4096});
        CUDA_CHECK(cudaMalloc(&scratch_, n * sizeof(float)));
        scratch_floats_ = n;
    }
    return scratch_;
}

Fp8BlockGemm::Plan& Fp8BlockGemm::plan_for(int64_t n_tokens, int64_t in, int64_t out, const float* a_scale,
                                           const float* b_scale) {
    auto& slot = plans_[{n_tokens, in, out}];
    if (slot) return *slot;
    auto p = std::make_unique<Plan>();
    CUBLAS_CHECK(cublasLtMatmulDescCreate(&p->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    set_attr<int32_t>(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, CUBLAS_OP_T);
    set_attr<int32_t>(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, CUBLAS_OP_N);
    set_attr<int32_t>(p->desc, CUBLASLT_MATMUL_DESC_POINTER_MODE, CUBLASLT_POINTER_MODE_HOST);  // alpha, beta
    set_attr<int32_t>(p->desc, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F);
    set_attr<int32_t>(p->desc, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F);
    set_attr<const void*>(p->desc, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, a_scale);
    set_attr<const void*>(p->desc, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, b_scale);
    // Both operands are stored K-major (K x outer, column-major, ld = in); T padded to a multiple of 4.
    const auto k = static_cast<uint64_t>(in), o = static_cast<uint64_t>(out);
    const auto t = static_cast<uint64_t>(round_up(n_tokens, 4));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->a, CUDA_R_8F_E4M3, k, o, in));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->b, CUDA_R_8F_E4M3, k, t, in));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->d, CUDA_R_32F, o, t, out));

    cublasLtMatmulPreference_t pref = nullptr;
    CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    const uint64_t ws = workspace_bytes_;
    int found = 0;
    cublasStatus_t st =
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws));
    if (st == CUBLAS_STATUS_SUCCESS) {
        st = cublasLtMatmulAlgoGetHeuristic(handle_, p->desc, p->a, p->b, p->d, p->d, pref, 1, &p->heuristic, &found);
    }
    cublasLtMatmulPreferenceDestroy(pref);
    ECF8_CHECK(st == CUBLAS_STATUS_SUCCESS && found > 0,
               "Fp8BlockGemm: cuBLASLt has no block-scaled FP8 algorithm for T "
                   << n_tokens << ", in " << in << ", out " << out << " (" << cublasGetStatusString(st) << ")");
    slot = std::move(p);
    return *slot;
}

void Fp8BlockGemm::linear(const uint8_t* xq, const float* x_scales, const uint8_t* w, const float* w_scale_inv,
                          float* y, int64_t n_tokens, int64_t in, int64_t out, cudaStream_t stream) {
    ECF8_CHECK(own_memory_, "Fp8BlockGemm::linear: this object works in the caller's memory; pass an Fp8GemmMemory");
    ECF8_CHECK(supported(n_tokens, in, out), "Fp8BlockGemm::linear: T " << n_tokens << ", in " << in << ", out " << out
                                                                        << " is not supported here (see supported(); "
                                                                           "fall back to dequantize + Sgemm)");
    const auto need = static_cast<size_t>(core::fp8_gemm_scratch(n_tokens, in, out).total);
    linear(xq, x_scales, w, w_scale_inv, y, n_tokens, in, out, {workspace_, workspace_bytes_, scratch(need), need},
           stream);
}

void Fp8BlockGemm::linear(const uint8_t* xq, const float* x_scales, const uint8_t* w, const float* w_scale_inv,
                          float* y, int64_t n_tokens, int64_t in, int64_t out, const Fp8GemmMemory& memory,
                          cudaStream_t stream) {
    ECF8_CHECK(supported(n_tokens, in, out), "Fp8BlockGemm::linear: T " << n_tokens << ", in " << in << ", out " << out
                                                                        << " is not supported here (see supported(); "
                                                                           "fall back to dequantize + Sgemm)");
    ECF8_CHECK(xq != nullptr && x_scales != nullptr && w != nullptr && w_scale_inv != nullptr && y != nullptr,
               "Fp8BlockGemm::linear: null operand");
    ECF8_CHECK(aligned16(xq) && aligned16(w) && aligned16(y),
               "Fp8BlockGemm::linear: xq, w and y must be 16-byte aligned");
    const core::Fp8GemmScratch lay = core::fp8_gemm_scratch(n_tokens, in, out);
    ECF8_CHECK(memory.scratch != nullptr && memory.scratch_floats >= static_cast<size_t>(lay.total) &&
                   (memory.workspace != nullptr || workspace_bytes_ == 0) && memory.workspace_bytes >= workspace_bytes_,
               "Fp8BlockGemm::linear: T " << n_tokens << ", in " << in << ", out " << out << " needs " << lay.total
                                          << " floats of scratch and a " << workspace_bytes_
                                          << "-byte workspace; the memory given has " << memory.scratch_floats
                                          << " floats and " << memory.workspace_bytes << " bytes");
    const int64_t nkb = in / cpu::kFp8Block, nob = (out + cpu::kFp8Block - 1) / cpu::kFp8Block;
    const int64_t ldw = round_up(nkb, 4), ldx = lay.ldx;
    float* buf = memory.scratch;
    float *w_s = buf + lay.w_off, *x_s = buf + lay.x_off;
    auto* q_pad = lay.padded ? reinterpret_cast<uint8_t*>(buf + lay.q_off) : nullptr;
    prepare_kernel<<<grid_for(nob * ldw + nkb * ldx + (lay.padded ? ldx * in / 16 : 0), 256), 256, 0, stream>>>(
        x_scales, w_scale_inv, xq, n_tokens, ldx, in, nkb, nob, ldw, x_s, w_s, q_pad);
    CUDA_CHECK(cudaGetLastError());
    const uint8_t* b_in = lay.padded ? q_pad : xq;
    float* d_out = lay.padded ? buf + lay.y_off : y;
    Plan& p = plan_for(n_tokens, in, out, w_s, x_s);
    set_attr<const void*>(p.desc, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, w_s);
    set_attr<const void*>(p.desc, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, x_s);
    const float one = 1.0f, zero = 0.0f;
    CUBLAS_CHECK(cublasLtMatmul(handle_, p.desc, &one, w, p.a, b_in, p.b, &zero, d_out, p.d, d_out, p.d,
                                &p.heuristic.algo, memory.workspace, workspace_bytes_, stream));
    if (lay.padded) {
        CUDA_CHECK(cudaMemcpyAsync(y, d_out, static_cast<size_t>(n_tokens * out) * sizeof(float),
                                   cudaMemcpyDeviceToDevice, stream));
    }
}

}  // namespace ecf8::cuda
