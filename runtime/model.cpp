// Model: DeepSeek-V3 (inference/model.py Transformer.forward) for one tensor-parallel rank, written once
// against the backend's op table (runtime/ops.h).
#include "runtime/model.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "common/error.h"
#include "kernels/cpu/rope.h"

namespace ecf8 {

std::string layer_prefix(int layer) { return "model.layers." + std::to_string(layer) + "."; }

const uint16_t* bf16_of(const WeightView& v, const std::string& name) {
    ECF8_CHECK(v.dtype == DType::BF16, "tensor " << name << " is " << dtype_name(v.dtype) << ", expected BF16");
    return reinterpret_cast<const uint16_t*>(v.data);
}

ForwardState plan_forward_step(const ModelConfig& c, int64_t max_seq_len,
                               const std::vector<std::vector<int32_t>>& tokens, const std::vector<KvCache*>& caches,
                               bool all_positions) {
    ECF8_CHECK(tokens.size() == caches.size() && !tokens.empty(),
               "forward: " << tokens.size() << " token lists for " << caches.size() << " caches");
    ForwardState s;
    s.caches = caches;
    s.seq_begin.push_back(0);
    for (size_t q = 0; q < tokens.size(); ++q) {
        ECF8_CHECK(!tokens[q].empty(), "forward: sequence " << q << " has no new tokens");
        ECF8_CHECK(caches[q]->length + static_cast<int64_t>(tokens[q].size()) <= max_seq_len,
                   "sequence " << q << " would reach " << caches[q]->length + tokens[q].size()
                               << " tokens, beyond max_model_len " << max_seq_len);
        for (size_t i = 0; i < tokens[q].size(); ++i) {
            ECF8_CHECK(tokens[q][i] >= 0 && tokens[q][i] < c.vocab_size,
                       "token id " << tokens[q][i] << " is outside the vocabulary [0, " << c.vocab_size << ")");
            s.tokens.push_back(tokens[q][i]);
            s.positions.push_back(caches[q]->length + static_cast<int64_t>(i));
        }
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

// The step's activations and scratch in backend memory. prepare() sizes them on the host, before the step's
// work is enqueued (a work item must not allocate); they grow to the largest step seen and stay.
struct Model::Workspace {
    Buffer tokens, out_rows, positions;                           // step inputs
    Buffer x, h, block;                                           // [T, hidden]
    Buffer qa, q, kv, attn, mla_scratch, wkv_b;                   // attention
    Buffer gate, up, route_logits, route_weights, route_experts;  // FFN and routing
    Buffer pick_offsets, pick_rows, pick_scales;                  // moe_dispatch: picks by local expert
    Buffer expert_x, expert_y;                                    // routed experts' rows
    Buffer last, local_logits, gathered;                          // head
    // Pinned host memory: the step's inputs on their way up and its logits on their way down, so neither
    // copy stops the host (the step's one wait, for the logits, covers both).
    Buffer host_inputs, host_logits;
};

namespace {

// Grows b to at least `count` elements of T (freeing first, so the peak is the new size only).
template <class T>
T* ensure(Backend& backend, Buffer& b, int64_t count, const char* tag, MemoryKind kind = MemoryKind::Device) {
    const size_t bytes = static_cast<size_t>(std::max<int64_t>(count, 1)) * sizeof(T);
    if (b.size() < bytes) {
        b.reset();
        b = backend.buffer(bytes, kind, tag);
    }
    return b.as<T>();
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// The widest FFN part one rank multiplies: the dense MLP's or the shared experts' (split by tp), or a routed
// expert's (at most whole). Sizes the gate/up activations and, times hidden, the linear's scratch.
int64_t max_local_intermediate(const ModelConfig& c, const WorldConfig& w) {
    return std::max({ceil_div(c.intermediate_size, w.tp_size),
                     ceil_div(c.moe_intermediate_size * std::max<int64_t>(c.n_shared_experts, 1), w.tp_size),
                     c.moe_intermediate_size});
}

// Elements of the largest weight matrix one rank multiplies by (its parts of lm_head, the attention
// projections, the MLPs, the router), for the linear's dequantization scratch.
int64_t max_linear_weight_elems(const ModelConfig& c, const WorldConfig& w) {
    const int64_t h = c.hidden_size, heads = ceil_div(c.num_attention_heads, w.tp_size);
    return std::max({ceil_div(c.vocab_size, w.tp_size) * h, c.q_lora_rank * h, heads * c.qk_head_dim() * c.q_lora_rank,
                     (c.kv_lora_rank + c.qk_rope_head_dim) * h, h * heads * c.v_head_dim,
                     max_local_intermediate(c, w) * h, c.n_routed_experts * h});
}

}  // namespace

Model::Model(const ModelConfig& config, const WorldConfig& world, Communicator* comm, int64_t max_seq_len,
             Backend& backend)
    : config_(config),
      world_(world),
      comm_(comm),
      max_seq_len_(max_seq_len),
      backend_(backend),
      ops_(backend.ops()),
      gate_(cpu::gate_params(config)),
      softmax_scale_(static_cast<float>(cpu::attention_softmax_scale(config))),
      compute_(&backend.create_stream("model")),  // a direct forward() runs everything in order on it
      comm_stream_(compute_),
      ws_(std::make_unique<Workspace>()) {
    world_.validate();
    ECF8_CHECK(comm_ != nullptr || world_.world_size == 1,
               "a world of " << world_.world_size << " ranks needs a communicator");
    ECF8_CHECK(max_seq_len_ >= 1, "max_seq_len must be >= 1, got " << max_seq_len_);
    ECF8_CHECK(config_.q_lora_rank > 0,
               config_.source << ": q_lora_rank 0 (q_proj) is not supported by the runtime yet");
    if (config_.n_routed_experts > 0) {
        const ExpertRange mine = world_.experts_for_rank(static_cast<int>(config_.n_routed_experts));
        first_expert_ = mine.begin;
        local_experts_ = mine.end - mine.begin;
    }
    const cpu::RopeTable table = cpu::make_rope_table(config_, max_seq_len_);
    const size_t table_bytes = table.cos.size() * sizeof(float);
    rope_memory_ = backend_.buffer(2 * table_bytes, MemoryKind::Device, "rope_table");
    ops_.to_device(rope_memory_.data(), table.cos.data(), table_bytes, *compute_);
    ops_.to_device(rope_memory_.as<uint8_t>() + table_bytes, table.sin.data(), table_bytes, *compute_);
    backend_.synchronize(*compute_);
    rope_ = {rope_memory_.as<float>(), rope_memory_.as<float>() + table.cos.size(), max_seq_len_, table.rope_dim};
    // wkv_b of the local heads, dequantized once per layer: its size is fixed by the config.
    const int64_t heads = config_.num_attention_heads / world_.tp_size;
    ops_.reserve_linear_scratch(max_linear_weight_elems(config_, world_));
    ensure<float>(backend_, ws_->wkv_b, heads * (config_.qk_nope_head_dim + config_.v_head_dim) * config_.kv_lora_rank,
                  "dequant_scratch");
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

KvCache Model::new_cache() {
    const ModelConfig& c = config_;
    const int64_t layers = c.num_hidden_layers, len = max_seq_len_;
    const int64_t per_layer = len * (c.kv_lora_rank + c.qk_rope_head_dim);
    KvCache cache;
    cache.memory = backend_.buffer(layers * per_layer * sizeof(float), MemoryKind::Device, "kv_cache");
    ops_.fill_zero(cache.memory.data(), cache.memory.size(), *compute_);
    backend_.synchronize(*compute_);
    for (int64_t l = 0; l < layers; ++l) {
        float* base = cache.memory.as<float>() + l * per_layer;
        cache.kv.push_back(base);
        cache.pe.push_back(base + len * c.kv_lora_rank);
    }
    return cache;
}

ForwardState Model::prepare(const std::vector<std::vector<int32_t>>& tokens, const std::vector<KvCache*>& caches,
                            bool all_positions) {
    const ModelConfig& c = config_;
    for (const KvCache* cache : caches)
        ECF8_CHECK(cache != nullptr && static_cast<int64_t>(cache->kv.size()) == c.num_hidden_layers,
                   "forward: a cache was not made by Model::new_cache");
    ForwardState s = plan_forward_step(c, max_seq_len_, tokens, caches, all_positions);
    const int64_t T = s.n_tokens, R = static_cast<int64_t>(s.out_rows.size()), dim = c.hidden_size;
    const int64_t heads = c.num_attention_heads / world_.tp_size, qk = c.qk_head_dim();
    const int64_t inter = max_local_intermediate(c, world_);
    const int64_t k = gate_.topk, part = c.vocab_size / world_.tp_size;
    const cpu::MlaDims dims{heads, c.qk_nope_head_dim, c.qk_rope_head_dim, c.v_head_dim, c.kv_lora_rank};
    int64_t mla = 0;
    for (size_t q = 0; q < caches.size(); ++q) {
        const int64_t t0 = s.seq_begin[q], len = s.seq_begin[q + 1] - t0;
        mla = std::max(mla, ops_.mla_scratch_floats(dims, len, s.positions[t0]));
    }
    Workspace& w = *ws_;
    const char* tag = "activations";
    ensure<int32_t>(backend_, w.tokens, T, tag);
    ensure<int32_t>(backend_, w.out_rows, R, tag);
    ensure<int64_t>(backend_, w.positions, T, tag);
    for (Buffer* b : {&w.x, &w.h, &w.block, &w.expert_x, &w.expert_y}) ensure<float>(backend_, *b, T * dim, tag);
    ensure<float>(backend_, w.qa, T * c.q_lora_rank, tag);
    ensure<float>(backend_, w.q, T * heads * qk, tag);
    ensure<float>(backend_, w.kv, T * (c.kv_lora_rank + c.qk_rope_head_dim), tag);
    ensure<float>(backend_, w.attn, T * heads * c.v_head_dim, tag);
    ensure<float>(backend_, w.mla_scratch, mla, tag);
    ensure<float>(backend_, w.gate, T * inter, tag);
    ensure<float>(backend_, w.up, T * inter, tag);
    ensure<float>(backend_, w.route_logits, T * c.n_routed_experts, tag);
    ensure<float>(backend_, w.route_weights, T * k, tag);
    ensure<int32_t>(backend_, w.route_experts, T * k, tag);
    ensure<int32_t>(backend_, w.pick_offsets, local_experts_ + 1, tag);
    ensure<int32_t>(backend_, w.pick_rows, T * k, tag);
    ensure<float>(backend_, w.pick_scales, T * k, tag);
    ensure<float>(backend_, w.last, R * dim, tag);
    ensure<float>(backend_, w.local_logits, R * part, tag);
    ensure<float>(backend_, w.gathered, R * part * world_.world_size, tag);
    ensure<float>(backend_, w.host_logits, R * part * world_.world_size, tag, MemoryKind::PinnedHost);
    s.vocab_part = part;

    // The step's inputs go up once, in compute-stream order, from pinned memory that the previous step's
    // wait has freed: positions, tokens, then the rows whose logits are returned.
    int64_t* inputs = ensure<int64_t>(backend_, w.host_inputs, 2 * T + R, tag, MemoryKind::PinnedHost);
    std::copy(s.positions.begin(), s.positions.end(), inputs);
    int32_t* tokens32 = reinterpret_cast<int32_t*>(inputs + T);
    std::copy(s.tokens.begin(), s.tokens.end(), tokens32);
    std::copy(s.out_rows.begin(), s.out_rows.end(), tokens32 + T);
    ops_.copy(w.positions.data(), inputs, T * sizeof(int64_t), *compute_);
    ops_.copy(w.tokens.data(), tokens32, T * sizeof(int32_t), *compute_);
    ops_.copy(w.out_rows.data(), tokens32 + T, R * sizeof(int32_t), *compute_);
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
    float* x = ws_->x.as<float>();
    ops_.add(x, ws_->block.as<float>(), s.n_tokens * config_.hidden_size, x, *compute_);
    s.block_pending = false;
}

void Model::embed(ForwardState& s, const WeightSource& w) {
    // Vocab-parallel embedding: each rank fills its rows, the reduction completes them.
    const std::string name = "model.embed_tokens.weight";
    const WeightView emb = w.get(name);
    ops_.embedding(ws_->tokens.as<int32_t>(), s.n_tokens, bf16_of(emb, name), emb.begin, emb.begin + emb.shape[0],
                   config_.hidden_size, ws_->x.as<float>(), *compute_);
}

void Model::reduce_embedding(ForwardState& s) {
    if (world_.world_size == 1) return;
    ops_.all_reduce_sum(*comm_, ws_->x.as<float>(), s.n_tokens * config_.hidden_size, reduce_stream());
}

void Model::reduce_block(ForwardState& s) {
    if (world_.world_size > 1)
        ops_.all_reduce_sum(*comm_, ws_->block.as<float>(), s.n_tokens * config_.hidden_size, reduce_stream());
    s.block_pending = true;
}

// The new tokens' latents (normed) and rope keys into each sequence's cache.
void Model::write_kv_cache(int layer, const ForwardState& s, const float* kv, const uint16_t* kv_norm) {
    const int64_t lora = config_.kv_lora_rank, rope = config_.qk_rope_head_dim;
    const float eps = static_cast<float>(config_.rms_norm_eps);
    for (size_t q = 0; q < s.caches.size(); ++q) {
        const KvCache& cache = *s.caches[q];
        const int64_t t0 = s.seq_begin[q], len = s.seq_begin[q + 1] - t0, p0 = s.positions[t0];
        // A sequence's new rows are consecutive positions: one normed block and one strided copy.
        ops_.rmsnorm(kv + t0 * (lora + rope), lora + rope, kv_norm, len, lora, eps, cache.kv[layer] + p0 * lora, lora,
                     *compute_);
        ops_.copy_rows(kv + t0 * (lora + rope) + lora, lora + rope, len, rope, cache.pe[layer] + p0 * rope, rope,
                       *compute_);
    }
}

void Model::attention(int layer, ForwardState& s, const WeightSource& w) {
    const ModelConfig& c = config_;
    Workspace& ws = *ws_;
    const std::string p = layer_prefix(layer) + "self_attn.";
    const int64_t n_tokens = s.n_tokens, dim = c.hidden_size;
    const int64_t heads = c.num_attention_heads / world_.tp_size;
    const int64_t qk = c.qk_head_dim(), lora = c.kv_lora_rank, rope = c.qk_rope_head_dim;
    const float eps = static_cast<float>(c.rms_norm_eps);
    add_pending_block(s);
    const std::string norm = layer_prefix(layer) + "input_layernorm.weight";
    float *x = ws.x.as<float>(), *h = ws.h.as<float>();
    ops_.rmsnorm(x, dim, bf16_of(w.get(norm), norm), n_tokens, dim, eps, h, dim, *compute_);

    // q = wq_b(q_norm(wq_a(x))), the local heads' rows.
    float *qa = ws.qa.as<float>(), *q = ws.q.as<float>();
    linear(p + "q_a_proj.weight", h, n_tokens, w, qa);
    const std::string q_norm = p + "q_a_layernorm.weight";
    ops_.rmsnorm(qa, c.q_lora_rank, bf16_of(w.get(q_norm), q_norm), n_tokens, c.q_lora_rank, eps, qa, c.q_lora_rank,
                 *compute_);
    linear(p + "q_b_proj.weight", qa, n_tokens, w, q);
    const int64_t* positions = ws.positions.as<int64_t>();
    ops_.rope(q + c.qk_nope_head_dim, n_tokens, heads * qk, heads, qk, positions, rope_, *compute_);

    // kv = wkv_a(x): the latent (normed) and the shared rope key, written into each sequence's cache.
    float* kv = ws.kv.as<float>();
    linear(p + "kv_a_proj_with_mqa.weight", h, n_tokens, w, kv);
    ops_.rope(kv + lora, n_tokens, lora + rope, 1, rope, positions, rope_, *compute_);
    const std::string kv_norm = p + "kv_a_layernorm.weight";
    write_kv_cache(layer, s, kv, bf16_of(w.get(kv_norm), kv_norm));

    // The local heads' wkv_b, dequantized once for all sequences.
    float* wkv_b = ws.wkv_b.as<float>();
    ops_.dequantize(linear_weight(p + "kv_b_proj.weight", w), wkv_b, *compute_);
    const cpu::MlaDims dims{heads, c.qk_nope_head_dim, rope, c.v_head_dim, lora};
    float* attn = ws.attn.as<float>();
    for (size_t i = 0; i < s.caches.size(); ++i) {
        const int64_t t0 = s.seq_begin[i], len = s.seq_begin[i + 1] - t0;
        ops_.mla_attention(q + t0 * heads * qk, s.caches[i]->kv[layer], s.caches[i]->pe[layer], wkv_b, dims, len,
                           s.positions[t0], softmax_scale_, ws.mla_scratch.as<float>(),
                           attn + t0 * heads * c.v_head_dim, *compute_);
    }
    linear(p + "o_proj.weight", attn, n_tokens, w, ws.block.as<float>());  // a partial sum over the local heads
}

// The gate/up activations of n_tokens rows of an MLP part `inter` wide (tensors prefix + "gate_proj...") fit
// the workspace.
void Model::check_ffn_room(const std::string& prefix, int64_t inter, int64_t n_tokens) const {
    ECF8_CHECK(static_cast<size_t>(n_tokens * inter) * sizeof(float) <= ws_->gate.size(),
               "tensor " << prefix << "gate_proj.weight: " << inter << " rows exceed the planned workspace");
}

void Model::dense_mlp(const std::string& prefix, const float* x, int64_t n_tokens, const WeightSource& w, float* out) {
    const LinearWeight gate = linear_weight(prefix + "gate_proj.weight", w);  // this rank's part
    const int64_t inter = gate.rows;
    check_ffn_room(prefix, inter, n_tokens);
    float *g = ws_->gate.as<float>(), *u = ws_->up.as<float>();
    ops_.linear(gate, x, n_tokens, g, *compute_);
    linear(prefix + "up_proj.weight", x, n_tokens, w, u);
    ops_.silu_mul(g, u, n_tokens * inter, g, *compute_);
    linear(prefix + "down_proj.weight", g, n_tokens, w, out);
}

void Model::ffn_norm(int layer, ForwardState& s, const WeightSource& w) {
    const ModelConfig& c = config_;
    Workspace& ws = *ws_;
    add_pending_block(s);
    const std::string norm = layer_prefix(layer) + "post_attention_layernorm.weight";
    ops_.rmsnorm(ws.x.as<float>(), c.hidden_size, bf16_of(w.get(norm), norm), s.n_tokens, c.hidden_size,
                 static_cast<float>(c.rms_norm_eps), ws.h.as<float>(), c.hidden_size, *compute_);
    if (!c.is_moe_layer(layer)) return;

    // Routing: every rank computes it from identical activations, so all agree. The picks stay where they
    // are: grouped by this rank's experts, they size the experts' decode and GEMMs on the device.
    const std::string p = layer_prefix(layer) + "mlp.";
    const int64_t n_tokens = s.n_tokens, k = gate_.topk;
    float* logits = ws.route_logits.as<float>();
    linear(p + "gate.weight", ws.h.as<float>(), n_tokens, w, logits);
    const float* bias = nullptr;
    if (c.topk_method == "noaux_tc")
        bias = reinterpret_cast<const float*>(w.get(p + "gate.e_score_correction_bias").data);
    ops_.moe_route(logits, bias, n_tokens, gate_, ws.route_weights.as<float>(), ws.route_experts.as<int32_t>(),
                   *compute_);
    ops_.moe_dispatch(ws.route_experts.as<int32_t>(), ws.route_weights.as<float>(), n_tokens, k, first_expert_,
                      local_experts_, ws.pick_offsets.as<int32_t>(), ws.pick_rows.as<int32_t>(),
                      ws.pick_scales.as<float>(), *compute_);
}

const int32_t* Model::pick_offsets() const { return ws_->pick_offsets.as<int32_t>(); }

void Model::ffn(int layer, ForwardState& s, const WeightSource& w) {
    const ModelConfig& c = config_;
    const std::string p = layer_prefix(layer) + "mlp.";
    float *h = ws_->h.as<float>(), *block = ws_->block.as<float>();
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
    Workspace& ws = *ws_;
    const std::string p = layer_prefix(layer) + "mlp.experts.";
    std::vector<ExpertWeights> experts;
    for (int i = first; i < last; ++i) {
        const std::string e = p + std::to_string(first_expert_ + i) + ".";
        experts.push_back({linear_weight(e + "gate_proj.weight", w), linear_weight(e + "up_proj.weight", w),
                           linear_weight(e + "down_proj.weight", w)});
        check_ffn_room(e, experts.back().gate.rows, s.n_tokens);
    }
    // A token picks an expert at most once, so the step's token count bounds every expert's picks.
    const ExpertScratch scratch{ws.expert_x.as<float>(), ws.gate.as<float>(), ws.up.as<float>(),
                                ws.expert_y.as<float>(), s.n_tokens};
    ops_.routed_experts_mlp(experts, ws.h.as<float>(), config_.hidden_size, ws.pick_offsets.as<int32_t>() + first,
                            ws.pick_rows.as<int32_t>(), ws.pick_scales.as<float>(), scratch, ws.block.as<float>(),
                            *compute_);
}

void Model::head(ForwardState& s, const WeightSource& w) {
    Workspace& ws = *ws_;
    const int64_t dim = config_.hidden_size;
    add_pending_block(s);
    // Final norm and this rank's vocabulary rows of lm_head, for the rows asked for.
    const int64_t R = static_cast<int64_t>(s.out_rows.size());
    float* last = ws.last.as<float>();
    ops_.gather_rows(ws.x.as<float>(), ws.out_rows.as<int32_t>(), R, dim, last, *compute_);
    ops_.rmsnorm(last, dim, bf16_of(w.get("model.norm.weight"), "model.norm.weight"), R, dim,
                 static_cast<float>(config_.rms_norm_eps), last, dim, *compute_);
    const LinearWeight lm_head = linear_weight("lm_head.weight", w);
    ECF8_CHECK(lm_head.rows == s.vocab_part, "tensor lm_head.weight: this rank holds "
                                                 << lm_head.rows
                                                 << " rows, expected vocab_size / tp = " << s.vocab_part);
    ops_.linear(lm_head, last, R, ws.local_logits.as<float>(), *compute_);
}

void Model::gather_logits(ForwardState& s) {
    const int64_t R = static_cast<int64_t>(s.out_rows.size()), part = s.vocab_part;
    const float* source = ws_->local_logits.as<float>();
    if (world_.world_size > 1) {
        ops_.all_gather(*comm_, source, ws_->gathered.as<float>(), R * part, reduce_stream());
        source = ws_->gathered.as<float>();
    }
    ops_.copy(ws_->host_logits.data(), source, R * part * world_.world_size * sizeof(float), reduce_stream());
}

void Model::finish_logits(ForwardState& s) {
    const int n = world_.world_size;
    const int64_t R = static_cast<int64_t>(s.out_rows.size()), part = s.vocab_part;
    const float* gathered = ws_->host_logits.as<float>();
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
