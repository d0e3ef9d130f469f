// Model::forward: DeepSeek-V3 (inference/model.py Transformer.forward) for one tensor-parallel rank.
#include "runtime/model.h"

#include <algorithm>
#include <cstring>

#include "common/error.h"
#include "kernels/cpu/embedding.h"
#include "kernels/cpu/linear.h"
#include "kernels/cpu/mla_attention.h"
#include "kernels/cpu/mlp.h"
#include "kernels/cpu/rmsnorm.h"

namespace ecf8 {
std::string layer_prefix(int layer) { return "model.layers." + std::to_string(layer) + "."; }

const uint16_t* bf16_of(const WeightView& v, const std::string& name) {
    ECF8_CHECK(v.dtype == DType::BF16, "tensor " << name << " is " << dtype_name(v.dtype) << ", expected BF16");
    return reinterpret_cast<const uint16_t*>(v.data);
}

Model::Model(const ModelConfig& config, const WorldConfig& world, Communicator* comm, int64_t max_seq_len)
    : config_(config),
      world_(world),
      comm_(comm),
      max_seq_len_(max_seq_len),
      rope_(cpu::make_rope_table(config, max_seq_len)),
      gate_(cpu::gate_params(config)),
      softmax_scale_(static_cast<float>(cpu::attention_softmax_scale(config))) {
    world_.validate();
    ECF8_CHECK(comm_ != nullptr || world_.world_size == 1,
               "a world of " << world_.world_size << " ranks needs a communicator");
    ECF8_CHECK(max_seq_len_ >= 1, "max_seq_len must be >= 1, got " << max_seq_len_);
    ECF8_CHECK(config_.q_lora_rank > 0,
               config_.source << ": q_lora_rank 0 (q_proj) is not supported by the runtime yet");
    cpu::cpu_blas_ensure_init();
}

KvCache Model::new_cache() const {
    KvCache c;
    c.kv.assign(config_.num_hidden_layers, std::vector<float>(max_seq_len_ * config_.kv_lora_rank, 0.0f));
    c.pe.assign(config_.num_hidden_layers, std::vector<float>(max_seq_len_ * config_.qk_rope_head_dim, 0.0f));
    return c;
}

void Model::reduce_sum(float* buf, size_t count) {
    if (world_.world_size == 1) return;
    // One all-reduce: every rank receives the same sum (Communicator's contract), so all ranks route alike.
    comm_->all_reduce_sum(buf, count, ElemType::F32);
}

const float* Model::dequantize(const std::string& name, const WeightView& v, const WeightSource& w,
                               std::vector<float>* out) const {
    ECF8_CHECK(v.shape.size() == 2, "tensor " << name << " is not a matrix");
    const int64_t rows = v.shape[0], cols = v.shape[1];
    if (static_cast<int64_t>(out->size()) < rows * cols) out->resize(rows * cols);
    if (v.dtype == DType::F8_E4M3) {
        const WeightView s = w.get(name + "_scale_inv");
        ECF8_CHECK(s.dtype == DType::F32, "tensor " << name << "_scale_inv is not F32");
        cpu::dequantize_fp8_block_to_float(v.data, reinterpret_cast<const float*>(s.data), rows, cols, out->data(),
                                           config_.quantization.weight_block_size.at(0));
    } else {
        cpu::bf16_to_float_array(bf16_of(v, name), rows * cols, out->data());
    }
    return out->data();
}

void Model::linear(const std::string& name, const float* x, int64_t n_tokens, const WeightSource& w, float* y) {
    const WeightView v = w.get(name);
    const float* weight = dequantize(name, v, w, &w_scratch_);
    cpu::linear_f32(x, weight, y, n_tokens, v.shape[1], v.shape[0]);
}

void Model::add_pending_block(ForwardState& s) const {
    if (!s.block_pending) return;
    cpu::add(s.x.data(), s.block.data(), s.x.size(), s.x.data());
    s.block_pending = false;
}

void assign_routed_experts(const ModelConfig& config, const WorldConfig& world, const int32_t* route_experts,
                           int64_t n_tokens, int64_t topk, std::vector<std::vector<int64_t>>* expert_rows,
                           std::vector<int>* picked) {
    const ExpertRange mine = world.experts_for_rank(static_cast<int>(config.n_routed_experts));
    expert_rows->assign(config.n_routed_experts, {});
    picked->clear();
    for (int64_t i = 0; i < n_tokens * topk; ++i)
        if (mine.contains(route_experts[i])) (*expert_rows)[route_experts[i]].push_back(i);
    for (int e = mine.begin; e < mine.end; ++e)
        if (!(*expert_rows)[e].empty()) picked->push_back(e);
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

ForwardState Model::prepare(const std::vector<std::vector<int32_t>>& tokens, const std::vector<KvCache*>& caches,
                            bool all_positions) {
    ForwardState s = plan_forward_step(config_, max_seq_len_, tokens, caches, all_positions);
    const size_t act = static_cast<size_t>(s.n_tokens * config_.hidden_size);
    s.x.assign(act, 0.0f);
    s.h.assign(act, 0.0f);
    s.block.assign(act, 0.0f);
    return s;
}

void Model::embed(ForwardState& s, const WeightSource& w) {
    // Vocab-parallel embedding: each rank fills its rows, the reduction completes them.
    const WeightView emb = w.get("model.embed_tokens.weight");
    cpu::embedding_bf16(s.tokens.data(), s.n_tokens, bf16_of(emb, "model.embed_tokens.weight"), emb.begin,
                        emb.begin + emb.shape[0], config_.hidden_size, s.x.data());
}

void Model::reduce_block(ForwardState& s) {
    reduce_sum(s.block.data(), s.block.size());
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
    cpu::rmsnorm(s.x.data(), bf16_of(w.get(norm), norm), n_tokens, dim, eps, s.h.data());
    const float* h = s.h.data();

    // q = wq_b(q_norm(wq_a(x))), the local heads' rows.
    std::vector<float> qa(n_tokens * c.q_lora_rank), q(n_tokens * heads * qk);
    linear(p + "q_a_proj.weight", h, n_tokens, w, qa.data());
    cpu::rmsnorm(qa.data(), bf16_of(w.get(p + "q_a_layernorm.weight"), p + "q_a_layernorm.weight"), n_tokens,
                 c.q_lora_rank, eps, qa.data());
    linear(p + "q_b_proj.weight", qa.data(), n_tokens, w, q.data());
    cpu::apply_rope(q.data() + c.qk_nope_head_dim, n_tokens, heads * qk, heads, qk, rope, s.positions.data(), rope_);

    // kv = wkv_a(x): the latent (normed) and the shared rope key, written into each sequence's cache.
    std::vector<float> kv(n_tokens * (lora + rope));
    linear(p + "kv_a_proj_with_mqa.weight", h, n_tokens, w, kv.data());
    cpu::apply_rope(kv.data() + lora, n_tokens, lora + rope, 1, rope, rope, s.positions.data(), rope_);
    const uint16_t* kv_norm = bf16_of(w.get(p + "kv_a_layernorm.weight"), p + "kv_a_layernorm.weight");
    for (int64_t t = 0; t < n_tokens; ++t) {
        const auto q_idx = std::upper_bound(s.seq_begin.begin(), s.seq_begin.end(), t) - s.seq_begin.begin() - 1;
        KvCache& cache = *s.caches[q_idx];
        cpu::rmsnorm(kv.data() + t * (lora + rope), kv_norm, 1, lora, eps,
                     cache.kv[layer].data() + s.positions[t] * lora);
        std::memcpy(cache.pe[layer].data() + s.positions[t] * rope, kv.data() + t * (lora + rope) + lora,
                    rope * sizeof(float));
    }

    // The local heads' wkv_b, dequantized once for all sequences.
    const std::string kvb = p + "kv_b_proj.weight";
    std::vector<float> wkv_b;
    dequantize(kvb, w.get(kvb), w, &wkv_b);

    const cpu::MlaDims dims{heads, c.qk_nope_head_dim, rope, c.v_head_dim, lora};
    std::vector<float> attn(n_tokens * heads * c.v_head_dim), scratch;
    for (size_t q_idx = 0; q_idx < s.caches.size(); ++q_idx) {
        const int64_t t0 = s.seq_begin[q_idx], len = s.seq_begin[q_idx + 1] - t0;
        scratch.resize(cpu::mla_attention_scratch_floats(dims, len, s.positions[t0]));
        cpu::mla_attention(q.data() + t0 * heads * qk, s.caches[q_idx]->kv[layer].data(),
                           s.caches[q_idx]->pe[layer].data(), wkv_b.data(), dims, len, s.positions[t0], softmax_scale_,
                           scratch.data(), attn.data() + t0 * heads * c.v_head_dim);
    }
    linear(p + "o_proj.weight", attn.data(), n_tokens, w, s.block.data());  // a partial sum over the local heads
}

void Model::dense_mlp(const std::string& prefix, const float* h, int64_t n_tokens, const WeightSource& w, float* out) {
    const int64_t inter = w.get(prefix + "gate_proj.weight").shape[0];  // this rank's part
    std::vector<float> gate(n_tokens * inter), up(n_tokens * inter);
    linear(prefix + "gate_proj.weight", h, n_tokens, w, gate.data());
    linear(prefix + "up_proj.weight", h, n_tokens, w, up.data());
    cpu::silu_mul(gate.data(), up.data(), n_tokens * inter, gate.data());
    linear(prefix + "down_proj.weight", gate.data(), n_tokens, w, out);
}

void Model::ffn_norm(int layer, ForwardState& s, const WeightSource& w) {
    const ModelConfig& c = config_;
    add_pending_block(s);
    const std::string norm = layer_prefix(layer) + "post_attention_layernorm.weight";
    cpu::rmsnorm(s.x.data(), bf16_of(w.get(norm), norm), s.n_tokens, c.hidden_size, static_cast<float>(c.rms_norm_eps),
                 s.h.data());
    s.picked.clear();
    if (!c.is_moe_layer(layer)) return;

    // Routing: every rank computes it from identical activations, so all agree.
    const std::string p = layer_prefix(layer) + "mlp.";
    const int64_t n_tokens = s.n_tokens, k = gate_.topk;
    std::vector<float> logits(n_tokens * c.n_routed_experts);
    s.route_weights.assign(n_tokens * k, 0.0f);
    s.route_experts.assign(n_tokens * k, 0);
    linear(p + "gate.weight", s.h.data(), n_tokens, w, logits.data());
    const float* bias = nullptr;
    if (c.topk_method == "noaux_tc")
        bias = reinterpret_cast<const float*>(w.get(p + "gate.e_score_correction_bias").data);
    cpu::moe_route(logits.data(), bias, n_tokens, gate_, s.route_weights.data(), s.route_experts.data());

    // This rank's routed experts (whole, or its slice of each) that routing picked.
    assign_routed_experts(c, world_, s.route_experts.data(), n_tokens, k, &s.expert_rows, &s.picked);
}

void Model::ffn(int layer, ForwardState& s, const WeightSource& w) {
    const ModelConfig& c = config_;
    const std::string p = layer_prefix(layer) + "mlp.";
    if (!c.is_moe_layer(layer)) {
        dense_mlp(p, s.h.data(), s.n_tokens, w, s.block.data());
    } else if (c.n_shared_experts > 0) {  // shared experts: tensor-parallel like a dense MLP
        dense_mlp(p + "shared_experts.", s.h.data(), s.n_tokens, w, s.block.data());
    } else {
        std::fill(s.block.begin(), s.block.end(), 0.0f);
    }
}

void Model::routed_experts(int layer, ForwardState& s, const WeightSource& w, size_t first, size_t last) {
    const int64_t dim = config_.hidden_size, k = gate_.topk;
    const std::string p = layer_prefix(layer) + "mlp.experts.";
    std::vector<float> x, y;
    for (size_t i = first; i < last && i < s.picked.size(); ++i) {
        const int e = s.picked[i];
        const std::vector<int64_t>& rows = s.expert_rows[e];
        const int64_t n = static_cast<int64_t>(rows.size());
        x.resize(n * dim);
        for (int64_t r = 0; r < n; ++r) std::memcpy(&x[r * dim], s.h.data() + (rows[r] / k) * dim, dim * sizeof(float));
        y.resize(n * dim);
        dense_mlp(p + std::to_string(e) + ".", x.data(), n, w, y.data());
        for (int64_t r = 0; r < n; ++r)
            cpu::add_scaled(&y[r * dim], s.route_weights[rows[r]], dim, s.block.data() + (rows[r] / k) * dim);
    }
}

void Model::head(ForwardState& s, const WeightSource& w) {
    const int64_t dim = config_.hidden_size;
    add_pending_block(s);
    // Final norm and this rank's vocabulary rows of lm_head, for the rows asked for.
    const int64_t R = static_cast<int64_t>(s.out_rows.size());
    std::vector<float> last(R * dim);
    for (int64_t r = 0; r < R; ++r) std::memcpy(&last[r * dim], &s.x[s.out_rows[r] * dim], dim * sizeof(float));
    cpu::rmsnorm(last.data(), bf16_of(w.get("model.norm.weight"), "model.norm.weight"), R, dim,
                 static_cast<float>(config_.rms_norm_eps), last.data());
    const int64_t part = w.get("lm_head.weight").shape[0];
    s.local_logits.assign(R * part, 0.0f);
    linear("lm_head.weight", last.data(), R, w, s.local_logits.data());
}

void Model::gather_logits(ForwardState& s) {
    const int n = world_.world_size;
    if (n == 1) {
        s.logits = std::move(s.local_logits);
        return;
    }
    const int64_t R = static_cast<int64_t>(s.out_rows.size());
    const int64_t part = static_cast<int64_t>(s.local_logits.size()) / R;
    std::vector<float> gathered(R * part * n);
    comm_->all_gather(s.local_logits.data(), gathered.data(), R * part, ElemType::F32);
    s.logits.assign(R * part * n, 0.0f);
    for (int r = 0; r < n; ++r)
        for (int64_t i = 0; i < R; ++i)
            std::memcpy(&s.logits[i * part * n + r * part], &gathered[(r * R + i) * part], part * sizeof(float));
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
        if (config_.is_moe_layer(layer)) {
            w.need_experts(layer, s.picked);
            routed_experts(layer, s, w, 0, s.picked.size());
        }
        reduce_block(s);
    }
    head(s, w);
    gather_logits(s);
    return std::move(s.logits);
}

}  // namespace ecf8
