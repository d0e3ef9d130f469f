// CpuOps: runtime/ops.h over kernels/cpu. Every op is the kernel call the CPU forward made before the op
// table existed, so the CPU backend's logits are unchanged bit for bit.
#include "runtime/cpu_ops.h"

#include <cstring>
#include <vector>

#include "common/error.h"
#include "kernels/cpu/embedding.h"
#include "kernels/cpu/linear.h"
#include "kernels/cpu/mla_attention.h"
#include "kernels/cpu/mlp.h"
#include "kernels/cpu/moe_dispatch.h"
#include "kernels/cpu/moe_gate.h"
#include "kernels/cpu/rmsnorm.h"
#include "kernels/cpu/rope.h"
#include "kernels/cpu/sampling.h"
#include "runtime/backend.h"
#include "runtime/communicator.h"

namespace ecf8 {
namespace {

class CpuBlobDecoder final : public BlobDecoder {
public:
    bool device_memory_is_host() const override { return true; }
    uint64_t placed_bytes(const PreparedTensor&, uint64_t stored_bytes) const override { return stored_bytes; }
    void place(uint32_t, PreparedTensor& t, const uint8_t* blob, uint8_t* target, uint64_t target_bytes) override {
        if (blob != target) std::memcpy(target, blob, target_bytes);
        t.rebase(target);
    }
    void bind(uint32_t, PreparedTensor& t, const uint8_t*, uint8_t* target, uint64_t) override { t.rebase(target); }
    void upload(void* dst, const void* host, size_t bytes) override {
        if (bytes > 0) std::memcpy(dst, host, bytes);
    }
    void decode(const std::vector<BlobJob>& jobs, Stream&) override {
        for (const BlobJob& j : jobs) {
            if (j.picks != nullptr && j.picks[1] <= j.picks[0]) continue;  // an expert routing did not pick
            if (j.tensor != nullptr)
                decode_all(*j.tensor, j.out, nullptr);  // one thread: the decode stream's
            else if (j.bytes > 0)
                std::memcpy(j.out, j.src, j.bytes);
        }
    }
    void queue_error_check(Stream&) override {}  // the CPU decoder throws at once
    void throw_if_failed() override {}
    void check_now() override {}
};

class CpuOps final : public Ops {
public:
    explicit CpuOps(Backend& backend) : backend_(backend) { cpu::cpu_blas_ensure_init(); }

    void to_device(void* dst, const void* host, size_t bytes, Stream&) override { copy_bytes(dst, host, bytes); }
    void to_host(void* host, const void* src, size_t bytes, Stream&) override { copy_bytes(host, src, bytes); }
    void fill_zero(void* dst, size_t bytes, Stream&) override {
        if (bytes > 0) std::memset(dst, 0, bytes);
    }
    void copy(void* dst, const void* src, size_t bytes, Stream&) override { copy_bytes(dst, src, bytes); }
    void copy_rows(const float* src, int64_t src_stride, int64_t rows, int64_t cols, float* dst, int64_t dst_stride,
                   Stream&) override {
        for (int64_t r = 0; r < rows; ++r)
            std::memcpy(dst + r * dst_stride, src + r * src_stride, cols * sizeof(float));
    }

    void embedding(const int32_t* tokens, int64_t n_tokens, const uint16_t* table, int64_t vocab_begin,
                   int64_t vocab_end, int64_t dim, float* out, Stream&) override {
        cpu::embedding_bf16(tokens, n_tokens, table, vocab_begin, vocab_end, dim, out);
    }
    void rmsnorm(const float* x, int64_t x_stride, const uint16_t* weight, int64_t rows, int64_t dim, float eps,
                 float* out, int64_t out_stride, Stream&) override {
        if (x_stride == dim && out_stride == dim) return cpu::rmsnorm(x, weight, rows, dim, eps, out);
        for (int64_t r = 0; r < rows; ++r) cpu::rmsnorm(x + r * x_stride, weight, 1, dim, eps, out + r * out_stride);
    }
    void rope(float* x, int64_t n_tokens, int64_t token_stride, int64_t n_heads, int64_t head_stride,
              const int64_t* positions, const RopeTables& t, Stream&) override {
        cpu::apply_rope(x, n_tokens, token_stride, n_heads, head_stride, t.rope_dim, positions, t.cos, t.sin,
                        t.max_seq_len);
    }
    void add(const float* a, const float* b, int64_t n, float* out, Stream&) override { cpu::add(a, b, n, out); }
    void silu_mul(const float* gate, const float* up, int64_t n, float* out, Stream&) override {
        cpu::silu_mul(gate, up, n, out);
    }

    void linear(const LinearWeight& w, const float* x, int64_t n_tokens, float* y, Stream&) override {
        ECF8_CHECK(static_cast<size_t>(w.rows * w.cols) * sizeof(float) <= scratch_.size(),
                   "linear: a " << w.rows << " x " << w.cols << " weight exceeds the reserved scratch of "
                                << scratch_.size() / sizeof(float) << " floats");
        float* scratch = scratch_.as<float>();
        if (w.dtype == DType::F8_E4M3) {
            cpu::linear_fp8(x, w.data, w.scale_inv, scratch, y, n_tokens, w.cols, w.rows, w.block);
        } else {
            ECF8_CHECK(w.dtype == DType::BF16, "linear: weight dtype " << dtype_name(w.dtype) << " is not FP8 or BF16");
            cpu::linear_bf16(x, reinterpret_cast<const uint16_t*>(w.data), scratch, y, n_tokens, w.cols, w.rows);
        }
    }
    void reserve_linear_scratch(int64_t weight_elems) override {
        const size_t bytes = static_cast<size_t>(weight_elems) * sizeof(float);
        if (scratch_.size() >= bytes) return;
        scratch_.reset();
        scratch_ = backend_.buffer(bytes, MemoryKind::Device, "gemm_scratch");
    }
    void dequantize(const LinearWeight& w, float* out, Stream&) override {
        if (w.dtype == DType::F8_E4M3) {
            cpu::dequantize_fp8_block_to_float(w.data, w.scale_inv, w.rows, w.cols, out, w.block);
        } else {
            ECF8_CHECK(w.dtype == DType::BF16, "linear: weight dtype " << dtype_name(w.dtype) << " is not FP8 or BF16");
            cpu::bf16_to_float_array(reinterpret_cast<const uint16_t*>(w.data), w.rows * w.cols, out);
        }
    }
    void use_fp8_gemm(bool on) override {
        ECF8_CHECK(!on, "the FP8 GEMM needs the CUDA backend (the CPU backend multiplies in FP32)");
    }

    void kv_cache_write(const float* rows, int64_t n_tokens, const int64_t* slots, const core::KvPages& kv,
                        Stream&) override {
        cpu::kv_cache_write(rows, n_tokens, slots, kv);
    }
    void paged_mla_attention(const float* q, const core::KvPages& kv, const float* wkv_b, const cpu::MlaDims& d,
                             const core::RaggedBatch& batch, float softmax_scale, float* scratch, float* out,
                             Stream&) override {
        cpu::paged_mla_attention(q, kv, wkv_b, d, batch, softmax_scale, scratch, out);
    }

    void moe_route(const float* logits, const float* bias, int64_t n_tokens, const cpu::GateParams& p, float* weights,
                   int32_t* experts, Stream&) override {
        cpu::moe_route(logits, bias, n_tokens, p, weights, experts);
    }
    void argmax_rows(const float* x, int64_t rows, int64_t blocks, int64_t block_len, int32_t* ids, Stream&) override {
        cpu::argmax_rows(x, rows, blocks, block_len, ids);
    }
    void gather_rows(const float* src, const int32_t* rows, int64_t n_rows, int64_t dim, float* out, Stream&) override {
        for (int64_t r = 0; r < n_rows; ++r) std::memcpy(out + r * dim, src + rows[r] * dim, dim * sizeof(float));
    }
    void scatter_add_scaled_rows(const float* y, const int32_t* rows, const float* scales, int64_t n_rows, int64_t dim,
                                 float* out, Stream&) override {
        for (int64_t r = 0; r < n_rows; ++r) cpu::add_scaled(y + r * dim, scales[r], dim, out + rows[r] * dim);
    }

    void moe_dispatch(const int32_t* experts, const float* weights, int64_t n_tokens, int64_t topk,
                      int64_t expert_begin, int64_t n_local, int32_t* offsets, int32_t* rows, float* scales,
                      Stream&) override {
        cpu::moe_dispatch(experts, weights, n_tokens, topk, expert_begin, n_local, offsets, rows, scales);
    }
    void routed_experts_mlp(const std::vector<ExpertWeights>& experts, const float* h, int64_t dim,
                            const int32_t* offsets, const int32_t* rows, const float* scales, const ExpertScratch& sc,
                            float* out, Stream& stream) override {
        for (size_t e = 0; e < experts.size(); ++e) {
            const int64_t begin = offsets[e], n = offsets[e + 1] - begin;
            if (n == 0) continue;
            ECF8_CHECK(n > 0 && n <= sc.max_rows, "routed_experts_mlp: local expert " << e << " has " << n
                                                                                      << " picks; the scratch holds "
                                                                                      << sc.max_rows << " rows");
            const int64_t inter = experts[e].gate.rows;
            gather_rows(h, rows + begin, n, dim, sc.x, stream);
            linear(experts[e].gate, sc.x, n, sc.gate, stream);
            linear(experts[e].up, sc.x, n, sc.up, stream);
            silu_mul(sc.gate, sc.up, n * inter, sc.gate, stream);
            linear(experts[e].down, sc.gate, n, sc.y, stream);
            scatter_add_scaled_rows(sc.y, rows + begin, scales + begin, n, dim, out, stream);
        }
    }

    std::unique_ptr<BlobDecoder> make_blob_decoder(size_t) override { return std::make_unique<CpuBlobDecoder>(); }

    void all_reduce_sum(Communicator& comm, float* buf, int64_t count, Stream&) override {
        comm.all_reduce_sum(buf, static_cast<size_t>(count), ElemType::F32);
    }
    void all_gather(Communicator& comm, const float* send, float* recv, int64_t count_per_rank, Stream&) override {
        comm.all_gather(send, recv, static_cast<size_t>(count_per_rank), ElemType::F32);
    }

private:
    static void copy_bytes(void* dst, const void* src, size_t bytes) {
        if (bytes > 0) std::memcpy(dst, src, bytes);
    }
    Backend& backend_;
    Buffer scratch_;  // a dequantized weight (one linear at a time: ops on one stream)
};

}  // namespace

std::unique_ptr<Ops> make_cpu_ops(Backend& backend) { return std::make_unique<CpuOps>(backend); }

}  // namespace ecf8
