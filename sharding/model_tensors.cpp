// Enumerates the DeepSeek-V3 checkpoint tensors and counts parameters from that list.
#include "sharding/model_tensors.h"

#include <set>

#include "common/error.h"

namespace ecf8 {
namespace {

// ---------------------------------------------------------------------------------------------------
// Builder: appends tensors with the config's storage conventions.

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

struct Builder {
    const ModelConfig& cfg;
    std::vector<TensorSpec>& out;

    void add(std::string name, DType dtype, std::vector<int64_t> shape, TensorRole role, int layer = -1,
             int expert = -1) {
        TensorSpec t;
        t.name = std::move(name);
        t.dtype = dtype;
        t.shape = std::move(shape);
        t.role = role;
        t.layer = layer;
        t.expert = expert;
        out.push_back(std::move(t));
    }

    // A linear weight [rows = out, cols = in]: FP8 plus its block scale when quantized, else BF16.
    void linear(const std::string& prefix, int64_t rows, int64_t cols, TensorRole role, int layer, int expert = -1) {
        const std::string w = prefix + ".weight";
        if (!cfg.quantized) {
            add(w, DType::BF16, {rows, cols}, role, layer, expert);
            return;
        }
        add(w, DType::F8_E4M3, {rows, cols}, role, layer, expert);
        const auto& bs = cfg.quantization.weight_block_size;
        add(w + "_scale_inv", DType::F32, {ceil_div(rows, bs[0]), ceil_div(cols, bs[1])}, TensorRole::BlockScale, layer,
            expert);
        out.back().scale_of = w;
    }

    void norm(const std::string& prefix, int64_t dim, int layer) {
        add(prefix + ".weight", DType::BF16, {dim}, TensorRole::Replicated, layer);
    }

    // gate/up column-parallel, down row-parallel (or all RoutedExpert for a routed expert).
    void mlp(const std::string& prefix, int64_t inter, int layer, int expert = -1) {
        const int64_t h = cfg.hidden_size;
        const bool routed = expert >= 0;
        linear(prefix + ".gate_proj", inter, h, routed ? TensorRole::RoutedExpert : TensorRole::ColumnParallel, layer,
               expert);
        linear(prefix + ".up_proj", inter, h, routed ? TensorRole::RoutedExpert : TensorRole::ColumnParallel, layer,
               expert);
        linear(prefix + ".down_proj", h, inter, routed ? TensorRole::RoutedExpert : TensorRole::RowParallel, layer,
               expert);
    }

    void attention(const std::string& p, int layer) {
        const ModelConfig& c = cfg;
        const int64_t h = c.hidden_size, heads = c.num_attention_heads;
        if (c.q_lora_rank > 0) {
            linear(p + "q_a_proj", c.q_lora_rank, h, TensorRole::Replicated, layer);
            norm(p + "q_a_layernorm", c.q_lora_rank, layer);
            linear(p + "q_b_proj", heads * c.qk_head_dim(), c.q_lora_rank, TensorRole::ColumnParallel, layer);
        } else {
            linear(p + "q_proj", heads * c.qk_head_dim(), h, TensorRole::ColumnParallel, layer);
        }
        linear(p + "kv_a_proj_with_mqa", c.kv_lora_rank + c.qk_rope_head_dim, h, TensorRole::Replicated, layer);
        norm(p + "kv_a_layernorm", c.kv_lora_rank, layer);
        linear(p + "kv_b_proj", heads * (c.qk_nope_head_dim + c.v_head_dim), c.kv_lora_rank, TensorRole::ColumnParallel,
               layer);
        linear(p + "o_proj", h, heads * c.v_head_dim, TensorRole::RowParallel, layer);
    }

    void moe(const std::string& p, int layer) {
        const ModelConfig& c = cfg;
        for (int64_t e = 0; e < c.n_routed_experts; ++e) {
            mlp(p + "experts." + std::to_string(e), c.moe_intermediate_size, layer, static_cast<int>(e));
        }
        add(p + "gate.weight", DType::BF16, {c.n_routed_experts, c.hidden_size}, TensorRole::Replicated, layer);
        if (c.topk_method == "noaux_tc") {
            add(p + "gate.e_score_correction_bias", DType::F32, {c.n_routed_experts}, TensorRole::Replicated, layer);
        }
        if (c.n_shared_experts > 0) mlp(p + "shared_experts", c.moe_intermediate_size * c.n_shared_experts, layer);
    }

    void decoder_layer(int layer) {
        const std::string p = "model.layers." + std::to_string(layer) + ".";
        norm(p + "input_layernorm", cfg.hidden_size, layer);
        attention(p + "self_attn.", layer);
        norm(p + "post_attention_layernorm", cfg.hidden_size, layer);
        if (cfg.is_moe_layer(layer))
            moe(p + "mlp.", layer);
        else
            mlp(p + "mlp", cfg.intermediate_size, layer);
    }

    // MTP module: a full decoder layer plus enorm/hnorm, eh_proj ([h, 2h], BF16 in the checkpoint) and its
    // own copies of embed_tokens and the output head.
    void mtp_layer(int layer) {
        const std::string p = "model.layers." + std::to_string(layer) + ".";
        const int64_t h = cfg.hidden_size;
        add(p + "embed_tokens.weight", DType::BF16, {cfg.vocab_size, h}, TensorRole::VocabParallel, layer);
        norm(p + "enorm", h, layer);
        norm(p + "hnorm", h, layer);
        add(p + "eh_proj.weight", DType::BF16, {h, 2 * h}, TensorRole::Replicated, layer);
        decoder_layer(layer);
        norm(p + "shared_head.norm", h, layer);
        add(p + "shared_head.head.weight", DType::BF16, {cfg.vocab_size, h}, TensorRole::VocabParallel, layer);
    }
};

bool has_prefix(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

}  // namespace

const char* tensor_role_name(TensorRole role) {
    static const char* const kNames[] = {"column_parallel", "row_parallel",  "vocab_parallel",
                                         "replicated",      "routed_expert", "block_scale"};
    return kNames[static_cast<int>(role)];
}

int64_t TensorSpec::numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
}

std::vector<TensorSpec> deepseek_v3_tensors(const ModelConfig& config, bool include_mtp) {
    config.validate();
    std::vector<TensorSpec> out;
    Builder b{config, out};
    const int64_t h = config.hidden_size;
    b.add("model.embed_tokens.weight", DType::BF16, {config.vocab_size, h}, TensorRole::VocabParallel);
    for (int64_t i = 0; i < config.num_hidden_layers; ++i) b.decoder_layer(static_cast<int>(i));
    b.norm("model.norm", h, -1);
    if (!config.tie_word_embeddings) {
        b.add("lm_head.weight", DType::BF16, {config.vocab_size, h}, TensorRole::VocabParallel);
    }
    if (include_mtp) {
        for (int64_t i = 0; i < config.num_nextn_predict_layers; ++i) {
            b.mtp_layer(static_cast<int>(config.num_hidden_layers + i));
        }
    }
    return out;
}

ParamCounts count_parameters(const ModelConfig& config, bool include_mtp) {
    const std::vector<TensorSpec> tensors = deepseek_v3_tensors(config, include_mtp);
    ParamCounts pc;
    // Reference layers for the per-layer figures: layer 0 for attention, the first dense and first MoE layer.
    int dense_layer = -1, moe_layer = -1;
    for (int64_t i = 0; i < config.num_hidden_layers && (dense_layer < 0 || moe_layer < 0); ++i) {
        int& slot = config.is_moe_layer(i) ? moe_layer : dense_layer;
        if (slot < 0) slot = static_cast<int>(i);
    }
    uint64_t routed_total = 0;
    std::set<int> moe_layers;
    for (const TensorSpec& t : tensors) {
        if (t.role == TensorRole::BlockScale) continue;
        const auto n = static_cast<uint64_t>(t.numel());
        pc.total += n;
        if (t.name == "model.embed_tokens.weight") pc.embedding += n;
        if (t.name == "lm_head.weight") pc.lm_head += n;
        if (t.layer < 0) continue;
        const std::string p = "model.layers." + std::to_string(t.layer) + ".";
        if (t.layer == 0 && has_prefix(t.name, p + "self_attn.")) pc.attention_per_layer += n;
        if (t.layer == dense_layer && has_prefix(t.name, p + "mlp.")) pc.dense_mlp_per_layer += n;
        if (t.layer == moe_layer && has_prefix(t.name, p + "mlp.")) pc.moe_layer += n;
        if (t.role == TensorRole::RoutedExpert) {
            routed_total += n;
            moe_layers.insert(t.layer);
            if (t.layer == moe_layer && t.expert == 0) pc.routed_expert += n;
        }
    }
    const uint64_t active_routed =
        moe_layers.size() * static_cast<uint64_t>(config.num_experts_per_tok) * pc.routed_expert;
    ECF8_CHECK(routed_total >= active_routed, config.source << ": inconsistent routed expert sizes");
    pc.active_per_token = pc.total - routed_total + active_routed;
    return pc;
}

}  // namespace ecf8
