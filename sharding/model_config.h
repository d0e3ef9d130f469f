// ModelConfig: the DeepSeek-V3 architecture as read from a Hugging Face config.json, with validate().
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

namespace ecf8 {

// YaRN rope scaling ("rope_scaling" in config.json). Absent or null means no scaling (factor 1).
struct RopeScaling {
    std::string type = "yarn";
    double factor = 40.0;
    int64_t original_max_position_embeddings = 4096;
    double beta_fast = 32.0;
    double beta_slow = 1.0;
    double mscale = 1.0;
    double mscale_all_dim = 1.0;

    bool operator==(const RopeScaling&) const = default;
};

// FP8 block quantization ("quantization_config"). Absent means an unquantized (BF16) checkpoint.
struct QuantConfig {
    std::string quant_method = "fp8";
    std::string fmt = "e4m3";
    std::string activation_scheme = "dynamic";
    std::vector<int64_t> weight_block_size = {128, 128};  // [rows, cols] of one weight_scale_inv block

    bool operator==(const QuantConfig&) const = default;
};

// Defaults are DeepSeek-V3's public values. Field names follow config.json.
struct ModelConfig {
    std::string source = "<defaults>";  // file (or label) the config came from; prefixes every error
    std::string model_type = "deepseek_v3";

    int64_t vocab_size = 129280;
    int64_t hidden_size = 7168;
    int64_t intermediate_size = 18432;     // dense MLP width (first_k_dense_replace layers)
    int64_t moe_intermediate_size = 2048;  // width of one routed or shared expert
    int64_t num_hidden_layers = 61;
    int64_t num_nextn_predict_layers = 1;  // MTP modules, stored as layers num_hidden_layers, ...
    int64_t max_position_embeddings = 163840;

    // MoE
    int64_t first_k_dense_replace = 3;  // layers [0, k) are dense
    int64_t moe_layer_freq = 1;         // layer i >= k is MoE when i % moe_layer_freq == 0
    int64_t n_routed_experts = 256;
    int64_t n_shared_experts = 1;
    int64_t num_experts_per_tok = 8;
    int64_t n_group = 8;
    int64_t topk_group = 4;
    double routed_scaling_factor = 2.5;
    std::string scoring_func = "sigmoid";
    std::string topk_method = "noaux_tc";  // noaux_tc adds mlp.gate.e_score_correction_bias
    bool norm_topk_prob = true;

    // MLA attention
    int64_t num_attention_heads = 128;
    int64_t num_key_value_heads = 128;
    int64_t q_lora_rank = 1536;  // 0 (null in JSON): q_proj instead of q_a_proj/q_a_layernorm/q_b_proj
    int64_t kv_lora_rank = 512;
    int64_t qk_nope_head_dim = 128;
    int64_t qk_rope_head_dim = 64;
    int64_t v_head_dim = 128;

    double rms_norm_eps = 1e-6;
    double rope_theta = 10000.0;
    bool has_rope_scaling = true;
    RopeScaling rope_scaling;
    bool tie_word_embeddings = false;

    bool quantized = true;  // quantization_config present
    QuantConfig quantization;

    int64_t qk_head_dim() const { return qk_nope_head_dim + qk_rope_head_dim; }
    // Every field, source included (compare configs from different files after copying source over).
    bool operator==(const ModelConfig&) const = default;
    bool is_moe_layer(int64_t layer) const;  // layer may be an MTP layer (>= num_hidden_layers)

    // Throws ecf8::Error naming the source and, for each violated rule, the field and what is allowed.
    // Fields that size allocations have upper caps (docs/CONFIG.md, "config.json limits").
    void validate() const;

    // Reads config.json content. Unknown fields are ignored; missing required fields and wrong JSON types
    // are errors naming source and field. The result is validated.
    static ModelConfig from_json(const nlohmann::json& j, const std::string& source);
    static ModelConfig load(const std::string& config_json_path);

    // The config.json content from_json reads, with Hugging Face's names and conventions (q_lora_rank null
    // when 0, rope_scaling null without scaling, quantization_config only when quantized) plus
    // "architectures" and "torch_dtype", so that from_json(to_json(), s) reproduces every field but source.
    nlohmann::json to_json() const;
};

}  // namespace ecf8
