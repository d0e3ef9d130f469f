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
#include "runtime/kv_cache.h"
#include "runtime/ops.h"
#include "sharding/model_config.h"
#include "sharding/shard_io.h"
#include "sharding/workspace_plan.h"
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

// The model's limits: a step's size (the workspace is allocated for it once, as the memory plan counts it)
// and the KV pool.
struct ModelOptions {
    int64_t max_seq_len = 0;      // positions per sequence (kv_cache.max_model_len; the rope table's length)
    int64_t max_step_tokens = 0;  // token rows per step (kv_cache.max_num_batched_tokens)
    int64_t max_step_seqs = 0;    // sequences per step (kv_cache.max_num_seqs)
    int64_t max_logit_rows = 0;   // rows of logits a step returns; 0: max_step_seqs (more for all_positions)
    KvPoolOptions kv;
    GemmMode gemm = GemmMode::Fp32;  // compute.gemm: how linears multiply FP8 weights (the plan counts its memory)

    StepLimits limits() const;
    void validate() const;  // throws naming the option
    // From the YAML's kv_cache section, with the KV pool the memory plan leaves on the tightest rank of these
    // shards (every rank runs the same schedule, so every rank's pool has the same blocks). Throws, naming the
    // YAML, when that pool cannot hold one sequence of max_model_len.
    static ModelOptions from_plan(const DeployConfig& deploy, const ShardManifest& manifest, WeightFormat format);
};

// What a step brings back to the host: the gathered logits of its rows, or only each row's greedy token
// (argmax where the logits are: the step's host wait is then for a few bytes per row, not the vocabulary).
enum class StepOutput { Logits, GreedyIds };

struct StepResult {
    std::vector<float> logits;  // StepOutput::Logits: [rows, vocab]
    std::vector<int32_t> ids;   // StepOutput::GreedyIds: [rows]
};

// The host bookkeeping of one forward step. Built by Model::prepare; the stages read and write it. The
// activations live in the model's workspace, in backend memory.
struct ForwardState {
    std::vector<KvCache*> caches;
    std::vector<int64_t> seq_begin;     // sequence s owns token rows [seq_begin[s], seq_begin[s + 1])
    std::vector<int64_t> positions;     // of every token row
    int64_t max_keys = 0;               // the most keys a row attends to: its position + 1
    std::vector<int64_t> slots;         // of every token row: where its latent goes in the KV pool
    std::vector<int32_t> tokens;        // flattened
    std::vector<int32_t> token_seq;     // of every token row: its sequence
    std::vector<int32_t> block_tables;  // [sequences, max_blocks]
    std::vector<int32_t> new_tokens;    // per sequence: how many tokens this step appends
    std::vector<int64_t> out_rows;      // token rows whose logits are returned
    int64_t n_tokens = 0;
    bool block_pending = false;  // the block holds a reduced output not yet added to the residual stream
    int64_t vocab_part = 0;      // this rank's lm_head rows
    StepOutput output = StepOutput::Logits;
    std::vector<float> logits;  // gathered [rows, vocab] (StepOutput::Logits)
    std::vector<int32_t> ids;   // greedy token per row (StepOutput::GreedyIds)
};

// "model.layers.<layer>.": the prefix of a decoder layer's tensor names.
std::string layer_prefix(int layer);
// A BF16 weight part's values; throws naming the tensor when it is not BF16.
const uint16_t* bf16_of(const WeightView& v, const std::string& name);

// The host bookkeeping of one step: checks, tokens, positions, KV blocks (taken from the pool as the
// sequences grow; an exhausted pool is an error naming what is short), block tables, slots and the rows
// returned. The caches' lengths advance.
ForwardState plan_forward_step(const ModelConfig& config, const StepLimits& limits, KvPool& pool,
                               const std::vector<std::vector<int32_t>>& tokens, const std::vector<KvCache*>& caches,
                               bool all_positions);

// The DeepSeek-V3 forward of one rank, written once against the backend's op table (runtime/ops.h), so the
// same code runs on the CPU and on CUDA. The forward is cut into stages, as the pipeline
// (runtime/pipeline.h) drives them. Stages that compute run on the compute stream; reduce_embedding,
// reduce_block and gather_logits on the comm stream when the world has more than one rank (on the compute
// stream otherwise). On the CPU a stage does the work; on CUDA it enqueues it.
class Model {
public:
    // comm may be null only for a world of one rank. options.max_seq_len bounds every sequence (the rope
    // table's length); it does not change the numerics (YaRN follows config.json alone, kernels/cpu/rope.h).
    // The workspace (sharding/workspace_plan.h) and the KV pool are allocated here, once. The backend must
    // outlive the model, and the model its caches.
    Model(const ModelConfig& config, const WorldConfig& world, Communicator* comm, const ModelOptions& options,
          Backend& backend);
    ~Model();
    Model(const Model&) = delete;
    Model& operator=(const Model&) = delete;

    const ModelConfig& config() const { return config_; }
    const WorldConfig& world() const { return world_; }
    int64_t max_seq_len() const { return options_.max_seq_len; }
    const ModelOptions& options() const { return options_; }
    Backend& backend() const { return backend_; }
    KvPool& kv_pool() { return *pool_; }
    // An empty sequence of the pool; it takes blocks as its tokens are run and returns them when it goes.
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
    // the copy to pinned host memory of the logits or, for StepOutput::GreedyIds, of the rows' argmax; the
    // step's one host wait is for it, then finish_logits.
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
    // On the host, once it has waited for gather_logits' stream: the logits into s.logits ([rows, vocab]), or
    // the greedy tokens into s.ids. Any non-finite logit is an error naming the row.
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
    template <class T>
    T* ws(WsBuf b) const;

    ModelConfig config_;
    WorldConfig world_;
    Communicator* comm_;
    ModelOptions options_;
    Backend& backend_;
    Ops& ops_;
    cpu::GateParams gate_;
    int first_expert_ = 0, local_experts_ = 0;
    float softmax_scale_;
    Stream *compute_, *comm_stream_;
    Buffer rope_memory_;  // tag "rope_table": cos then sin
    RopeTables rope_;
    std::unique_ptr<Workspace> ws_;
    std::unique_ptr<KvPool> pool_;
};

}  // namespace ecf8
