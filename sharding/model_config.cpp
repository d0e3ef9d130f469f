// ModelConfig parsing (Hugging Face config.json) and validation.
#include "sharding/model_config.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/error.h"

namespace ecf8 {
namespace {

using nlohmann::json;

// ---------------------------------------------------------------------------------------------------
// Typed field readers. `where` is "<source>" or "<source>: rope_scaling" for nested objects.

const json* find_field(const json& j, const std::string& key, const std::string& where, bool required) {
    auto it = j.find(key);
    if (it == j.end()) {
        ECF8_CHECK(!required, where << ": missing required field '" << key << "'");
        return nullptr;
    }
    return &*it;
}

std::string type_error(const std::string& where, const std::string& key, const char* want, const json& v) {
    return where + ": field '" + key + "' must be " + want + ", got " + v.type_name() + " " + v.dump();
}

void read_int(const json& j, const std::string& key, const std::string& where, bool required, int64_t* out) {
    const json* v = find_field(j, key, where, required);
    if (!v) return;
    ECF8_CHECK(v->is_number_integer(), type_error(where, key, "an integer", *v));
    if (v->is_number_unsigned()) {
        const uint64_t u = v->get<uint64_t>();
        ECF8_CHECK(u <= static_cast<uint64_t>(INT64_MAX), where << ": field '" << key << "' is too large: " << u);
    }
    *out = v->get<int64_t>();
}

// Integer or null (null reads as 0), as HF writes q_lora_rank for models without a query LoRA.
void read_int_or_null(const json& j, const std::string& key, const std::string& where, bool required, int64_t* out) {
    const json* v = find_field(j, key, where, required);
    if (v && v->is_null()) {
        *out = 0;
        return;
    }
    read_int(j, key, where, required, out);
}

void read_double(const json& j, const std::string& key, const std::string& where, bool required, double* out) {
    const json* v = find_field(j, key, where, required);
    if (!v) return;
    ECF8_CHECK(v->is_number(), type_error(where, key, "a number", *v));
    *out = v->get<double>();
}

void read_bool(const json& j, const std::string& key, const std::string& where, bool required, bool* out) {
    const json* v = find_field(j, key, where, required);
    if (!v) return;
    ECF8_CHECK(v->is_boolean(), type_error(where, key, "true or false", *v));
    *out = v->get<bool>();
}

void read_string(const json& j, const std::string& key, const std::string& where, bool required, std::string* out) {
    const json* v = find_field(j, key, where, required);
    if (!v) return;
    ECF8_CHECK(v->is_string(), type_error(where, key, "a string", *v));
    *out = v->get<std::string>();
}

void read_rope_scaling(const json& j, const std::string& source, ModelConfig* c) {
    const json* v = find_field(j, "rope_scaling", source, false);
    if (!v || v->is_null()) {
        c->has_rope_scaling = false;
        return;
    }
    ECF8_CHECK(v->is_object(), type_error(source, "rope_scaling", "an object or null", *v));
    const std::string where = source + ": rope_scaling";
    RopeScaling& r = c->rope_scaling;
    c->has_rope_scaling = true;
    // HF writes "type" (older) or "rope_type" (newer).
    if (v->contains("rope_type"))
        read_string(*v, "rope_type", where, true, &r.type);
    else
        read_string(*v, "type", where, true, &r.type);
    read_double(*v, "factor", where, true, &r.factor);
    read_int(*v, "original_max_position_embeddings", where, true, &r.original_max_position_embeddings);
    read_double(*v, "beta_fast", where, false, &r.beta_fast);
    read_double(*v, "beta_slow", where, false, &r.beta_slow);
    read_double(*v, "mscale", where, false, &r.mscale);
    read_double(*v, "mscale_all_dim", where, false, &r.mscale_all_dim);
}

void read_quantization(const json& j, const std::string& source, ModelConfig* c) {
    const json* v = find_field(j, "quantization_config", source, false);
    if (!v || v->is_null()) {
        c->quantized = false;
        return;
    }
    ECF8_CHECK(v->is_object(), type_error(source, "quantization_config", "an object or null", *v));
    const std::string where = source + ": quantization_config";
    QuantConfig& q = c->quantization;
    c->quantized = true;
    read_string(*v, "quant_method", where, true, &q.quant_method);
    read_string(*v, "fmt", where, true, &q.fmt);
    read_string(*v, "activation_scheme", where, false, &q.activation_scheme);
    const json* b = find_field(*v, "weight_block_size", where, true);
    ECF8_CHECK(b->is_array() && b->size() == 2 && (*b)[0].is_number_integer() && (*b)[1].is_number_integer(),
               type_error(where, "weight_block_size", "an array of two integers", *b));
    q.weight_block_size = {(*b)[0].get<int64_t>(), (*b)[1].get<int64_t>()};
}

// Collects rule violations so validate() reports all of them at once.
struct Violations {
    std::ostringstream os;
    int count = 0;
    void check(bool ok, const std::string& msg) {
        if (ok) return;
        os << "\n  - " << msg;
        ++count;
    }
};

std::string str(int64_t v) { return std::to_string(v); }

void check_positive(Violations& v, const char* field, int64_t value) {
    v.check(value > 0, std::string(field) + " = " + str(value) + ": must be > 0");
}

bool one_of(const std::string& s, std::initializer_list<const char*> allowed, std::string* list) {
    bool found = false;
    for (const char* a : allowed) {
        if (!list->empty()) *list += ", ";
        *list += a;
        found = found || s == a;
    }
    return found;
}

void check_choice(Violations& v, const char* field, const std::string& value,
                  std::initializer_list<const char*> allowed) {
    std::string list;
    const bool ok = one_of(value, allowed, &list);
    v.check(ok, std::string(field) + " = '" + value + "' is not supported; supported: " + list);
}

void validate_moe(const ModelConfig& c, Violations& v) {
    v.check(c.n_routed_experts >= 0, "n_routed_experts = " + str(c.n_routed_experts) + ": must be >= 0");
    v.check(c.n_shared_experts >= 0, "n_shared_experts = " + str(c.n_shared_experts) + ": must be >= 0");
    v.check(c.first_k_dense_replace >= 0 && c.first_k_dense_replace <= c.num_hidden_layers,
            "first_k_dense_replace = " + str(c.first_k_dense_replace) +
                ": must be in [0, num_hidden_layers = " + str(c.num_hidden_layers) + "]");
    check_positive(v, "moe_layer_freq", c.moe_layer_freq);
    if (c.n_routed_experts <= 0) return;
    check_positive(v, "moe_intermediate_size", c.moe_intermediate_size);
    check_positive(v, "n_group", c.n_group);
    if (c.n_group > 0) {
        v.check(c.n_routed_experts % c.n_group == 0,
                "n_routed_experts = " + str(c.n_routed_experts) + ": must be divisible by n_group = " + str(c.n_group));
        v.check(c.topk_group >= 1 && c.topk_group <= c.n_group,
                "topk_group = " + str(c.topk_group) + ": must be in [1, n_group = " + str(c.n_group) + "]");
    }
    v.check(c.num_experts_per_tok >= 1 && c.num_experts_per_tok <= c.n_routed_experts,
            "num_experts_per_tok = " + str(c.num_experts_per_tok) +
                ": must be in [1, n_routed_experts = " + str(c.n_routed_experts) + "]");
    if (c.n_group > 0 && c.topk_group >= 1) {
        const int64_t reachable = c.topk_group * (c.n_routed_experts / c.n_group);
        v.check(c.num_experts_per_tok <= reachable, "num_experts_per_tok = " + str(c.num_experts_per_tok) +
                                                        ": must be <= topk_group * n_routed_experts / "
                                                        "n_group = " +
                                                        str(reachable) + " (experts in the selected groups)");
    }
    v.check(c.routed_scaling_factor > 0, "routed_scaling_factor must be > 0");
    check_choice(v, "scoring_func", c.scoring_func, {"sigmoid", "softmax"});
    check_choice(v, "topk_method", c.topk_method, {"noaux_tc", "greedy", "group_limited_greedy"});
}

void validate_attention(const ModelConfig& c, Violations& v) {
    check_positive(v, "num_attention_heads", c.num_attention_heads);
    check_positive(v, "kv_lora_rank", c.kv_lora_rank);
    check_positive(v, "qk_nope_head_dim", c.qk_nope_head_dim);
    check_positive(v, "qk_rope_head_dim", c.qk_rope_head_dim);
    check_positive(v, "v_head_dim", c.v_head_dim);
    v.check(c.q_lora_rank >= 0, "q_lora_rank = " + str(c.q_lora_rank) + ": must be >= 0 (0 or null: no query LoRA)");
    v.check(c.rms_norm_eps > 0, "rms_norm_eps must be > 0");
    v.check(c.rope_theta > 0, "rope_theta must be > 0");
    if (!c.has_rope_scaling) return;
    check_choice(v, "rope_scaling.type", c.rope_scaling.type, {"yarn"});
    v.check(c.rope_scaling.factor >= 1.0, "rope_scaling.factor must be >= 1");
    check_positive(v, "rope_scaling.original_max_position_embeddings", c.rope_scaling.original_max_position_embeddings);
    v.check(c.rope_scaling.beta_fast > c.rope_scaling.beta_slow && c.rope_scaling.beta_slow > 0,
            "rope_scaling.beta_fast and beta_slow must satisfy beta_fast > beta_slow > 0");
}

// Caps on the fields that size tensors and per-layer tables, each 8x or more DeepSeek-V3's value: an absurd
// config.json (num_hidden_layers: 1000000000) is then an error here instead of std::bad_alloc later.
struct SizeCap {
    const char* field;
    int64_t ModelConfig::*member;
    int64_t max;
};
constexpr SizeCap kSizeCaps[] = {
    {"vocab_size", &ModelConfig::vocab_size, 4194304},
    {"hidden_size", &ModelConfig::hidden_size, 65536},
    {"intermediate_size", &ModelConfig::intermediate_size, 262144},
    {"moe_intermediate_size", &ModelConfig::moe_intermediate_size, 65536},
    {"num_hidden_layers", &ModelConfig::num_hidden_layers, 1024},
    {"num_nextn_predict_layers", &ModelConfig::num_nextn_predict_layers, 16},
    {"n_routed_experts", &ModelConfig::n_routed_experts, 4096},
    {"n_shared_experts", &ModelConfig::n_shared_experts, 64},
    {"num_attention_heads", &ModelConfig::num_attention_heads, 2048},
    {"q_lora_rank", &ModelConfig::q_lora_rank, 65536},
    {"kv_lora_rank", &ModelConfig::kv_lora_rank, 65536},
    {"qk_nope_head_dim", &ModelConfig::qk_nope_head_dim, 4096},
    {"qk_rope_head_dim", &ModelConfig::qk_rope_head_dim, 4096},
    {"v_head_dim", &ModelConfig::v_head_dim, 4096},
};

void validate_size_caps(const ModelConfig& c, Violations& v) {
    const ModelConfig deepseek_v3;  // the defaults are DeepSeek-V3's values
    for (const SizeCap& cap : kSizeCaps) {
        v.check(c.*cap.member <= cap.max, std::string(cap.field) + " = " + str(c.*cap.member) +
                                              ": must be <= " + str(cap.max) + " (ecf8's cap; DeepSeek-V3 has " +
                                              str(deepseek_v3.*cap.member) + ")");
    }
}

void validate_quantization(const ModelConfig& c, Violations& v) {
    if (!c.quantized) return;
    check_choice(v, "quantization_config.quant_method", c.quantization.quant_method, {"fp8"});
    check_choice(v, "quantization_config.fmt", c.quantization.fmt, {"e4m3"});
    const auto& b = c.quantization.weight_block_size;
    v.check(b.size() == 2 && b[0] > 0 && b[1] > 0,
            "quantization_config.weight_block_size must be two positive integers [rows, cols]");
}

}  // namespace

// ---------------------------------------------------------------------------------------------------
// ModelConfig

bool ModelConfig::is_moe_layer(int64_t layer) const {
    return n_routed_experts > 0 && layer >= first_k_dense_replace && layer % moe_layer_freq == 0;
}

void ModelConfig::validate() const {
    Violations v;
    check_choice(v, "model_type", model_type, {"deepseek_v3"});
    check_positive(v, "vocab_size", vocab_size);
    check_positive(v, "hidden_size", hidden_size);
    check_positive(v, "intermediate_size", intermediate_size);
    check_positive(v, "num_hidden_layers", num_hidden_layers);
    v.check(num_nextn_predict_layers >= 0,
            "num_nextn_predict_layers = " + str(num_nextn_predict_layers) + ": must be >= 0");
    validate_size_caps(*this, v);
    validate_moe(*this, v);
    validate_attention(*this, v);
    validate_quantization(*this, v);
    ECF8_CHECK(v.count == 0, source << ": invalid model config (" << v.count << " problem" << (v.count == 1 ? "" : "s")
                                    << "):" << v.os.str());
}

ModelConfig ModelConfig::from_json(const nlohmann::json& j, const std::string& source) {
    ECF8_CHECK(j.is_object(), source << ": a model config must be a JSON object, got " << j.type_name());
    ModelConfig c;
    c.source = source;
    const std::string& s = source;
    read_string(j, "model_type", s, true, &c.model_type);
    read_int(j, "vocab_size", s, true, &c.vocab_size);
    read_int(j, "hidden_size", s, true, &c.hidden_size);
    read_int(j, "intermediate_size", s, true, &c.intermediate_size);
    read_int(j, "moe_intermediate_size", s, true, &c.moe_intermediate_size);
    read_int(j, "num_hidden_layers", s, true, &c.num_hidden_layers);
    read_int(j, "num_nextn_predict_layers", s, false, &c.num_nextn_predict_layers);
    read_int(j, "max_position_embeddings", s, false, &c.max_position_embeddings);
    read_int(j, "first_k_dense_replace", s, true, &c.first_k_dense_replace);
    read_int(j, "moe_layer_freq", s, false, &c.moe_layer_freq);
    read_int(j, "n_routed_experts", s, true, &c.n_routed_experts);
    read_int(j, "n_shared_experts", s, true, &c.n_shared_experts);
    read_int(j, "num_experts_per_tok", s, true, &c.num_experts_per_tok);
    read_int(j, "n_group", s, true, &c.n_group);
    read_int(j, "topk_group", s, true, &c.topk_group);
    read_double(j, "routed_scaling_factor", s, false, &c.routed_scaling_factor);
    read_string(j, "scoring_func", s, false, &c.scoring_func);
    read_string(j, "topk_method", s, false, &c.topk_method);
    read_bool(j, "norm_topk_prob", s, false, &c.norm_topk_prob);
    read_int(j, "num_attention_heads", s, true, &c.num_attention_heads);
    c.num_key_value_heads = c.num_attention_heads;
    read_int(j, "num_key_value_heads", s, false, &c.num_key_value_heads);
    read_int_or_null(j, "q_lora_rank", s, true, &c.q_lora_rank);
    read_int(j, "kv_lora_rank", s, true, &c.kv_lora_rank);
    read_int(j, "qk_nope_head_dim", s, true, &c.qk_nope_head_dim);
    read_int(j, "qk_rope_head_dim", s, true, &c.qk_rope_head_dim);
    read_int(j, "v_head_dim", s, true, &c.v_head_dim);
    read_double(j, "rms_norm_eps", s, false, &c.rms_norm_eps);
    read_double(j, "rope_theta", s, false, &c.rope_theta);
    read_bool(j, "tie_word_embeddings", s, false, &c.tie_word_embeddings);
    read_rope_scaling(j, s, &c);
    read_quantization(j, s, &c);
    c.validate();
    return c;
}

nlohmann::json ModelConfig::to_json() const {
    json j = json::object();
    j["architectures"] = json::array({"DeepseekV3ForCausalLM"});
    j["model_type"] = model_type;
    j["torch_dtype"] = "bfloat16";
    j["vocab_size"] = vocab_size;
    j["hidden_size"] = hidden_size;
    j["intermediate_size"] = intermediate_size;
    j["moe_intermediate_size"] = moe_intermediate_size;
    j["num_hidden_layers"] = num_hidden_layers;
    j["num_nextn_predict_layers"] = num_nextn_predict_layers;
    j["max_position_embeddings"] = max_position_embeddings;
    j["first_k_dense_replace"] = first_k_dense_replace;
    j["moe_layer_freq"] = moe_layer_freq;
    j["n_routed_experts"] = n_routed_experts;
    j["n_shared_experts"] = n_shared_experts;
    j["num_experts_per_tok"] = num_experts_per_tok;
    j["n_group"] = n_group;
    j["topk_group"] = topk_group;
    j["routed_scaling_factor"] = routed_scaling_factor;
    j["scoring_func"] = scoring_func;
    j["topk_method"] = topk_method;
    j["norm_topk_prob"] = norm_topk_prob;
    j["num_attention_heads"] = num_attention_heads;
    j["num_key_value_heads"] = num_key_value_heads;
    j["q_lora_rank"] = q_lora_rank > 0 ? json(q_lora_rank) : json(nullptr);  // HF writes null for "no LoRA"
    j["kv_lora_rank"] = kv_lora_rank;
    j["qk_nope_head_dim"] = qk_nope_head_dim;
    j["qk_rope_head_dim"] = qk_rope_head_dim;
    j["v_head_dim"] = v_head_dim;
    j["rms_norm_eps"] = rms_norm_eps;
    j["rope_theta"] = rope_theta;
    j["tie_word_embeddings"] = tie_word_embeddings;
    if (has_rope_scaling) {
        const RopeScaling& r = rope_scaling;
        j["rope_scaling"] = {{"type", r.type},
                             {"factor", r.factor},
                             {"original_max_position_embeddings", r.original_max_position_embeddings},
                             {"beta_fast", r.beta_fast},
                             {"beta_slow", r.beta_slow},
                             {"mscale", r.mscale},
                             {"mscale_all_dim", r.mscale_all_dim}};
    } else {
        j["rope_scaling"] = nullptr;
    }
    if (quantized) {
        const QuantConfig& q = quantization;
        j["quantization_config"] = {{"quant_method", q.quant_method},
                                    {"fmt", q.fmt},
                                    {"activation_scheme", q.activation_scheme},
                                    {"weight_block_size", q.weight_block_size}};
    }
    return j;
}

ModelConfig ModelConfig::load(const std::string& config_json_path) {
    std::ifstream in(config_json_path);
    ECF8_CHECK(in.good(), "cannot open model config '" << config_json_path << "'");
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(in);
    } catch (const nlohmann::json::exception& e) {
        ECF8_FAIL("model config '" << config_json_path << "' is not valid JSON: " << e.what());
    }
    return from_json(j, config_json_path);
}

}  // namespace ecf8
