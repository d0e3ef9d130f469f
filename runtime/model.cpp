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
namespace {

std::string layer_prefix(int layer) { return "model.layers." + std::to_string(layer) + "."; }

const uint16_t* bf16_of(const WeightView& v, const std::string& name) {
    ECF8_CHECK(v.dtype == DType::BF16, "tensor " << name << " is " << dtype_name(v.dtype) << ", expected BF16");
    return reinterpret_cast<const uint16_t*>(v.data);
}

}  // namespace

Model::Model(const ModelConfig& config, const WorldConfig& world, Communicator* comm, int64_t max_seq_len)
    : config_(config),
      world_(world),
      comm_(comm),
      max_seq_len_(max_seq_len),
      rope_(cpu::make_rope_table(config, max_seq_len)),
      gate_(cpu::gate_params(config)),
      softmax_scale_(static_cast<float>(cpu::attention_softmax_scale(config, max_seq_len))) {
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
    // All-gather, then add in rank order: bit-identical on every rank and from run to run.
    const int n = world_.world_size;
    gather_.resize(count * n);
    comm_->all_gather(buf, gather_.data(), count, ElemType::F32);
    for (size_t i = 0; i < count; ++i) {
        float s = gather_[i];
        for (int r = 1; r < n; ++r) s += gather_[r * count + i];
        buf[i] = s;
    }
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

void Model::attention(int layer, const float* h, int64_t n_tokens, const std::vector<int64_t>& seq_begin,
                      const std::vector<int64_t>& positions, const std::vector<KvCache*>& caches, const WeightSource& w,
                      float* out) {
    const ModelConfig& c = config_;
    const std::string p = layer_prefix(layer) + "self_attn.";
    const int64_t heads = c.num_attention_heads / world_.tp_size;
    const int64_t qk = c.qk_head_dim(), lora = c.kv_lora_rank, rope = c.qk_rope_head_dim;
    const float eps = static_cast<float>(c.rms_norm_eps);

    // q = wq_b(q_norm(wq_a(x))), the local heads' rows.
    std::vector<float> qa(n_tokens * c.q_lora_rank), q(n_tokens * heads * qk);
    linear(p + "q_a_proj.weight", h, n_tokens, w, qa.data());
    cpu::rmsnorm(qa.data(), bf16_of(w.get(p + "q_a_layernorm.weight"), p + "q_a_layernorm.weight"), n_tokens,
                 c.q_lora_rank, eps, qa.data());
    linear(p + "q_b_proj.weight", qa.data(), n_tokens, w, q.data());
    cpu::apply_rope(q.data() + c.qk_nope_head_dim, n_tokens, heads * qk, heads, qk, rope, positions.data(), rope_);

    // kv = wkv_a(x): the latent (normed) and the shared rope key, written into each sequence's cache.
    std::vector<float> kv(n_tokens * (lora + rope));
    linear(p + "kv_a_proj_with_mqa.weight", h, n_tokens, w, kv.data());
    cpu::apply_rope(kv.data() + lora, n_tokens, lora + rope, 1, rope, rope, positions.data(), rope_);
    const uint16_t* kv_norm = bf16_of(w.get(p + "kv_a_layernorm.weight"), p + "kv_a_layernorm.weight");
    for (int64_t t = 0; t < n_tokens; ++t) {
        const auto s = std::upper_bound(seq_begin.begin(), seq_begin.end(), t) - seq_begin.begin() - 1;
        KvCache& cache = *caches[s];
        cpu::rmsnorm(kv.data() + t * (lora + rope), kv_norm, 1, lora, eps,
                     cache.kv[layer].data() + positions[t] * lora);
        std::memcpy(cache.pe[layer].data() + positions[t] * rope, kv.data() + t * (lora + rope) + lora,
                    rope * sizeof(float));
    }

    // The local heads' wkv_b, dequantized once for all sequences.
    const std::string kvb = p + "kv_b_proj.weight";
    std::vector<float> wkv_b;
    dequantize(kvb, w.get(kvb), w, &wkv_b);

    const cpu::MlaDims dims{heads, c.qk_nope_head_dim, rope, c.v_head_dim, lora};
    std::vector<float> attn(n_tokens * heads * c.v_head_dim), scratch;
    for (size_t s = 0; s < caches.size(); ++s) {
        const int64_t t0 = seq_begin[s], len = seq_begin[s + 1] - t0;
        if (len == 0) continue;
        scratch.resize(cpu::mla_attention_scratch_floats(dims, len, positions[t0]));
        cpu::mla_attention(q.data() + t0 * heads * qk, caches[s]->kv[layer].data(), caches[s]->pe[layer].data(),
                           wkv_b.data(), dims, len, positions[t0], softmax_scale_, scratch.data(),
                           attn.data() + t0 * heads * c.v_head_dim);
    }
    linear(p + "o_proj.weight", attn.data(), n_tokens, w, out);  // a partial sum over the local heads
}

void Model::dense_mlp(const std::string& prefix, const float* h, int64_t n_tokens, const WeightSource& w, float* out) {
    const int64_t inter = w.get(prefix + "gate_proj.weight").shape[0];  // this rank's part
    std::vector<float> gate(n_tokens * inter), up(n_tokens * inter);
    linear(prefix + "gate_proj.weight", h, n_tokens, w, gate.data());
    linear(prefix + "up_proj.weight", h, n_tokens, w, up.data());
    cpu::silu_mul(gate.data(), up.data(), n_tokens * inter, gate.data());
    linear(prefix + "down_proj.weight", gate.data(), n_tokens, w, out);
}

void Model::moe(int layer, const float* h, int64_t n_tokens, const WeightSource& w, float* out) {
    const ModelConfig& c = config_;
    const std::string p = layer_prefix(layer) + "mlp.";
    const int64_t dim = c.hidden_size, k = gate_.topk;

    // Routing: every rank computes it from identical activations, so all agree.
    std::vector<float> logits(n_tokens * c.n_routed_experts), weights(n_tokens * k);
    std::vector<int32_t> experts(n_tokens * k);
    linear(p + "gate.weight", h, n_tokens, w, logits.data());
    const float* bias = nullptr;
    if (c.topk_method == "noaux_tc")
        bias = reinterpret_cast<const float*>(w.get(p + "gate.e_score_correction_bias").data);
    cpu::moe_route(logits.data(), bias, n_tokens, gate_, weights.data(), experts.data());

    // Shared experts (tensor-parallel like a dense MLP) give the first partial sum.
    if (c.n_shared_experts > 0) {
        dense_mlp(p + "shared_experts.", h, n_tokens, w, out);
    } else {
        std::fill(out, out + n_tokens * dim, 0.0f);
    }

    // This rank's routed experts (whole, or its slice of each), only those routing picked.
    const ExpertRange mine = world_.experts_for_rank(static_cast<int>(c.n_routed_experts));
    std::vector<std::vector<int64_t>> rows(c.n_routed_experts);  // (token * k + slot) per expert
    for (int64_t i = 0; i < n_tokens * k; ++i)
        if (mine.contains(experts[i])) rows[experts[i]].push_back(i);
    std::vector<int> picked;
    for (int e = mine.begin; e < mine.end; ++e)
        if (!rows[e].empty()) picked.push_back(e);
    w.need_experts(layer, picked);
    std::vector<float> x, y;
    for (int e : picked) {
        const int64_t n = static_cast<int64_t>(rows[e].size());
        x.resize(n * dim);
        for (int64_t r = 0; r < n; ++r) std::memcpy(&x[r * dim], h + (rows[e][r] / k) * dim, dim * sizeof(float));
        y.resize(n * dim);
        dense_mlp(p + "experts." + std::to_string(e) + ".", x.data(), n, w, y.data());
        for (int64_t r = 0; r < n; ++r)
            cpu::add_scaled(&y[r * dim], weights[rows[e][r]], dim, out + (rows[e][r] / k) * dim);
    }
}

std::vector<float> Model::forward(const std::vector<std::vector<int32_t>>& tokens, const std::vector<KvCache*>& caches,
                                  const WeightSource& w, bool all_positions) {
    const ModelConfig& c = config_;
    ECF8_CHECK(tokens.size() == caches.size() && !tokens.empty(),
               "forward: " << tokens.size() << " token lists for " << caches.size() << " caches");
    // Flatten the batch: sequence s owns rows [seq_begin[s], seq_begin[s + 1]).
    std::vector<int64_t> seq_begin{0}, positions;
    std::vector<int32_t> flat;
    for (size_t s = 0; s < tokens.size(); ++s) {
        ECF8_CHECK(!tokens[s].empty(), "forward: sequence " << s << " has no new tokens");
        ECF8_CHECK(caches[s]->length + static_cast<int64_t>(tokens[s].size()) <= max_seq_len_,
                   "sequence " << s << " would reach " << caches[s]->length + tokens[s].size()
                               << " tokens, beyond max_model_len " << max_seq_len_);
        for (size_t i = 0; i < tokens[s].size(); ++i) {
            ECF8_CHECK(tokens[s][i] >= 0 && tokens[s][i] < c.vocab_size,
                       "token id " << tokens[s][i] << " is outside the vocabulary [0, " << c.vocab_size << ")");
            flat.push_back(tokens[s][i]);
            positions.push_back(caches[s]->length + static_cast<int64_t>(i));
        }
        seq_begin.push_back(static_cast<int64_t>(flat.size()));
    }
    const int64_t T = static_cast<int64_t>(flat.size()), dim = c.hidden_size;
    const float eps = static_cast<float>(c.rms_norm_eps);

    // Vocab-parallel embedding: each rank fills its rows, the reduction completes them.
    std::vector<float> x(T * dim), h(T * dim), block(T * dim);
    const WeightView emb = w.get("model.embed_tokens.weight");
    cpu::embedding_bf16(flat.data(), T, bf16_of(emb, "model.embed_tokens.weight"), emb.begin, emb.begin + emb.shape[0],
                        dim, x.data());
    reduce_sum(x.data(), x.size());

    for (int layer = 0; layer < c.num_hidden_layers; ++layer) {
        const std::string p = layer_prefix(layer);
        w.begin_layer(layer);
        cpu::rmsnorm(x.data(), bf16_of(w.get(p + "input_layernorm.weight"), p + "input_layernorm.weight"), T, dim, eps,
                     h.data());
        attention(layer, h.data(), T, seq_begin, positions, caches, w, block.data());
        reduce_sum(block.data(), block.size());
        cpu::add(x.data(), block.data(), T * dim, x.data());
        cpu::rmsnorm(x.data(),
                     bf16_of(w.get(p + "post_attention_layernorm.weight"), p + "post_attention_layernorm.weight"), T,
                     dim, eps, h.data());
        if (c.is_moe_layer(layer))
            moe(layer, h.data(), T, w, block.data());
        else
            dense_mlp(p + "mlp.", h.data(), T, w, block.data());
        reduce_sum(block.data(), block.size());
        cpu::add(x.data(), block.data(), T * dim, x.data());
        w.end_layer(layer);
    }
    for (size_t s = 0; s < caches.size(); ++s) caches[s]->length += static_cast<int64_t>(tokens[s].size());

    // Final norm and the vocab-parallel head over the rows asked for; gathered across ranks.
    std::vector<int64_t> out_rows;
    if (all_positions) {
        for (int64_t t = 0; t < T; ++t) out_rows.push_back(t);
    } else {
        for (size_t s = 0; s < caches.size(); ++s) out_rows.push_back(seq_begin[s + 1] - 1);
    }
    const int64_t R = static_cast<int64_t>(out_rows.size());
    std::vector<float> last(R * dim);
    for (int64_t r = 0; r < R; ++r) std::memcpy(&last[r * dim], &x[out_rows[r] * dim], dim * sizeof(float));
    cpu::rmsnorm(last.data(), bf16_of(w.get("model.norm.weight"), "model.norm.weight"), R, dim, eps, last.data());
    const int64_t part = w.get("lm_head.weight").shape[0];  // vocabulary rows of this rank
    std::vector<float> local(R * part);
    linear("lm_head.weight", last.data(), R, w, local.data());
    const int n = world_.world_size;
    std::vector<float> logits(R * part * n);
    if (n == 1) {
        logits = std::move(local);
    } else {
        std::vector<float> gathered(R * part * n);
        comm_->all_gather(local.data(), gathered.data(), R * part, ElemType::F32);
        for (int r = 0; r < n; ++r)
            for (int64_t i = 0; i < R; ++i)
                std::memcpy(&logits[i * part * n + r * part], &gathered[(r * R + i) * part], part * sizeof(float));
    }
    return logits;
}

}  // namespace ecf8
