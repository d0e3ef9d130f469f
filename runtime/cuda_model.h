// CudaModel: the forward's stages (runtime/model.h, ForwardStages) on one GPU, for the pipeline to drive on
// the CUDA backend. Each stage enqueues the CUDA twins of the CPU kernels (kernels/cuda/ops.cuh) on the
// pipeline's compute stream, on device buffers: activations, the latent KV caches (KvCache::device) and
// the weights the WeightStore decoded into its device slots. Nothing waits on the host except routing:
// ffn_norm brings the picked experts to the host (one compute-stream synchronization per MoE layer), since
// the expert GEMMs' sizes and the experts to fetch depend on them.
//
// Numerics follow the CPU forward: weights dequantized to float (FP8 x 128x128 block scales, or BF16
// widened) and multiplied in true FP32 (cuBLAS SGEMM, pedantic math), element-wise ops rounding as their
// CPU twins. Only the GEMMs' and rmsnorm's summation order differ, so logits match the CPU backend within
// float rounding (tests/runtime/test_cuda_forward.cpp states the tolerance), and every run on the same
// bytes is bit-identical (no atomics, fixed reduction order), which makes ECF8 and raw weights give
// identical logits.
//
// Tensor parallelism: reduce_embedding / reduce_block / gather_logits run on the pipeline's comm stream
// (world > 1): an all-reduce (the logits: an all-gather) through the communicator (NCCL, enqueued on
// collective_stream, ordered with the comm stream by events), as the CPU forward does over MPI.
#pragma once

#include <memory>

#include "runtime/model.h"

namespace ecf8 {

class Backend;

class CudaModel final : public ForwardStages {
public:
    // comm may be null only for a world of one rank; collective_stream is the cudaStream_t the
    // communicator enqueues on (NcclCommunicator::stream()). The backend (a CudaBackend) holds the KV caches.
    CudaModel(const ModelConfig& config, const WorldConfig& world, Communicator* comm, void* collective_stream,
              int64_t max_seq_len, Backend& backend);
    ~CudaModel() override;

    // FP8 linears through cuBLASLt's block-scaled FP8 GEMM (activations quantized per 1x128 block, as
    // DeepSeek-V3's inference does) where Fp8BlockGemm::supported() says it applies; elsewhere, and by
    // default, the FP32 path above. Off: logits match the CPU backend within float rounding; on: within the
    // FP8 GEMM's error (kernels/cuda/fp8_gemm.cuh), and much faster. Either way ECF8 and raw weights give
    // bit-identical logits.
    void use_fp8_gemm(bool on);

    const ModelConfig& config() const override;
    const WorldConfig& world() const override;
    KvCache new_cache() const override;
    void bind_streams(Stream& compute, Stream& comm) override;

    ForwardState prepare(const std::vector<std::vector<int32_t>>& tokens, const std::vector<KvCache*>& caches,
                         bool all_positions) override;
    void embed(ForwardState& s, const WeightSource& w) override;
    void reduce_embedding(ForwardState& s) override;
    void attention(int layer, ForwardState& s, const WeightSource& w) override;
    void reduce_block(ForwardState& s) override;
    void ffn_norm(int layer, ForwardState& s, const WeightSource& w) override;
    void ffn(int layer, ForwardState& s, const WeightSource& w) override;
    void routed_experts(int layer, ForwardState& s, const WeightSource& w, size_t first, size_t last) override;
    void head(ForwardState& s, const WeightSource& w) override;
    void gather_logits(ForwardState& s) override;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace ecf8
