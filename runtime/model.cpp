// Model: DeepSeek-V3 (inference/model.py Transformer.forward) for one tensor-parallel rank, written once
// against the backend's op table (runtime/ops.h).
#include "runtime/model.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "common/error.h"
#include "common/progress.h"
#include "kernels/cpu/rope.h"

namespace ecf8 {

std::string layer_prefix(int layer) { return "model.layers." + std::to_string(layer) + "."; }

const uint16_t* bf16_of(const WeightView& v, const std::string& name) {
    ECF8_CHECK(v.dtype == DType::BF16, "tensor " << name << " is " << dtype_name(v.dtype) << ", expected BF16");
    return reinterpret_cast<const uint16_t*>(v.data);
}

StepLimits ModelOptions::limits() const {
    return {max_step_tokens, max_step_seqs, max_logit_rows > 0 ? max_logit_rows : max_step_seqs, max_seq_len,
            kv.block_tokens};
}

void ModelOptions::validate() const {
    limits().validate();
    kv.validate();
}

ModelOptions ModelOptions::from_plan(const DeployConfig& deploy, const ShardManifest& manifest, WeightFormat format) {
    const KvCacheConfig& kv = deploy.kv_cache;
    ModelOptions o;
    o.max_seq_len = kv.max_model_len;
    o.max_step_tokens = kv.max_num_batched_tokens;
    o.max_step_seqs = kv.max_num_seqs;
    o.kv = {parse_kv_dtype(kv.dtype), kv.block_size, INT64_MAX};
    o.gemm = deploy.compute.gemm;
    for (int r = 0; r < manifest.world_size(); ++r) {
        const RankMemory plan = manifest.rank_plan(deploy, r, format);
        // The shards' tiers are kept: a smaller host budget than they need is an error, not a new layout.
        ECF8_CHECK(double(plan.host_weight_bytes) <= deploy.host_budget_bytes(),
                   deploy.source << ": rank " << r << "'s shard in " << manifest.dir << " holds "
                                 << format_bytes(double(plan.host_weight_bytes))
                                 << " on the pinned host tier, but memory.cpu_offload_gb gives "
                                 << format_bytes(deploy.host_budget_bytes())
                                 << "; raise cpu_offload_gb, or re-shard with ecf8 shard --config " << deploy.source);
        o.kv.blocks = std::min(o.kv.blocks, plan.kv_blocks);
    }
    const int64_t per_seq = o.limits().max_blocks();
    // Raw weights take the tiers the shards were placed in for ECF8, with more bytes: say so.
    const char* what =
        format == WeightFormat::Ecf8
            ? "the memory plan"
            : "the memory plan of the original FP8 bytes (--weights raw or raw-copy), in the tiers the shards "
              "were placed in for ECF8,";
    ECF8_CHECK(o.kv.blocks >= per_seq, deploy.source << ": " << what << " leaves room for " << o.kv.blocks
                                                     << " KV blocks of " << kv.block_size
                                                     << " tokens, but one sequence of max_model_len "
                                                     << kv.max_model_len << " needs " << per_seq
                                                     << " (see ecf8 plan; lower max_model_len or "
                                                        "max_num_batched_tokens, or raise gpu_memory_gb)");
    return o;
}

namespace {

// The checks of one sequence's new tokens; its positions and slots after them.
void plan_sequence(const ModelConfig& c, const StepLimits& limits, KvPool& pool, size_t q,
                   const std::vector<int32_t>& tokens, KvCache& cache, ForwardState& s) {
    ECF8_CHECK(!tokens.empty(), "forward: sequence " << q << " has no new tokens");
    ECF8_CHECK(cache.pool() == &pool, "forward: the cache of sequence " << q << " was not made by Model::new_cache");
    const int64_t end = cache.length + static_cast<int64_t>(tokens.size());
    ECF8_CHECK(end <= limits.max_seq_len,
               "sequence " << q << " would reach " << end << " tokens, beyond max_model_len " << limits.max_seq_len);
    ECF8_CHECK(pool.reserve(cache, end), "the KV cache is full: sequence "
                                             << q << " needs " << pool.blocks_for(end) - cache.blocks().size()
                                             << " more blocks of " << pool.options().block_tokens << " tokens, "
                                             << pool.free_blocks() << " of " << pool.blocks()
                                             << " are free (the scheduler queues requests to avoid this)");
    const std::vector<int32_t>& table = cache.blocks();
    for (size_t i = 0; i < tokens.size(); ++i) {
        ECF8_CHECK(tokens[i] >= 0 && tokens[i] < c.vocab_size,
                   "token id " << tokens[i] << " is outside the vocabulary [0, " << c.vocab_size << ")");
        const int64_t pos = cache.length + static_cast<int64_t>(i);
        s.tokens.push_back(tokens[i]);
        s.positions.push_back(pos);
        s.max_keys = std::max(s.max_keys, pos + 1);
        s.slots.push_back(int64_t{table[pos / limits.block_tokens]} * limits.block_tokens + pos % limits.block_tokens);
        s.token_seq.push_back(static_cast<int32_t>(q));
    }
    std::vector<int32_t> row(static_cast<size_t>(limits.max_blocks()), 0);
    std::copy(table.begin(), table.end(), row.begin());
    s.block_tables.insert(s.block_tables.end(), row.begin(), row.end());
}

}  // namespace

ForwardState plan_forward_step(const ModelConfig& c, const StepLimits& limits, KvPool& pool,
                               const std::vector<std::vector<int32_t>>& tokens, const std::vector<KvCache*>& caches,
                               bool all_positions) {
    ECF8_CHECK(tokens.size() == caches.size() && !tokens.empty(),
               "forward: " << tokens.size() << " token lists for " << caches.size() << " caches");
    ECF8_CHECK(static_cast<int64_t>(tokens.size()) <= limits.seqs,
               "forward: " << tokens.size() << " sequences in one step, beyond the " << limits.seqs
                           << " the workspace was planned for (kv_cache.max_num_seqs)");
    int64_t n_tokens = 0;
    for (const std::vector<int32_t>& t : tokens) n_tokens += static_cast<int64_t>(t.size());
    ECF8_CHECK(n_tokens <= limits.tokens, "forward: " << n_tokens << " tokens in one step, beyond the " << limits.tokens
                                                      << " the workspace was planned for "
                                                         "(kv_cache.max_num_batched_tokens; longer prompts are "
                                                         "prefilled in chunks)");
    const int64_t rows = all_positions ? n_tokens : static_cast<int64_t>(tokens.size());
    ECF8_CHECK(rows <= limits.logit_rows, "forward: " << rows << " rows of logits in one step, beyond the "
                                                      << limits.logit_rows << " the workspace was planned for");
    ForwardState s;
    s.caches = caches;
    s.seq_begin.push_back(0);
    for (size_t q = 0; q < tokens.size(); ++q) {
        ECF8_CHECK(caches[q] != nullptr, "forward: sequence " << q << " has no cache");
        plan_sequence(c, limits, pool, q, tokens[q], *caches[q], s);
        s.seq_begin.push_back(static_cast<int64_t>(s.tokens.size()));
        s.new_tokens.push_back(static_cast<int32_t>(tokens[q].size()));
    }
    s.n_tokens = static_cast<int64_t>(s.tokens.size());
    if (all_positions) {
        for (int64_t t = 0; t < s.n_tokens; ++t) s.out_rows.push_back(t);
    } else {
        for (size_t q = 0; q < caches.size(); ++q) s.out_rows.push_back(s.seq_begin[q + 1] - 1);
    }
    // The positions above fix where this step writes; the caches count the new tokens from now on.
    for (size_t q = 0; q < caches.size(); ++q) caches[q]->length += s.new_tokens[q];
    return s;
}

// The step's buffers (sharding/workspace_plan.h), allocated once at the planned size.
struct Model::Workspace {
    Buffer buf[static_cast<int>(WsBuf::count)];
    Buffer wkv_b;  // tag "dequant_scratch": the local heads' wkv_b, dequantized once per layer
};

template <class T>
T* Model::ws(WsBuf b) const {
    return ws_->buf[static_cast<int>(b)].as<T>();
}

Model::Model(const ModelConfig& config, const WorldConfig& world, Communicator* comm, const ModelOptions& options,
             Backend& backend)
    : config_(config),
      world_(world),
      comm_(comm),
      options_(options),
      backend_(backend),
      ops_(backend.ops()),
      gate_(cpu::gate_params(config)),
      softmax_scale_(static_cast<float>(cpu::attention_softmax_scale(config))),
      compute_(&backend.create_stream("model")),  // a direct forward() runs everything in order on it
      comm_stream_(compute_),
      ws_(std::make_unique<Workspace>()) {
    world_.validate();
    options_.validate();
    ECF8_CHECK(comm_ != nullptr || world_.world_size == 1,
               "a world of " << world_.world_size << " ranks needs a communicator");
    ECF8_CHECK(config_.q_lora_rank > 0,
               config_.source << ": q_lora_rank 0 (q_proj) is not supported by the runtime yet");
    if (config_.n_routed_experts > 0) {
        const ExpertRange mine = world_.experts_for_rank(static_cast<int>(config_.n_routed_experts));
        first_expert_ = mine.begin;
        local_experts_ = mine.end - mine.begin;
    }
    const cpu::RopeTable table = cpu::make_rope_table(config_, options_.max_seq_len);
    const size_t table_bytes = table.cos.size() * sizeof(float);
    rope_memory_ = backend_.buffer(2 * table_bytes, MemoryKind::Device, "rope_table");
    ops_.to_device(rope_memory_.data(), table.cos.data(), table_bytes, *compute_);
    ops_.to_device(rope_memory_.as<uint8_t>() + table_bytes, table.sin.data(), table_bytes, *compute_);
    backend_.synchronize(*compute_);
    rope_ = {rope_memory_.as<float>(), rope_memory_.as<float>() + table.cos.size(), options_.max_seq_len,
             table.rope_dim};
    // The workspace as the plan counts it, allocated once: a step never allocates.
    const WorkspacePlan plan = plan_workspace(config_, world_, options_.limits(), options_.gemm);
    for (int i = 0; i < static_cast<int>(WsBuf::count); ++i) {
        const WsBuf b = static_cast<WsBuf>(i);
        ws_->buf[i] = backend_.buffer(std::max<uint64_t>(plan.of(b), 1),
                                      ws_buf_pinned(b) ? MemoryKind::PinnedHost : MemoryKind::Device, "activations");
    }
    ops_.reserve_linear_scratch(plan.gemm_bytes / sizeof(float));
    ops_.use_fp8_gemm(options_.gemm == GemmMode::Fp8);  // its buffers are in the gemm scratch just sized
    ws_->wkv_b = backend_.buffer(plan.dequant_bytes, MemoryKind::Device, "dequant_scratch");
    pool_ = std::make_unique<KvPool>(config_, options_.kv, backend_);
}

Model::~Model() {
    try {
        backend_.synchronize_all();
    } catch (...) {  // the error was reported by the step that failed
    }
}

void Model::bind_streams(Stream& compute, Stream& comm) {
    compute_ = &compute;
    comm_stream_ = &comm;
}

Stream& Model::reduce_stream() const { return world_.world_size > 1 ? *comm_stream_ : *compute_; }

KvCache Model::new_cache() { return KvCache(pool_.get()); }

ForwardState Model::prepare(const std::vector<std::vector<int32_t>>& tokens, const std::vector<KvCache*>& caches,
                            bool all_positions) {
    ForwardState s = plan_forward_step(config_, options_.limits(), *pool_, tokens, caches, all_positions);
    s.vocab_part = config_.vocab_size / world_.tp_size;
    // The step's inputs go up once, in compute-stream order, from pinned memory that the previous step's wait
    // has freed, in the plan's order: positions, slots, tokens, token_seq, out_rows, block_tables.
    uint8_t* pinned = ws<uint8_t>(WsBuf::host_inputs);
    auto upload = [&](WsBuf b, const auto& v) {
        const size_t bytes = v.size() * sizeof(v[0]);
        std::memcpy(pinned, v.data(), bytes);
        ops_.copy(ws<uint8_t>(b), pinned, bytes, *compute_);
        pinned += bytes;
    };
    upload(WsBuf::positions, s.positions);
    upload(WsBuf::slots, s.slots);
    upload(WsBuf::tokens, s.tokens);
    upload(WsBuf::token_seq, s.token_seq);
    const std::vector<int32_t> out_rows(s.out_rows.begin(), s.out_rows.end());
    upload(WsBuf::out_rows, out_rows);
    upload(WsBuf::block_tables, s.block_tables);
    return s;
}

LinearWeight Model::linear_weight(const std::string& name, const WeightSource& w) const {
    const WeightView v = w.get(name);
    ECF8_CHECK(v.shape.size() == 2, "tensor " << name << " is not a matrix");
    LinearWeight lw;
    lw.data = v.data;
    lw.dtype = v.dtype;
    lw.rows = v.shape[0];
    lw.cols = v.shape[1];
    if (v.dtype == DType::F8_E4M3) {
        const WeightView s = w.get(name + "_scale_inv");
        ECF8_CHECK(s.dtype == DType::F32, "tensor " << name << "_scale_inv is not F32");
        lw.scale_inv = reinterpret_cast<const float*>(s.data);
        lw.block = config_.quantization.weight_block_size.at(0);
    } else {
        ECF8_CHECK(v.dtype == DType::BF16,
                   "tensor " << name << " is " << dtype_name(v.dtype) << ", expected F8_E4M3 or BF16");
    }
    return lw;
}

void Model::linear(const std::string& name, const float* x, int64_t n_tokens, const WeightSource& w, float* y) {
    ops_.linear(linear_weight(name, w), x, n_tokens, y, *compute_);
}

void Model::add_pending_block(ForwardState& s) {
    if (!s.block_pending) return;
    float* x = ws<float>(WsBuf::x);
    ops_.add(x, ws<float>(WsBuf::block), s.n_tokens * config_.hidden_size, x, *compute_);
    s.block_pending = false;
}

void Model::embed(ForwardState& s, const WeightSource& w) {
    // Vocab-parallel embedding: each rank fills its rows, the reduction completes them.
    const std::string name = "model.embed_tokens.weight";
    const WeightView emb = w.get(name);
    ops_.embedding(ws<int32_t>(WsBuf::tokens), s.n_tokens, bf16_of(emb, name), emb.begin, emb.begin + emb.shape[0],
                   config_.hidden_size, ws<float>(WsBuf::x), *compute_);
}

void Model::reduce_embedding(ForwardState& s) {
    if (world_.world_size == 1) return;
    ops_.all_reduce_sum(*comm_, ws<float>(WsBuf::x), s.n_tokens * config_.hidden_size, reduce_stream());
}

void Model::reduce_block(ForwardState& s) {
    if (world_.world_size > 1)
        ops_.all_reduce_sum(*comm_, ws<float>(WsBuf::block), s.n_tokens * config_.hidden_size, reduce_stream());
    s.block_pending = true;
}

void Model::attention(int layer, ForwardState& s, const WeightSource& w) {
    const ModelConfig& c = config_;
    const std::string p = layer_prefix(layer) + "self_attn.";
    const int64_t n_tokens = s.n_tokens, dim = c.hidden_size;
    const int64_t heads = c.num_attention_heads / world_.tp_size;
    const int64_t qk = c.qk_head_dim(), lora = c.kv_lora_rank, rope = c.qk_rope_head_dim;
    const float eps = static_cast<float>(c.rms_norm_eps);
    add_pending_block(s);
    const std::string norm = layer_prefix(layer) + "input_layernorm.weight";
    float *x = ws<float>(WsBuf::x), *h = ws<float>(WsBuf::h);
    ops_.rmsnorm(x, dim, bf16_of(w.get(norm), norm), n_tokens, dim, eps, h, dim, *compute_);

    // q = wq_b(q_norm(wq_a(x))), the local heads' rows.
    float *qa = ws<float>(WsBuf::qa), *q = ws<float>(WsBuf::q);
    linear(p + "q_a_proj.weight", h, n_tokens, w, qa);
    const std::string q_norm = p + "q_a_layernorm.weight";
    ops_.rmsnorm(qa, c.q_lora_rank, bf16_of(w.get(q_norm), q_norm), n_tokens, c.q_lora_rank, eps, qa, c.q_lora_rank,
                 *compute_);
    linear(p + "q_b_proj.weight", qa, n_tokens, w, q);
    const int64_t* positions = ws<int64_t>(WsBuf::positions);
    ops_.rope(q + c.qk_nope_head_dim, n_tokens, heads * qk, heads, qk, positions, rope_, *compute_);

    // kv = wkv_a(x): the latent (normed in place) and the shared rope key, a cache row per token, written to
    // the token's slot of the pool.
    float* kv = ws<float>(WsBuf::kv);
    linear(p + "kv_a_proj_with_mqa.weight", h, n_tokens, w, kv);
    ops_.rope(kv + lora, n_tokens, lora + rope, 1, rope, positions, rope_, *compute_);
    const std::string kv_norm = p + "kv_a_layernorm.weight";
    ops_.rmsnorm(kv, lora + rope, bf16_of(w.get(kv_norm), kv_norm), n_tokens, lora, eps, kv, lora + rope, *compute_);
    const core::KvPages pages = pool_->layer(layer);
    ops_.kv_cache_write(kv, n_tokens, ws<int64_t>(WsBuf::slots), pages, *compute_);

    // The local heads' wkv_b, dequantized once for all sequences.
    float* wkv_b = ws_->wkv_b.as<float>();
    ops_.dequantize(linear_weight(p + "kv_b_proj.weight", w), wkv_b, *compute_);
    const cpu::MlaDims dims{heads, c.qk_nope_head_dim, rope, c.v_head_dim, lora};
    float* attn = ws<float>(WsBuf::attn);
    // One call for every token of the step, decode tokens and prefill chunks of all sequences together.
    const core::RaggedBatch batch{n_tokens,
                                  positions,
                                  ws<int32_t>(WsBuf::token_seq),
                                  ws<int32_t>(WsBuf::block_tables),
                                  static_cast<int64_t>(s.caches.size()),
                                  options_.limits().max_blocks(),
                                  s.max_keys};
    ops_.paged_mla_attention(q, pages, wkv_b, dims, batch, softmax_scale_, ws<float>(WsBuf::mla_scratch), attn,
                             *compute_);
    linear(p + "o_proj.weight", attn, n_tokens, w, ws<float>(WsBuf::block));  // a partial sum over the local heads
}

// The gate/up activations of n_tokens rows of an MLP part `inter` wide (tensors prefix + "gate_proj...") fit
// the workspace.
void Model::check_ffn_room(const std::string& prefix, int64_t inter, int64_t n_tokens) const {
    ECF8_CHECK(static_cast<size_t>(n_tokens * inter) * sizeof(float) <= ws_->buf[static_cast<int>(WsBuf::gate)].size(),
               "tensor " << prefix << "gate_proj.weight: " << inter << " rows exceed the planned workspace");
}

void Model::dense_mlp(const std::string& prefix, const float* x, int64_t n_tokens, const WeightSource& w, float* out) {
    const LinearWeight gate = linear_weight(prefix + "gate_proj.weight", w);  // this rank's part
    const int64_t inter = gate.rows;
    check_ffn_room(prefix, inter, n_tokens);
    float *g = ws<float>(WsBuf::gate), *u = ws<float>(WsBuf::up);
    ops_.linear(gate, x, n_tokens, g, *compute_);
    linear(prefix + "up_proj.weight", x, n_tokens, w, u);
    ops_.silu_mul(g, u, n_tokens * inter, g, *compute_);
    linear(prefix + "down_proj.weight", g, n_tokens, w, out);
}

void Model::ffn_norm(int layer, ForwardState& s, const WeightSource& w) {
    const ModelConfig& c = config_;
    add_pending_block(s);
    const std::string norm = layer_prefix(layer) + "post_attention_layernorm.weight";
    ops_.rmsnorm(ws<float>(WsBuf::x), c.hidden_size, bf16_of(w.get(norm), norm), s.n_tokens, c.hidden_size,
                 static_cast<float>(c.rms_norm_eps), ws<float>(WsBuf::h), c.hidden_size, *compute_);
    if (!c.is_moe_layer(layer)) return;

    // Routing: every rank computes it from identical activations, so all agree. The picks stay where they
    // are: grouped by this rank's experts, they size the experts' decode and GEMMs on the device.
    const std::string p = layer_prefix(layer) + "mlp.";
    const int64_t n_tokens = s.n_tokens, k = gate_.topk;
    float* logits = ws<float>(WsBuf::route_logits);
    linear(p + "gate.weight", ws<float>(WsBuf::h), n_tokens, w, logits);
    const float* bias = nullptr;
    if (c.topk_method == "noaux_tc")
        bias = reinterpret_cast<const float*>(w.get(p + "gate.e_score_correction_bias").data);
    ops_.moe_route(logits, bias, n_tokens, gate_, ws<float>(WsBuf::route_weights), ws<int32_t>(WsBuf::route_experts),
                   *compute_);
    ops_.moe_dispatch(ws<int32_t>(WsBuf::route_experts), ws<float>(WsBuf::route_weights), n_tokens, k, first_expert_,
                      local_experts_, ws<int32_t>(WsBuf::pick_offsets), ws<int32_t>(WsBuf::pick_rows),
                      ws<float>(WsBuf::pick_scales), *compute_);
}

const int32_t* Model::pick_offsets() const { return ws<int32_t>(WsBuf::pick_offsets); }

void Model::ffn(int layer, ForwardState& s, const WeightSource& w) {
    const ModelConfig& c = config_;
    const std::string p = layer_prefix(layer) + "mlp.";
    float *h = ws<float>(WsBuf::h), *block = ws<float>(WsBuf::block);
    if (!c.is_moe_layer(layer)) {
        dense_mlp(p, h, s.n_tokens, w, block);
    } else if (c.n_shared_experts > 0) {  // shared experts: tensor-parallel like a dense MLP
        dense_mlp(p + "shared_experts.", h, s.n_tokens, w, block);
    } else {
        ops_.fill_zero(block, s.n_tokens * c.hidden_size * sizeof(float), *compute_);
    }
}

void Model::routed_experts(int layer, ForwardState& s, const WeightSource& w, int first, int last) {
    ECF8_CHECK(0 <= first && first <= last && last <= local_experts_,
               "routed_experts: local experts [" << first << ", " << last << ") of " << local_experts_);
    if (first == last) return;
    const std::string p = layer_prefix(layer) + "mlp.experts.";
    std::vector<ExpertWeights> experts;
    for (int i = first; i < last; ++i) {
        const std::string e = p + std::to_string(first_expert_ + i) + ".";
        experts.push_back({linear_weight(e + "gate_proj.weight", w), linear_weight(e + "up_proj.weight", w),
                           linear_weight(e + "down_proj.weight", w)});
        check_ffn_room(e, experts.back().gate.rows, options_.limits().tokens);  // CUDA may use every row
    }
    // A token picks an expert at most once, so the step's token count bounds every expert's picks.
    const ExpertScratch scratch{ws<float>(WsBuf::expert_x),
                                ws<float>(WsBuf::gate),
                                ws<float>(WsBuf::up),
                                ws<float>(WsBuf::expert_y),
                                s.n_tokens,
                                options_.limits().tokens,
                                gate_.topk};
    ops_.routed_experts_mlp(experts, ws<float>(WsBuf::h), config_.hidden_size, ws<int32_t>(WsBuf::pick_offsets) + first,
                            ws<int32_t>(WsBuf::pick_rows), ws<float>(WsBuf::pick_scales), scratch,
                            ws<float>(WsBuf::block), *compute_);
}

void Model::head(ForwardState& s, const WeightSource& w) {
    const int64_t dim = config_.hidden_size;
    add_pending_block(s);
    // Final norm and this rank's vocabulary rows of lm_head, for the rows asked for.
    const int64_t R = static_cast<int64_t>(s.out_rows.size());
    float* last = ws<float>(WsBuf::last);
    ops_.gather_rows(ws<float>(WsBuf::x), ws<int32_t>(WsBuf::out_rows), R, dim, last, *compute_);
    ops_.rmsnorm(last, dim, bf16_of(w.get("model.norm.weight"), "model.norm.weight"), R, dim,
                 static_cast<float>(config_.rms_norm_eps), last, dim, *compute_);
    const LinearWeight lm_head = linear_weight("lm_head.weight", w);
    ECF8_CHECK(lm_head.rows == s.vocab_part, "tensor lm_head.weight: this rank holds "
                                                 << lm_head.rows
                                                 << " rows, expected vocab_size / tp = " << s.vocab_part);
    ops_.linear(lm_head, last, R, ws<float>(WsBuf::local_logits), *compute_);
}

void Model::gather_logits(ForwardState& s) {
    const int64_t R = static_cast<int64_t>(s.out_rows.size()), part = s.vocab_part;
    const float* source = ws<float>(WsBuf::local_logits);
    if (world_.world_size > 1) {
        ops_.all_gather(*comm_, source, ws<float>(WsBuf::gathered), R * part, reduce_stream());
        source = ws<float>(WsBuf::gathered);
    }
    if (s.output == StepOutput::GreedyIds) {  // rank r's block holds vocabulary part r of every row
        ops_.argmax_rows(source, R, world_.world_size, part, ws<int32_t>(WsBuf::ids), reduce_stream());
        ops_.copy(ws<int32_t>(WsBuf::host_ids), ws<int32_t>(WsBuf::ids), R * sizeof(int32_t), reduce_stream());
        return;
    }
    ops_.copy(ws<float>(WsBuf::host_logits), source, R * part * world_.world_size * sizeof(float), reduce_stream());
}

void Model::finish_logits(ForwardState& s) {
    const int n = world_.world_size;
    const int64_t R = static_cast<int64_t>(s.out_rows.size()), part = s.vocab_part;
    if (s.output == StepOutput::GreedyIds) {
        const int32_t* ids = ws<int32_t>(WsBuf::host_ids);
        s.ids.assign(ids, ids + R);
        for (int64_t i = 0; i < R; ++i)
            ECF8_CHECK(s.ids[i] >= 0, "the step's logits are not finite: row "
                                          << i << " holds a NaN or an infinity (a NaN or overflow in the activations)");
        return;
    }
    const float* gathered = ws<float>(WsBuf::host_logits);
    // Rank r's block holds its vocabulary part of every row: interleave them into [R, vocab].
    s.logits.resize(R * part * n);
    for (int r = 0; r < n; ++r)
        for (int64_t i = 0; i < R; ++i)
            std::memcpy(&s.logits[i * part * n + r * part], gathered + (r * R + i) * part, part * sizeof(float));
    // A NaN anywhere upstream (a token whose router logits were NaN: the CUDA router marks it and the device
    // dispatch leaves it out) ends here; the step fails instead of sampling from it.
    for (size_t i = 0; i < s.logits.size(); ++i)
        ECF8_CHECK(std::isfinite(s.logits[i]), "the step's logits are not finite: row "
                                                   << i / (part * n) << ", token id " << i % (part * n) << " is "
                                                   << s.logits[i] << " (a NaN or overflow in the activations)");
}

std::vector<float> Model::forward(const std::vector<std::vector<int32_t>>& tokens, const std::vector<KvCache*>& caches,
                                  const WeightSource& w, bool all_positions) {
    ForwardState s = prepare(tokens, caches, all_positions);
    embed(s, w);
    reduce_embedding(s);
    for (int layer = 0; layer < config_.num_hidden_layers; ++layer) {
        attention(layer, s, w);
        reduce_block(s);
        ffn_norm(layer, s, w);
        ffn(layer, s, w);
        if (config_.is_moe_layer(layer)) routed_experts(layer, s, w, 0, local_experts_);
        reduce_block(s);
    }
    head(s, w);
    gather_logits(s);
    backend_.synchronize(reduce_stream());
    finish_logits(s);
    return std::move(s.logits);
}

}  // namespace ecf8
