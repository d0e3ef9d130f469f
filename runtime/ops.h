// Ops: the DeepSeek-V3 forward's ops as one table per backend, in the spirit of ggml's ggml_backend_i. The
// forward (runtime/model.h) is written once against it; CpuOps (runtime/cpu_ops.cpp) runs the kernels/cpu
// loops and CudaOps (runtime/cuda_ops.cpp) enqueues their kernels/cuda twins. Each backend owns its table
// (Backend::ops()).
//
// The contract, shared by every implementation:
//   - Pointers are the backend's MemoryKind::Device memory (plain host memory on the CPU backend), except
//     where an argument says "host".
//   - Every op runs in stream order on `stream`: CpuOps does the work now (its caller is that stream's work
//     item, or the host thread of a direct Model::forward), CudaOps enqueues it on the stream's cudaStream_t
//     and returns. Only to_host() waits.
//   - Each op rounds as its kernels/cpu twin: the CUDA side is compared with the CPU side by
//     tests/runtime/test_backend_ops (tests/runtime/backend_ops_*.cpp), with a stated tolerance per op.
//
// Adding an op: declare it here, implement it in cpu_ops.cpp (calling kernels/cpu) and cuda_ops.cpp (calling
// kernels/cuda), and add a case and a tolerance to the harness (tests/runtime/backend_ops_harness.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "codec/decoder.h"
#include "codec/dtype.h"
#include "kernels/core/paged_kv.h"
#include "kernels/cpu/mla_attention.h"
#include "kernels/cpu/moe_gate.h"

namespace ecf8 {

class Communicator;
class Stream;

// A weight matrix [rows, cols] in backend memory, FP8 e4m3 with its block scales or BF16.
struct LinearWeight {
    const uint8_t* data = nullptr;
    DType dtype = DType::BF16;         // F8_E4M3 or BF16
    int64_t rows = 0, cols = 0;        // out_features, in_features
    const float* scale_inv = nullptr;  // FP8: [ceil(rows / block), ceil(cols / block)]
    int64_t block = 128;               // FP8 scale block (weight_block_size)
};

// One routed expert's weights on this rank (whole experts under expert parallelism).
struct ExpertWeights {
    LinearWeight gate, up, down;
};

// The routed-expert MLP's scratch, backend memory: x and y [max_rows, dim], gate and up [max_rows, inter].
// max_rows bounds one expert's picks: the step's token count will do (a token picks an expert once).
struct ExpertScratch {
    float* x = nullptr;
    float* gate = nullptr;
    float* up = nullptr;
    float* y = nullptr;
    int64_t max_rows = 0;       // the step's tokens: the most picks one expert can have
    int64_t capacity_rows = 0;  // rows the buffers hold (>= max_rows; 0: max_rows)
    int64_t topk = 0;           // picks per token (0: not known)
};

// The rotary tables in backend memory: cos and sin, [max_seq_len, pairs] each (cpu::RopeTable's rows).
struct RopeTables {
    const float* cos = nullptr;
    const float* sin = nullptr;
    int64_t max_seq_len = 0;
    int64_t rope_dim = 0;
};

// One tensor for BlobDecoder::decode: an ECF8 blob placed by BlobDecoder::place, or (tensor null) a raw copy.
struct BlobJob {
    uint32_t blob = 0;                       // the placed blob's id
    const PreparedTensor* tensor = nullptr;  // the blob, parsed; null: copy `bytes` bytes from src
    const uint8_t* src = nullptr;            // raw copy source (backend memory)
    uint64_t bytes = 0;                      // decoded bytes
    uint8_t* out = nullptr;                  // backend memory
    // Non-null: the job runs only when picks[1] > picks[0] (a routed expert's range in moe_dispatch's
    // offsets, backend memory), read in stream order where the decode runs, so the host never learns the
    // picks. A skipped job leaves `out` untouched.
    const int32_t* picks = nullptr;
};

// The ECF8 decoder of a backend, for one WeightStore: blobs are placed in backend memory in the form the
// backend decodes from (CPU: as stored; CUDA: a device layout with its decode tables), then decoded in
// batches. Made by Ops::make_blob_decoder.
class BlobDecoder {
public:
    virtual ~BlobDecoder() = default;
    // True when the backend's Device memory is host memory (the CPU): loaders may write into it directly.
    virtual bool device_memory_is_host() const = 0;
    // Bytes the placed form of t takes (t's blob is stored_bytes long).
    virtual uint64_t placed_bytes(const PreparedTensor& t, uint64_t stored_bytes) const = 0;
    // Places blob `id` (t's stored bytes at `blob`, host-visible memory) at target (placed_bytes of backend
    // memory) at once (load time), and points the decoder's view of it there.
    virtual void place(uint32_t id, PreparedTensor& t, const uint8_t* blob, uint8_t* target, uint64_t target_bytes) = 0;
    // Points the decoder's view of blob `id` at target, where a copy of its placed form will lie before each
    // decode (a host-tier blob's staging area), at load time. CPU: no copy; CUDA: the view needs the device
    // layout, so the blob is placed there at once.
    virtual void bind(uint32_t id, PreparedTensor& t, const uint8_t* blob, uint8_t* target, uint64_t target_bytes) = 0;
    // Copies host bytes into backend memory at once (load time).
    virtual void upload(void* dst, const void* host, size_t bytes) = 0;
    // Decodes every job in `stream` order (CUDA: in one launch). A corrupt chunk throws at once on the CPU;
    // on CUDA it sets the decoder's error flag, which the three calls below read.
    virtual void decode(const std::vector<BlobJob>& jobs, Stream& stream) = 0;
    // Enqueues on `stream` a read-back of the error flag and its reset; throw_if_failed, called once the host
    // has synchronized with that work, throws when the flag was set. check_now waits for the device itself.
    virtual void queue_error_check(Stream& stream) = 0;
    virtual void throw_if_failed() = 0;
    virtual void check_now() = 0;
};

class Ops {
public:
    virtual ~Ops() = default;

    // Copies between host memory and backend memory, for load time and tests: to_device may read `host` until
    // it returns only (CUDA stages pageable memory before returning); to_host waits until the stream has
    // produced the bytes (CUDA: Backend::synchronize, a counted host wait). A forward step uses neither: its
    // inputs and logits go through pinned memory with copy(), and the step waits once.
    virtual void to_device(void* dst, const void* host, size_t bytes, Stream& stream) = 0;
    virtual void to_host(void* host, const void* src, size_t bytes, Stream& stream) = 0;
    virtual void fill_zero(void* dst, size_t bytes, Stream& stream) = 0;
    // Copies bytes between any memory of the backend (Device, PinnedHost, Host).
    virtual void copy(void* dst, const void* src, size_t bytes, Stream& stream) = 0;
    // Rows of `cols` floats from src (row stride src_stride) to dst (row stride dst_stride).
    virtual void copy_rows(const float* src, int64_t src_stride, int64_t rows, int64_t cols, float* dst,
                           int64_t dst_stride, Stream& stream) = 0;

    // Vocab-parallel embedding: rows of tokens outside [vocab_begin, vocab_end) are zero. Token ids and
    // positions live in backend memory, so the caller checks them on the host (plan_forward_step): the CPU
    // ops throw on a bad one, the CUDA kernels do not look.
    virtual void embedding(const int32_t* tokens, int64_t n_tokens, const uint16_t* table, int64_t vocab_begin,
                           int64_t vocab_end, int64_t dim, float* out, Stream& stream) = 0;
    // RMSNorm of `rows` rows of dim floats with a BF16 weight; row r at x + r * x_stride, out + r * out_stride.
    virtual void rmsnorm(const float* x, int64_t x_stride, const uint16_t* weight, int64_t rows, int64_t dim, float eps,
                         float* out, int64_t out_stride, Stream& stream) = 0;
    // Rotates the rope part of n_heads heads of n_tokens tokens in place (cpu::apply_rope).
    virtual void rope(float* x, int64_t n_tokens, int64_t token_stride, int64_t n_heads, int64_t head_stride,
                      const int64_t* positions, const RopeTables& tables, Stream& stream) = 0;
    virtual void add(const float* a, const float* b, int64_t n, float* out, Stream& stream) = 0;
    virtual void silu_mul(const float* gate, const float* up, int64_t n, float* out, Stream& stream) = 0;

    // y[T, rows] = x[T, cols] . W^T. FP8 weights: dequantized with their block scales and multiplied in FP32,
    // or (CUDA, use_fp8_gemm) cuBLASLt's block-scaled FP8 GEMM where it applies.
    virtual void linear(const LinearWeight& w, const float* x, int64_t n_tokens, float* y, Stream& stream) = 0;
    // W as float [rows, cols] in out.
    virtual void dequantize(const LinearWeight& w, float* out, Stream& stream) = 0;
    // The CPU backend multiplies in FP32 only, and refuses on. On CUDA the FP8 GEMM works in the linear's
    // scratch (reserve_linear_scratch), which must then hold the plan's GemmMode::Fp8 size: Model sets both
    // from ModelOptions::gemm.
    virtual void use_fp8_gemm(bool on) = 0;
    // Sizes the linear's scratch (tag "gemm_scratch") to `weight_elems` floats: the plan's gemm_bytes, a
    // dequantized weight or (CUDA, use_fp8_gemm) an FP8 GEMM call's region. Call it on the host, before work
    // that uses it (a work item must not allocate); the CPU's linear() refuses a larger weight, CUDA's FP8
    // GEMM a larger call.
    virtual void reserve_linear_scratch(int64_t weight_elems) = 0;

    // The paged latent KV cache (kernels/core/paged_kv.h): n_tokens rows of kv_lora_rank + qk_rope_head_dim
    // floats (the normed latent, then the roped key) into the layer's slots (backend memory), rounded to the
    // cache's dtype.
    virtual void kv_cache_write(const float* rows, int64_t n_tokens, const int64_t* slots, const core::KvPages& kv,
                                Stream& stream) = 0;
    // Absorbed MLA attention of every token of the step (ragged over sequences, decode tokens and prefill
    // chunks mixed) over the paged cache, tiled with an online softmax (cpu::paged_mla_attention); scratch
    // holds core::paged_attention_scratch_floats floats.
    virtual void paged_mla_attention(const float* q, const core::KvPages& kv, const float* wkv_b, const cpu::MlaDims& d,
                                     const core::RaggedBatch& batch, float softmax_scale, float* scratch, float* out,
                                     Stream& stream) = 0;

    // MoE routing: sigmoid scores, group-limited top-k with the correction bias (may be null); weights and
    // experts [n_tokens, topk]. A token with a NaN logit: the CPU throws; CUDA, which cannot, gives it expert -1
    // in every slot (moe_dispatch skips those); a NaN hidden state, the usual cause, also reaches the logits.
    virtual void moe_route(const float* logits, const float* bias, int64_t n_tokens, const cpu::GateParams& p,
                           float* weights, int32_t* experts, Stream& stream) = 0;
    // Routing's picks grouped by this rank's experts [expert_begin, expert_begin + n_local), where they are:
    // offsets[n_local + 1], and at offsets[e] .. offsets[e + 1], in (token, slot) order, each pick's token
    // (rows) and routing weight (scales); rows / scales hold up to n_tokens * topk (cpu::moe_dispatch).
    virtual void moe_dispatch(const int32_t* experts, const float* weights, int64_t n_tokens, int64_t topk,
                              int64_t expert_begin, int64_t n_local, int32_t* offsets, int32_t* rows, float* scales,
                              Stream& stream) = 0;
    // The routed experts' MLP over moe_dispatch's picks, one call for all of experts (local expert e is
    // experts[e]): out[t] += scale * down(silu(gate(h[t])) * up(h[t])) for every pick (t, scale). The picks'
    // counts are read where they are, so the host never waits for routing; an expert without picks costs
    // nothing but its (empty) launches. An expert with more than scratch.max_rows picks is an error on the
    // CPU and is cut at max_rows on CUDA (the caller sizes max_rows; the step's token count always holds).
    virtual void routed_experts_mlp(const std::vector<ExpertWeights>& experts, const float* h, int64_t dim,
                                    const int32_t* offsets, const int32_t* rows, const float* scales,
                                    const ExpertScratch& scratch, float* out, Stream& stream) = 0;
    // out[r] = src[rows[r]] and out[rows[r]] += scales[r] * y[r] (rows distinct), rows of dim floats.
    virtual void gather_rows(const float* src, const int32_t* rows, int64_t n_rows, int64_t dim, float* out,
                             Stream& stream) = 0;
    virtual void scatter_add_scaled_rows(const float* y, const int32_t* rows, const float* scales, int64_t n_rows,
                                         int64_t dim, float* out, Stream& stream) = 0;

    // Greedy sampling where the logits are: ids[r] = the first largest logit of row r, the concatenation of
    // its `blocks` vocabulary parts of block_len floats (part b at x + (b * rows + r) * block_len: the
    // logits' all-gather), or -1 when the row holds a NaN or an infinity (cpu::argmax_rows).
    virtual void argmax_rows(const float* x, int64_t rows, int64_t blocks, int64_t block_len, int32_t* ids,
                             Stream& stream) = 0;

    // A decoder for one WeightStore's blobs, with room for `blobs` placed blobs (ids 0 .. blobs - 1).
    virtual std::unique_ptr<BlobDecoder> make_blob_decoder(size_t blobs) = 0;

    // Collectives on backend memory, ordered with `stream` (CUDA: through the communicator's own stream).
    virtual void all_reduce_sum(Communicator& comm, float* buf, int64_t count, Stream& stream) = 0;
    virtual void all_gather(Communicator& comm, const float* send, float* recv, int64_t count_per_rank,
                            Stream& stream) = 0;

protected:
    Ops() = default;
};

}  // namespace ecf8
