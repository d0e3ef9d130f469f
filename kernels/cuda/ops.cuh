// The model's element-wise and small ops on the GPU, each the twin of a kernels/cpu function with the same
// name and arguments plus the stream they are enqueued on (all pointers are device pointers). The per-element
// math is the CPU's own (kernels/core/*.h, ECF8_HD), compiled with --fmad=false as the host compiles with
// -ffp-contract=off, so most outputs are bit-identical (rmsnorm's sum of squares too: kernels/core fixes its
// order).
// tests/kernels/test_kernels_cuda.cu compares each with its twin and states the tolerance.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/core/paged_kv.h"
#include "kernels/cpu/mla_attention.h"
#include "kernels/cpu/moe_gate.h"

namespace ecf8::cuda {

// Rows of dim values x_stride (out_stride) floats apart: one launch for any strides.
void rmsnorm(const float* x, int64_t x_stride, const uint16_t* w_bf16, int64_t n_tokens, int64_t dim, float eps,
             float* out, int64_t out_stride, cudaStream_t stream);
void silu_mul(const float* gate, const float* up, int64_t n, float* out, cudaStream_t stream);
void add(const float* a, const float* b, int64_t n, float* out, cudaStream_t stream);
// out[i] = the float value of in[i] (cpu::bf16_to_float_array).
void widen_bf16(const uint16_t* in, int64_t n, float* out, cudaStream_t stream);
// out[r] = src[rows[r]] for rows of dim floats.
void gather_rows(const float* src, const int32_t* rows, int64_t n_rows, int64_t dim, float* out, cudaStream_t stream);
// out[rows[r]] += scales[r] * y[r], each row as cpu::add_scaled; rows must be distinct.
void scatter_add_scaled_rows(const float* y, const int32_t* rows, const float* scales, int64_t n_rows, int64_t dim,
                             float* out, cudaStream_t stream);
void embedding_bf16(const int32_t* tokens, int64_t n_tokens, const uint16_t* table, int64_t vocab_begin,
                    int64_t vocab_end, int64_t dim, float* out, cudaStream_t stream);
// cos/sin: the RopeTable's rows ([max_seq_len, rope_dim / 2] each) in device memory.
void apply_rope(float* x, int64_t n_tokens, int64_t token_stride, int64_t n_heads, int64_t head_stride,
                int64_t rope_dim, const int64_t* positions, const float* cos, const float* sin, cudaStream_t stream);
// y[T, out] = x[T, in] . W^T for T <= 64 tokens (W FP8 with block scales, block % 16 == 0, or BF16): one warp
// per output column, each weight read once and dequantized in registers, FP32 products and sums. Returns
// false, launching nothing, where it does not apply (more tokens, or rows that are not whole 16-byte loads or
// not 16-byte aligned): the caller then dequantizes and calls Sgemm.
bool linear_few_rows(const uint8_t* w, const float* scale_inv, bool fp8, int64_t block, int64_t out_features,
                     int64_t in_features, const float* x, int64_t n_tokens, float* y, cudaStream_t stream);
void dequantize_fp8_block_to_float(const uint8_t* w, const float* scale_inv, int64_t rows, int64_t cols, float* out,
                                   int64_t block, cudaStream_t stream);
// MoE routing (sigmoid scoring, group-limited top-k, as DeepSeek-V3): weights and experts [n_tokens, topk].
void moe_route(const float* logits, const float* bias, int64_t n_tokens, const cpu::GateParams& p, float* weights,
               int32_t* experts, cudaStream_t stream);
// kernels/cpu/moe_dispatch.h on the device: one block. A negative expert (a NaN token) is skipped here.
void moe_dispatch(const int32_t* experts, const float* weights, int64_t n_tokens, int64_t topk, int64_t expert_begin,
                  int64_t n_local, int32_t* offsets, int32_t* rows, float* scales, cudaStream_t stream);
// The routed-expert MLP's steps over moe_dispatch's picks (offsets / rows / scales, read on the device) of a
// group of local experts (PickGroup): pick p is row p - offsets[first] of the scratch x, y, gate and up.
//   gather_picks       x[r] = src[rows[offsets[first] + r]]
//   linear_picks       y[r] = x[r] . W_e^T for each pick r of expert e (W FP8 with block scales, or BF16), a
//                      tiled FP32 kernel, or for steps of up to 64 tokens one warp per output column with
//                      16-byte weight loads; with tensor_cores (compute.gemm fp8), larger steps take BF16
//                      tensor cores (x rounded to BF16, FP32 sums; FP8 block % 64 == 0) instead of the tiled
//                      kernel; m holds the group's matrices, all out_features x in_features
//   silu_mul_picks     out[r] = silu(gate[r]) * up[r]
//   scatter_add_picks  out[rows[offsets[first] + r]] += scales[offsets[first] + r] * y[r], one expert
//   scatter_add_group  the same for a group, each of the n_tokens rows adding its picks in expert order
inline constexpr int64_t kMaxExpertGroup = 64;
struct PickGroup {
    const int32_t* offsets = nullptr;  // moe_dispatch's, in device memory
    int64_t first = 0, count = 1;      // local experts [first, first + count), count <= kMaxExpertGroup
    int64_t cap_rows = 0;              // the scratch's rows: picks past them are dropped
    // Host bounds that size the grids (the counts themselves are read on the device): the most picks one
    // expert can have (the step's tokens) and the group (tokens x min(count, topk)).
    int64_t expert_bound = 0, group_bound = 0;
};
struct ExpertMatrices {
    const uint8_t* w[kMaxExpertGroup];
    const float* scale_inv[kMaxExpertGroup];  // FP8 only
};
void gather_picks(const float* src, const int32_t* rows, const PickGroup& g, int64_t dim, float* out,
                  cudaStream_t stream);
void linear_picks(const ExpertMatrices& m, bool fp8, int64_t block, int64_t out_features, int64_t in_features,
                  const float* x, const PickGroup& g, float* y, bool tensor_cores, cudaStream_t stream);
void silu_mul_picks(const float* gate, const float* up, const PickGroup& g, int64_t width, float* out,
                    cudaStream_t stream);
void scatter_add_picks(const float* y, const int32_t* rows, const float* scales, const PickGroup& g, int64_t dim,
                       float* out, cudaStream_t stream);
void scatter_add_group(const float* y, const int32_t* rows, const float* scales, const PickGroup& g, int64_t n_tokens,
                       int64_t dim, float* out, cudaStream_t stream);
// As cpu::argmax_rows (kernels/cpu/sampling.h): out[r] = the first largest entry of row r, the concatenation
// of its `blocks` parts of block_len floats (part b at x + (b * rows + r) * block_len), or -1 when the row
// holds a NaN or an infinity.
void argmax_rows(const float* x, int64_t rows, int64_t blocks, int64_t block_len, int32_t* out, cudaStream_t stream);

// y[T, out] = x[T, in] . w[out, in]^T in full FP32 (cuBLAS SGEMM, pedantic math: no TF32). The fallback
// GEMM of the FP8 path: weights dequantized by dequantize_fp8_block_to_float, as the CPU does, until the
// cuBLASLt block-scaled FP8 path replaces it where its activation quantization is acceptable.
class Sgemm {
public:
    Sgemm();
    ~Sgemm();
    Sgemm(const Sgemm&) = delete;
    Sgemm& operator=(const Sgemm&) = delete;
    void linear_f32(const float* x, const float* w, float* y, int64_t n_tokens, int64_t in_features,
                    int64_t out_features, cudaStream_t stream);
    cublasHandle_t handle() const { return handle_; }

private:
    cublasHandle_t handle_ = nullptr;
};

// The paged latent KV cache (kernels/core/paged_kv.h) and MLA attention over it, the arguments of
// cpu::kv_cache_write and cpu::paged_mla_attention on device memory (KvPages::data, the batch's arrays, q,
// wkv_b, scratch and out). Where the CPU throws they cannot: kv_cache_write skips a slot outside the pool,
// the attention skips a block id outside the pool and gives a token of an unknown sequence a zero output;
// the caller checks those on the host. The attention tiles the keys by cache block with an online softmax
// (no score matrix over the context); when few (token, head) pairs share a long context it splits the keys
// into parts whose partials take the third region of core::paged_attention_scratch_floats. Its sums run in
// another order than the CPU's.
void kv_cache_write(const float* rows, int64_t n_tokens, const int64_t* slots, const core::KvPages& kv,
                    cudaStream_t stream);
void paged_mla_attention(Sgemm& gemm, const float* q, const core::KvPages& kv, const float* wkv_b,
                         const cpu::MlaDims& d, const core::RaggedBatch& batch, float softmax_scale, float* scratch,
                         float* out, cudaStream_t stream);

}  // namespace ecf8::cuda
