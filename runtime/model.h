// The DeepSeek-V3 forward pass of one tensor-parallel rank on the CPU kernels (kernels/cpu), as
// deepseek-ai/DeepSeek-V3 inference/model.py defines it: vocab-parallel embedding, RMSNorm, MLA attention
// with a latent KV cache (the reference's "absorb" formulation), YaRN RoPE, dense first layers, MoE with a
// sigmoid group-limited gate and shared experts, vocab-parallel lm_head with gathered logits.
//
// Weights come from a WeightSource (this rank's decoded parts, by source tensor name), so the same forward
// runs on weights decoded just in time from ECF8 or copied from raw FP8: identical bytes, identical logits.
// The forward is cut into stages (embed, attention, FFN norm + routing, FFN, routed experts, head) that
// share a ForwardState; forward() runs them in order on the calling thread, and runtime/pipeline.h runs the
// same stages on the backend's compute stream, with decode and collectives on their own streams.
// Partial sums of row-parallel layers and of the MoE are combined with one all-reduce per block; every rank
// receives the same sum (Communicator's contract), so all ranks see bit-identical activations (and
// therefore make identical routing decisions), and runs on the same world are reproducible.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "codec/dtype.h"
#include "kernels/cpu/moe_gate.h"
#include "kernels/cpu/rope.h"
#include "runtime/communicator.h"
#include "sharding/model_config.h"
#include "sharding/world_config.h"

namespace ecf8 {

class Stream;

// One decoded tensor part held by this rank.
struct WeightView {
    const uint8_t* data = nullptr;
    DType dtype = DType::U8;
    std::vector<int64_t> shape;  // the part's shape
    int split_dim = -1;          // -1: the whole tensor; else the split dimension
    int64_t begin = 0;           // start of the part along split_dim
};

class WeightSource {
public:
    virtual ~WeightSource() = default;
    // This rank's part of a source tensor; throws ecf8::Error naming the tensor when the rank has none.
    virtual WeightView get(const std::string& name) const = 0;
    // Called by forward() with the routed experts of this rank that routing picked, before it reads them.
    virtual void need_experts(int layer, const std::vector<int>& experts) const {
        (void)layer;
        (void)experts;
    }
};

// The latent KV cache of one sequence on one rank (MLA's cache is not split by tensor parallelism).
struct KvCache {
    std::vector<std::vector<float>> kv;  // per layer: [max_seq_len, kv_lora_rank], kv_a_layernorm applied
    std::vector<std::vector<float>> pe;  // per layer: [max_seq_len, qk_rope_head_dim], rotated
    int64_t length = 0;                  // tokens cached
    std::shared_ptr<void> device;        // the GPU forward's cache in device memory (runtime/cuda_model.h)
};

// What one forward step carries from stage to stage. Built by Model::prepare; the stages read and write it.
struct ForwardState {
    std::vector<KvCache*> caches;
    std::vector<int64_t> seq_begin;   // sequence s owns token rows [seq_begin[s], seq_begin[s + 1])
    std::vector<int64_t> positions;   // of every token row
    std::vector<int32_t> tokens;      // flattened
    std::vector<int32_t> new_tokens;  // per sequence: how many tokens this step appends
    std::vector<int64_t> out_rows;    // token rows whose logits are returned
    int64_t n_tokens = 0;
    std::vector<float> x;        // residual stream [T, hidden]
    std::vector<float> h;        // normed input of the current block
    std::vector<float> block;    // a block's (partial) output; summed over ranks, then added to x
    bool block_pending = false;  // block holds a reduced output not yet added to x
    // Routing of the current MoE layer.
    std::vector<float> route_weights;               // [T, topk]
    std::vector<int32_t> route_experts;             // [T, topk]
    std::vector<std::vector<int64_t>> expert_rows;  // per expert: (token * topk + slot) of its picks
    std::vector<int> picked;                        // this rank's experts that routing picked, ascending
    std::vector<float> local_logits;                // [rows, this rank's vocabulary part]
    std::vector<float> logits;                      // gathered [rows, vocab]
    std::shared_ptr<void> device;                   // the GPU forward's device-side state (cuda_model.h)
};

// "model.layers.<layer>.": the prefix of a decoder layer's tensor names.
std::string layer_prefix(int layer);
// A BF16 weight part's values; throws naming the tensor when it is not BF16.
const uint16_t* bf16_of(const WeightView& v, const std::string& name);

// The host bookkeeping of one step (checks, tokens, positions, rows returned; the caches' lengths advance),
// without activations: the first part of every ForwardStages::prepare.
ForwardState plan_forward_step(const ModelConfig& config, int64_t max_seq_len,
                               const std::vector<std::vector<int32_t>>& tokens, const std::vector<KvCache*>& caches,
                               bool all_positions);

// Routing's picks on this rank: expert_rows[e] lists (token * topk + slot) for every pick of a routed expert
// e this rank holds, and picked the experts with at least one pick, ascending. Shared by the CPU and GPU
// forwards so both hand the same experts to the weight store.
void assign_routed_experts(const ModelConfig& config, const WorldConfig& world, const int32_t* route_experts,
                           int64_t n_tokens, int64_t topk, std::vector<std::vector<int64_t>>* expert_rows,
                           std::vector<int>* picked);

// The forward cut into stages, as the pipeline (runtime/pipeline.h) drives them: Model on the CPU kernels,
// CudaModel (runtime/cuda_model.h) on the GPU. Stages that compute run on the pipeline's compute stream;
// reduce_embedding, reduce_block and gather_logits run on its comm stream when the world has more than one
// rank (on the compute stream otherwise). On the CPU a stage does the work; on CUDA it enqueues it.
class ForwardStages {
public:
    virtual ~ForwardStages() = default;
    virtual const ModelConfig& config() const = 0;
    virtual const WorldConfig& world() const = 0;
    virtual KvCache new_cache() const = 0;
    // The backend streams the stages are launched on (CUDA enqueues on their native handles).
    virtual void bind_streams(Stream& compute, Stream& comm) {
        (void)compute;
        (void)comm;
    }
    virtual ForwardState prepare(const std::vector<std::vector<int32_t>>& tokens, const std::vector<KvCache*>& caches,
                                 bool all_positions) = 0;
    virtual void embed(ForwardState& s, const WeightSource& w) = 0;
    virtual void reduce_embedding(ForwardState& s) = 0;
    virtual void attention(int layer, ForwardState& s, const WeightSource& w) = 0;
    virtual void reduce_block(ForwardState& s) = 0;
    // The FFN's norm; on MoE layers also routing, after which s.picked holds this rank's picked experts on
    // the host (the GPU forward waits for its compute stream here: the one host synchronization of a layer).
    virtual void ffn_norm(int layer, ForwardState& s, const WeightSource& w) = 0;
    virtual void ffn(int layer, ForwardState& s, const WeightSource& w) = 0;
    // The picked experts s.picked[first, last), adding into the block. The pipeline runs the picks in groups
    // so that a group computes while the next one decodes; a layer's calls start with first == 0.
    virtual void routed_experts(int layer, ForwardState& s, const WeightSource& w, size_t first, size_t last) = 0;
    virtual void head(ForwardState& s, const WeightSource& w) = 0;
    // Leaves the gathered logits in s.logits (host memory) once the stream has run it.
    virtual void gather_logits(ForwardState& s) = 0;
};

class Model final : public ForwardStages {
public:
    // comm may be null only for a world of one rank. max_seq_len bounds every sequence (the rope table's
    // length); it does not change the numerics (YaRN follows config.json alone, kernels/cpu/rope.h).
    Model(const ModelConfig& config, const WorldConfig& world, Communicator* comm, int64_t max_seq_len);

    KvCache new_cache() const override;

    // Appends tokens[i] to sequence i (caches[i]) and runs them through the model as one batch. Returns
    // logits gathered over the ranks: the last token of each sequence ([B, vocab]), or every token
    // ([sum of lengths, vocab], sequence by sequence) with all_positions.
    std::vector<float> forward(const std::vector<std::vector<int32_t>>& tokens, const std::vector<KvCache*>& caches,
                               const WeightSource& weights, bool all_positions = false);

    const ModelConfig& config() const override { return config_; }
    const WorldConfig& world() const override { return world_; }
    int64_t max_seq_len() const { return max_seq_len_; }

    // The stages, in forward order. "reduce" stages sum a block over the ranks (collectives only); the
    // others compute. For each layer: attention, reduce_block, ffn_norm (routes on MoE layers), ffn (dense
    // MLP or shared experts), routed_experts (MoE layers, after the picked experts' weights are ready),
    // reduce_block. Then head and gather_logits.
    ForwardState prepare(const std::vector<std::vector<int32_t>>& tokens, const std::vector<KvCache*>& caches,
                         bool all_positions) override;
    void embed(ForwardState& s, const WeightSource& w) override;
    void reduce_embedding(ForwardState& s) override { reduce_sum(s.x.data(), s.x.size()); }
    void attention(int layer, ForwardState& s, const WeightSource& w) override;
    void reduce_block(ForwardState& s) override;
    void ffn_norm(int layer, ForwardState& s, const WeightSource& w) override;
    void ffn(int layer, ForwardState& s, const WeightSource& w) override;
    void routed_experts(int layer, ForwardState& s, const WeightSource& w, size_t first, size_t last) override;
    void head(ForwardState& s, const WeightSource& w) override;
    void gather_logits(ForwardState& s) override;

private:
    void add_pending_block(ForwardState& s) const;
    void dense_mlp(const std::string& prefix, const float* h, int64_t n_tokens, const WeightSource& w, float* out);
    // A weight part as float in *out (FP8: times the block scales of weight_scale_inv; BF16: widened).
    const float* dequantize(const std::string& name, const WeightView& v, const WeightSource& w,
                            std::vector<float>* out) const;
    void linear(const std::string& name, const float* x, int64_t n_tokens, const WeightSource& w, float* y);
    void reduce_sum(float* buf, size_t count);  // all-reduce over ranks, identical on every rank

    ModelConfig config_;
    WorldConfig world_;
    Communicator* comm_;
    int64_t max_seq_len_;
    cpu::RopeTable rope_;
    cpu::GateParams gate_;
    float softmax_scale_;
    std::vector<float> w_scratch_;  // dequantized weights
};

}  // namespace ecf8
