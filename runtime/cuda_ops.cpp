// CudaOps: runtime/ops.h over kernels/cuda, enqueued on the caller's stream. The kernels round as their CPU
// twins (kernels/cuda/ops.cuh says where they may differ); tests/runtime/backend_ops_harness.cpp states each
// op's tolerance.
#include "runtime/cuda_ops.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <string>

#include "common/error.h"
#include "kernels/core/fp8_gemm_scratch.h"
#include "kernels/cuda/fp8_gemm.cuh"
#include "kernels/cuda/ops.cuh"
#include "runtime/backend.h"
#include "runtime/communicator.h"

namespace ecf8 {
namespace {

cudaStream_t native(Stream& s) { return static_cast<cudaStream_t>(s.native_handle()); }

class CudaOps final : public Ops {
public:
    explicit CudaOps(Backend& backend) : backend_(backend) {
        CUDA_CHECK(cudaEventCreateWithFlags(&to_collective_, cudaEventDisableTiming));
        CUDA_CHECK(cudaEventCreateWithFlags(&from_collective_, cudaEventDisableTiming));
    }
    ~CudaOps() override {
        cudaEventDestroy(to_collective_);
        cudaEventDestroy(from_collective_);
    }

    void to_device(void* dst, const void* host, size_t bytes, Stream& stream) override {
        if (bytes > 0) CUDA_CHECK(cudaMemcpyAsync(dst, host, bytes, cudaMemcpyHostToDevice, native(stream)));
    }
    void to_host(void* host, const void* src, size_t bytes, Stream& stream) override {
        if (bytes > 0) CUDA_CHECK(cudaMemcpyAsync(host, src, bytes, cudaMemcpyDeviceToHost, native(stream)));
        backend_.synchronize(stream);
    }
    void fill_zero(void* dst, size_t bytes, Stream& stream) override {
        if (bytes > 0) CUDA_CHECK(cudaMemsetAsync(dst, 0, bytes, native(stream)));
    }
    void copy(void* dst, const void* src, size_t bytes, Stream& stream) override {
        if (bytes > 0) CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, native(stream)));
    }
    void copy_rows(const float* src, int64_t src_stride, int64_t rows, int64_t cols, float* dst, int64_t dst_stride,
                   Stream& stream) override {
        if (rows <= 0 || cols <= 0) return;
        CUDA_CHECK(cudaMemcpy2DAsync(dst, dst_stride * sizeof(float), src, src_stride * sizeof(float),
                                     cols * sizeof(float), rows, cudaMemcpyDeviceToDevice, native(stream)));
    }

    void embedding(const int32_t* tokens, int64_t n_tokens, const uint16_t* table, int64_t vocab_begin,
                   int64_t vocab_end, int64_t dim, float* out, Stream& stream) override {
        cuda::embedding_bf16(tokens, n_tokens, table, vocab_begin, vocab_end, dim, out, native(stream));
    }
    void rmsnorm(const float* x, int64_t x_stride, const uint16_t* weight, int64_t rows, int64_t dim, float eps,
                 float* out, int64_t out_stride, Stream& stream) override {
        cuda::rmsnorm(x, x_stride, weight, rows, dim, eps, out, out_stride, native(stream));
    }
    void rope(float* x, int64_t n_tokens, int64_t token_stride, int64_t n_heads, int64_t head_stride,
              const int64_t* positions, const RopeTables& t, Stream& stream) override {
        cuda::apply_rope(x, n_tokens, token_stride, n_heads, head_stride, t.rope_dim, positions, t.cos, t.sin,
                         native(stream));
    }
    void add(const float* a, const float* b, int64_t n, float* out, Stream& stream) override {
        cuda::add(a, b, n, out, native(stream));
    }
    void silu_mul(const float* gate, const float* up, int64_t n, float* out, Stream& stream) override {
        cuda::silu_mul(gate, up, n, out, native(stream));
    }

    void linear(const LinearWeight& w, const float* x, int64_t n_tokens, float* y, Stream& stream) override {
        if (fp8_gemm_ && w.dtype == DType::F8_E4M3 && w.block == 128 &&
            cuda::Fp8BlockGemm::supported(n_tokens, w.cols, w.rows)) {
            fp8_linear(w, x, n_tokens, y, native(stream));
            return;
        }
        // Decode-sized steps read each weight once instead of writing and reading it as FP32.
        const bool fp8 = w.dtype == DType::F8_E4M3;
        if ((fp8 || w.dtype == DType::BF16) &&
            cuda::linear_few_rows(w.data, w.scale_inv, fp8, w.block, w.rows, w.cols, x, n_tokens, y, native(stream)))
            return;
        float* wf = grow(weight_, w.rows * w.cols * sizeof(float)).as<float>();
        dequantize(w, wf, stream);
        gemm_.linear_f32(x, wf, y, n_tokens, w.cols, w.rows, native(stream));
    }
    void dequantize(const LinearWeight& w, float* out, Stream& stream) override {
        if (w.dtype == DType::F8_E4M3) {
            cuda::dequantize_fp8_block_to_float(w.data, w.scale_inv, w.rows, w.cols, out, w.block, native(stream));
        } else {
            ECF8_CHECK(w.dtype == DType::BF16, "linear: weight dtype " << dtype_name(w.dtype) << " is not FP8 or BF16");
            cuda::widen_bf16(reinterpret_cast<const uint16_t*>(w.data), w.rows * w.cols, out, native(stream));
        }
    }
    void reserve_linear_scratch(int64_t weight_elems) override {
        grow(weight_, static_cast<size_t>(weight_elems) * sizeof(float));
    }
    void use_fp8_gemm(bool on) override {
        fp8_gemm_ = on ? std::make_unique<cuda::Fp8BlockGemm>(cuda::Fp8BlockGemm::kCallerMemory) : nullptr;
    }

    void kv_cache_write(const float* rows, int64_t n_tokens, const int64_t* slots, const core::KvPages& kv,
                        Stream& stream) override {
        cuda::kv_cache_write(rows, n_tokens, slots, kv, native(stream));
    }
    void paged_mla_attention(const float* q, const core::KvPages& kv, const float* wkv_b, const cpu::MlaDims& d,
                             const core::RaggedBatch& batch, float softmax_scale, float* scratch, float* out,
                             Stream& stream) override {
        cuda::paged_mla_attention(gemm_, q, kv, wkv_b, d, batch, softmax_scale, scratch, out, native(stream));
    }

    void moe_route(const float* logits, const float* bias, int64_t n_tokens, const cpu::GateParams& p, float* weights,
                   int32_t* experts, Stream& stream) override {
        cuda::moe_route(logits, bias, n_tokens, p, weights, experts, native(stream));
    }
    void argmax_rows(const float* x, int64_t rows, int64_t blocks, int64_t block_len, int32_t* ids,
                     Stream& stream) override {
        cuda::argmax_rows(x, rows, blocks, block_len, ids, native(stream));
    }
    void gather_rows(const float* src, const int32_t* rows, int64_t n_rows, int64_t dim, float* out,
                     Stream& stream) override {
        cuda::gather_rows(src, rows, n_rows, dim, out, native(stream));
    }
    void scatter_add_scaled_rows(const float* y, const int32_t* rows, const float* scales, int64_t n_rows, int64_t dim,
                                 float* out, Stream& stream) override {
        cuda::scatter_add_scaled_rows(y, rows, scales, n_rows, dim, out, native(stream));
    }

    void moe_dispatch(const int32_t* experts, const float* weights, int64_t n_tokens, int64_t topk,
                      int64_t expert_begin, int64_t n_local, int32_t* offsets, int32_t* rows, float* scales,
                      Stream& stream) override {
        cuda::moe_dispatch(experts, weights, n_tokens, topk, expert_begin, n_local, offsets, rows, scales,
                           native(stream));
    }
    // The picks' counts are read on the device. A step whose picks all fit the scratch at once (decode: the
    // step's tokens x topk within its rows) runs kMaxExpertGroup experts per launch, six launches per group;
    // a larger step (prefill) runs one expert after another, each launch over that expert's picks.
    void routed_experts_mlp(const std::vector<ExpertWeights>& experts, const float* h, int64_t dim,
                            const int32_t* offsets, const int32_t* rows, const float* scales, const ExpertScratch& sc,
                            float* out, Stream& stream) override {
        const cudaStream_t st = native(stream);
        const int64_t n_local = static_cast<int64_t>(experts.size());
        const int64_t capacity = std::max(sc.capacity_rows, sc.max_rows);
        // A token picks an expert once, so a group has at most max_rows x min(count, topk) picks.
        const bool grouped = sc.topk > 0 && sc.max_rows * std::min(sc.topk, cuda::kMaxExpertGroup) <= capacity;
        const int64_t group = grouped ? cuda::kMaxExpertGroup : 1;
        for (int64_t e0 = 0; e0 < n_local; e0 += group) {
            cuda::PickGroup g;
            g.offsets = offsets;
            g.first = e0;
            g.count = std::min(group, n_local - e0);
            g.cap_rows = grouped ? capacity : sc.max_rows;
            g.expert_bound = sc.max_rows;
            g.group_bound = grouped ? sc.max_rows * std::min(sc.topk, g.count) : sc.max_rows;
            const int64_t inter = experts[static_cast<size_t>(e0)].gate.rows;
            cuda::gather_picks(h, rows, g, dim, sc.x, st);
            linear_picks(experts, g, &ExpertWeights::gate, sc.x, sc.gate, st);
            linear_picks(experts, g, &ExpertWeights::up, sc.x, sc.up, st);
            cuda::silu_mul_picks(sc.gate, sc.up, g, inter, sc.gate, st);
            linear_picks(experts, g, &ExpertWeights::down, sc.gate, sc.y, st);
            if (grouped)
                cuda::scatter_add_group(sc.y, rows, scales, g, sc.max_rows, dim, out, st);
            else
                cuda::scatter_add_picks(sc.y, rows, scales, g, dim, out, st);
        }
    }

    std::unique_ptr<BlobDecoder> make_blob_decoder(size_t blobs) override {
        return make_cuda_blob_decoder(backend_, blobs);
    }

    void all_reduce_sum(Communicator& comm, float* buf, int64_t count, Stream& stream) override {
        on_collective_stream(comm, stream, [&] { comm.all_reduce_sum(buf, count, ElemType::F32); });
    }
    void all_gather(Communicator& comm, const float* send, float* recv, int64_t count_per_rank,
                    Stream& stream) override {
        on_collective_stream(comm, stream, [&] { comm.all_gather(send, recv, count_per_rank, ElemType::F32); });
    }

private:
    // The FP8 GEMM in the planned gemm scratch, laid out by core::fp8_linear_region: cuBLASLt's workspace,
    // the quantized activations and their scales, then the GEMM's own scratch. The linear's other path
    // (a dequantized weight) uses the same buffer; both run on the compute stream, one after the other.
    void fp8_linear(const LinearWeight& w, const float* x, int64_t n_tokens, float* y, cudaStream_t st) {
        const core::Fp8LinearRegion r = core::fp8_linear_region(n_tokens, w.cols, w.rows);
        ECF8_CHECK(r.total <= weight_.size(), "linear: the FP8 GEMM of "
                                                  << n_tokens << " tokens through a " << w.rows << " x " << w.cols
                                                  << " weight needs " << r.total
                                                  << " bytes of the gemm scratch, which holds " << weight_.size()
                                                  << " (the plan sizes it for compute.gemm fp8: Model sets both)");
        auto* base = weight_.as<uint8_t>();
        auto* xq = base + r.act_off;
        auto* xs = reinterpret_cast<float*>(base + r.scales_off);
        cuda::quantize_activations_fp8(x, n_tokens, w.cols, xq, xs, st);
        const cuda::Fp8GemmMemory memory{base, core::kFp8GemmWorkspaceBytes,
                                         reinterpret_cast<float*>(base + r.scratch_off),
                                         (weight_.size() - r.scratch_off) / sizeof(float)};
        fp8_gemm_->linear(xq, xs, w.data, w.scale_inv, y, n_tokens, w.cols, w.rows, memory, st);
    }
    // One matrix (gate, up or down) of the group's experts, which share its shape, dtype and block.
    void linear_picks(const std::vector<ExpertWeights>& experts, const cuda::PickGroup& g,
                      LinearWeight ExpertWeights::*which, const float* x, float* y, cudaStream_t st) const {
        const LinearWeight& w0 = experts[static_cast<size_t>(g.first)].*which;
        ECF8_CHECK(w0.dtype == DType::F8_E4M3 || w0.dtype == DType::BF16,
                   "routed_experts_mlp: weight dtype " << dtype_name(w0.dtype) << " is not FP8 or BF16");
        cuda::ExpertMatrices m{};
        for (int64_t j = 0; j < g.count; ++j) {
            const LinearWeight& w = experts[static_cast<size_t>(g.first + j)].*which;
            ECF8_CHECK(w.dtype == w0.dtype && w.rows == w0.rows && w.cols == w0.cols && w.block == w0.block,
                       "routed_experts_mlp: local expert " << g.first + j << "'s weights differ from expert " << g.first
                                                           << "'s in shape, dtype or block");
            m.w[j] = w.data;
            m.scale_inv[j] = w.scale_inv;
        }
        // compute.gemm fp8 trades FP32 for tensor cores in the routed experts too (their prefill-sized steps).
        cuda::linear_picks(m, w0.dtype == DType::F8_E4M3, w0.block, w0.rows, w0.cols, x, g, y, fp8_gemm_ != nullptr,
                           st);
    }
    // NCCL runs on the communicator's own stream: it waits for `stream`, and `stream` waits for it.
    template <class Fn>
    void on_collective_stream(Communicator& comm, Stream& stream, Fn&& enqueue) {
        const auto collective = static_cast<cudaStream_t>(comm.native_stream());
        ECF8_CHECK(collective != nullptr, "the CUDA backend needs a communicator on device buffers (NCCL)");
        CUDA_CHECK(cudaEventRecord(to_collective_, native(stream)));
        CUDA_CHECK(cudaStreamWaitEvent(collective, to_collective_, 0));
        enqueue();
        CUDA_CHECK(cudaEventRecord(from_collective_, collective));
        CUDA_CHECK(cudaStreamWaitEvent(native(stream), from_collective_, 0));
    }
    // Grows a scratch buffer; freeing the old one waits for the device (as cudaFree), which happens only
    // while the buffers first reach their working size.
    Buffer& grow(Buffer& b, size_t bytes) {
        if (b.size() < bytes) {
            b.reset();
            b = backend_.buffer(bytes, MemoryKind::Device, "gemm_scratch");
        }
        return b;
    }

    Backend& backend_;
    cuda::Sgemm gemm_;
    std::unique_ptr<cuda::Fp8BlockGemm> fp8_gemm_;  // set by use_fp8_gemm(true)
    Buffer weight_;  // the planned "gemm_scratch": a dequantized weight, or an FP8 GEMM's region
    cudaEvent_t to_collective_ = nullptr, from_collective_ = nullptr;
};

}  // namespace

std::unique_ptr<Ops> make_cuda_ops(Backend& backend) {
    ECF8_CHECK(backend.kind() == BackendKind::Cuda, "make_cuda_ops needs the CUDA backend, got " << backend.name());
    return std::make_unique<CudaOps>(backend);
}

}  // namespace ecf8
