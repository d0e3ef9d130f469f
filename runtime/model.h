// The DeepSeek-V3 forward pass of one tensor-parallel rank, as deepseek-ai/DeepSeek-V3 inference/model.py
// defines it: vocab-parallel embedding, RMSNorm, MLA attention with a latent KV cache (the reference's
// "absorb" formulation), YaRN RoPE, dense first layers, MoE with a sigmoid group-limited gate and shared
// experts, vocab-parallel lm_head with gathered logits. Written once against the backend's op table
// (runtime/ops.h): the CPU and CUDA backends run the same code.
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
#include "runtime/backend.h"
#include "runtime/communicator.h"
#include "runtime/ops.h"
#include "sharding/model_config.h"
#include "sharding/world_config.h"

namespace ecf8 {

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
};

// The latent KV cache of one sequence on one rank (MLA's cache is not split by tensor parallelism), in the
// backend's memory: one allocation (tag "kv_cache") holding, per layer, [max_seq_len, kv_lora_rank] latents
// (kv_a_layernorm applied) and [max_seq_len, qk_rope_head_dim] rotated rope keys.
struct KvCache {
    Buffer memory;
    std::vector<float*> kv, pe;  // per layer
    int64_t length = 0;          // tokens cached
};

// The host bookkeeping of one forward step. Built by Model::prepare; the stages read and write it. The
// activations live in the model's workspace, in backend memory.
struct ForwardState {
    std::vector<KvCache*> caches;
    std::vector<int64_t> seq_begin;   // sequence s owns token rows [seq_begin[s], seq_begin[s + 1])
    std::vector<int64_t> positions;   // of every token row
    std::vector<int32_t> tokens;      // flattened
    std::vector<int32_t> new_tokens;  // per sequence: how many tokens this step appends
    std::vector<int64_t> out_rows;    // token rows whose logits are returned
    int64_t n_tokens = 0;
    bool block_pending = false;  // the block holds a reduced output not yet added to the residual stream
    int64_t vocab_part = 0;      // this rank's lm_head rows
    std::vector<float> logits;   // gathered [rows, vocab]
};

// "model.layers.<layer>.": the prefix of a decoder layer's tensor names.
std::string layer_prefix(int layer);
// A BF16 weight part's values; throws naming the tensor when it is not BF16.
const uint16_t* bf16_of(const WeightView& v, const std::string& name);

// The host bookkeeping of one step (checks, tokens, positions, rows returned; the caches' lengths advance).
ForwardState plan_forward_step(const ModelConfig& config, int64_t max_seq_len,
                               const std::vector<std::vector<int32_t>>& tokens, const std::vector<KvCache*>& caches,
                               bool all_positions);

// The DeepSeek-V3 forward of one rank, written once against the backend's op table (runtime/ops.h), so the
// same code runs on the CPU and on CUDA. The forward is cut into stages, as the pipeline
// (runtime/pipeline.h) drives them. Stages that compute run on the compute stream; reduce_embedding,
// reduce_block and gather_logits on the comm stream when the world has more than one rank (on the compute
// stream otherwise). On the CPU a stage does the work; on CUDA it enqueues it.
class Model {
public:
    // comm may be null only for a world of one rank. max_seq_len bounds every sequence (the rope table's
    // length); it does not change the numerics (YaRN follows config.json alone, kernels/cpu/rope.h).
    // The backend must outlive the model.
    Model(const ModelConfig& config, const WorldConfig& world, Communicator* comm, int64_t max_seq_len,
          Backend& backend);
    ~Model();
    Model(const Model&) = delete;
    Model& operator=(const Model&) = delete;

    const ModelConfig& config() const { return config_; }
    const WorldConfig& world() const { return world_; }
    int64_t max_seq_len() const { return max_seq_len_; }
    Backend& backend() const { return backend_; }
    KvCache new_cache();

    // Appends tokens[i] to sequence i (caches[i]) and runs them through the model as one batch, stage after
    // stage on the calling thread (the tests' path; Pipeline::forward is the runtime's). Returns logits
    // gathered over the ranks: the last token of each sequence ([B, vocab]), or every token ([sum of
    // lengths, vocab], sequence by sequence) with all_positions.
    std::vector<float> forward(const std::vector<std::vector<int32_t>>& tokens, const std::vector<KvCache*>& caches,
                               const WeightSource& weights, bool all_positions = false);

    // The streams the stages run on (the pipeline's); until bound, the model's own single stream.
    void bind_streams(Stream& compute, Stream& comm);

    // The stages, in forward order. "reduce" stages sum a block over the ranks (collectives only); the
    // others compute. For each layer: attention, reduce_block, ffn_norm (on MoE layers it also routes and
    // groups the picks by this rank's experts, on the device: pick_offsets()), ffn (dense MLP or shared
    // experts), routed_experts (MoE layers: this rank's local experts [first, last), once their weights are
    // decoded; the pipeline runs them in groups), reduce_block. Then head and gather_logits, which enqueues
    // the logits' copy to pinned host memory; the step's one host wait is for it, then finish_logits.
    ForwardState prepare(const std::vector<std::vector<int32_t>>& tokens, const std::vector<KvCache*>& caches,
                         bool all_positions);
    void embed(ForwardState& s, const WeightSource& w);
    void reduce_embedding(ForwardState& s);
    void attention(int layer, ForwardState& s, const WeightSource& w);
    void reduce_block(ForwardState& s);
    void ffn_norm(int layer, ForwardState& s, const WeightSource& w);
    void ffn(int layer, ForwardState& s, const WeightSource& w);
    void routed_experts(int layer, ForwardState& s, const WeightSource& w, int first, int last);
    void head(ForwardState& s, const WeightSource& w);
    void gather_logits(ForwardState& s);
    // On the host, once it has waited for gather_logits' stream: the logits into s.logits ([rows, vocab]).
    void finish_logits(ForwardState& s);

    // This rank's routed experts: local expert i is expert first_expert() + i (none in a dense model).
    int first_expert() const { return first_expert_; }
    int local_experts() const { return local_experts_; }
    // The current MoE layer's picks per local expert, in backend memory, written by ffn_norm: local expert i
    // has pick_offsets()[i + 1] - pick_offsets()[i] picks (moe_dispatch's offsets).
    const int32_t* pick_offsets() const;

private:
    struct Workspace;  // the step's activations and scratch (model.cpp)

    Stream& reduce_stream() const;
    void add_pending_block(ForwardState& s);
    LinearWeight linear_weight(const std::string& name, const WeightSource& w) const;
    void linear(const std::string& name, const float* x, int64_t n_tokens, const WeightSource& w, float* y);
    void check_ffn_room(const std::string& prefix, int64_t inter, int64_t n_tokens) const;
    void dense_mlp(const std::string& prefix, const float* x, int64_t n_tokens, const WeightSource& w, float* out);
    void write_kv_cache(int layer, const ForwardState& s, const float* kv, const uint16_t* kv_norm);

    ModelConfig config_;
    WorldConfig world_;
    Communicator* comm_;
    int64_t max_seq_len_;
    Backend& backend_;
    Ops& ops_;
    cpu::GateParams gate_;
    int first_expert_ = 0, local_experts_ = 0;
    float softmax_scale_;
    Stream *compute_, *comm_stream_;
    Buffer rope_memory_;  // tag "rope_table": cos then sin
    RopeTables rope_;
    std::unique_ptr<Workspace> ws_;
};

}  // namespace ecf8
