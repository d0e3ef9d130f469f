// Tests of sharding/model_config and sharding/model_tensors: parsing the public DeepSeek-V3 config.json,
// validation messages, the checkpoint tensor list and parameter counts against a hand computation.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "common/error.h"
#include "sharding/model_config.h"
#include "sharding/model_tensors.h"
#include "tests/test_util.h"

#ifndef ECF8_SOURCE_DIR
#error "ECF8_SOURCE_DIR must be defined (target_compile_definitions in tests/sharding/model.cmake)"
#endif

namespace ecf8 {
namespace {

using test::error_of;

const std::string kConfigPath = std::string(ECF8_SOURCE_DIR) + "/configs/models/deepseek-v3/config.json";

nlohmann::json public_json() {
    std::ifstream in(kConfigPath);
    EXPECT_TRUE(in.good()) << kConfigPath;
    return nlohmann::json::parse(in);
}

std::string parse_error(const nlohmann::json& j) {
    return error_of([&] { ModelConfig::from_json(j, "test.json"); });
}

void expect_near_rel(double got, double want, double rel, const char* what) {
    EXPECT_LE(std::fabs(got - want), rel * want)
        << what << ": got " << got << ", want " << want << " +- " << rel * 100 << "%";
}

// ---------------------------------------------------------------------------------------------------
// Parsing

TEST(ModelConfig, LoadsPublicDeepSeekV3Config) {
    const ModelConfig c = ModelConfig::load(kConfigPath);
    EXPECT_EQ(c.source, kConfigPath);
    EXPECT_EQ(c.model_type, "deepseek_v3");
    EXPECT_EQ(c.vocab_size, 129280);
    EXPECT_EQ(c.hidden_size, 7168);
    EXPECT_EQ(c.intermediate_size, 18432);
    EXPECT_EQ(c.moe_intermediate_size, 2048);
    EXPECT_EQ(c.num_hidden_layers, 61);
    EXPECT_EQ(c.num_nextn_predict_layers, 1);
    EXPECT_EQ(c.first_k_dense_replace, 3);
    EXPECT_EQ(c.moe_layer_freq, 1);
    EXPECT_EQ(c.n_routed_experts, 256);
    EXPECT_EQ(c.n_shared_experts, 1);
    EXPECT_EQ(c.num_experts_per_tok, 8);
    EXPECT_EQ(c.n_group, 8);
    EXPECT_EQ(c.topk_group, 4);
    EXPECT_EQ(c.num_attention_heads, 128);
    EXPECT_EQ(c.q_lora_rank, 1536);
    EXPECT_EQ(c.kv_lora_rank, 512);
    EXPECT_EQ(c.qk_nope_head_dim, 128);
    EXPECT_EQ(c.qk_rope_head_dim, 64);
    EXPECT_EQ(c.v_head_dim, 128);
    EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-6);
    EXPECT_DOUBLE_EQ(c.rope_theta, 10000.0);
    EXPECT_TRUE(c.has_rope_scaling);
    EXPECT_EQ(c.rope_scaling.type, "yarn");
    EXPECT_DOUBLE_EQ(c.rope_scaling.factor, 40.0);
    EXPECT_EQ(c.rope_scaling.original_max_position_embeddings, 4096);
    EXPECT_DOUBLE_EQ(c.rope_scaling.beta_fast, 32.0);
    EXPECT_DOUBLE_EQ(c.rope_scaling.beta_slow, 1.0);
    EXPECT_DOUBLE_EQ(c.rope_scaling.mscale, 1.0);
    EXPECT_DOUBLE_EQ(c.rope_scaling.mscale_all_dim, 1.0);
    EXPECT_DOUBLE_EQ(c.routed_scaling_factor, 2.5);
    EXPECT_EQ(c.scoring_func, "sigmoid");
    EXPECT_EQ(c.topk_method, "noaux_tc");
    EXPECT_TRUE(c.norm_topk_prob);
    EXPECT_FALSE(c.tie_word_embeddings);
    EXPECT_TRUE(c.quantized);
    EXPECT_EQ(c.quantization.fmt, "e4m3");
    EXPECT_EQ(c.quantization.weight_block_size, (std::vector<int64_t>{128, 128}));
    EXPECT_FALSE(c.is_moe_layer(2));
    EXPECT_TRUE(c.is_moe_layer(3));
    EXPECT_TRUE(c.is_moe_layer(61));  // the MTP layer
}

TEST(ModelConfig, DefaultsAreDeepSeekV3AndValid) {
    const ModelConfig d;
    EXPECT_NO_THROW(d.validate());
    const ModelConfig c = ModelConfig::load(kConfigPath);
    EXPECT_EQ(count_parameters(d).total, count_parameters(c).total);
}

TEST(ModelConfig, IgnoresUnknownFields) {
    nlohmann::json j = public_json();
    j["some_future_field"] = {{"nested", 1}};
    j["architectures"] = 42;
    EXPECT_NO_THROW(ModelConfig::from_json(j, "test.json"));
}

TEST(ModelConfig, MissingRequiredFieldIsNamed) {
    for (const char* field : {"hidden_size", "n_routed_experts", "kv_lora_rank", "model_type"}) {
        nlohmann::json j = public_json();
        j.erase(field);
        const std::string err = parse_error(j);
        EXPECT_NE(err.find("test.json"), std::string::npos) << err;
        EXPECT_NE(err.find(std::string("missing required field '") + field + "'"), std::string::npos) << err;
    }
}

TEST(ModelConfig, WrongJsonTypesAreNamed) {
    struct Case {
        const char* field;
        nlohmann::json value;
    };
    for (const Case& k : {Case{"hidden_size", "7168"}, Case{"hidden_size", 7168.5}, Case{"norm_topk_prob", 1},
                          Case{"scoring_func", 3}, Case{"rms_norm_eps", "1e-6"}, Case{"rope_scaling", 40}}) {
        nlohmann::json j = public_json();
        j[k.field] = k.value;
        const std::string err = parse_error(j);
        EXPECT_NE(err.find(std::string("field '") + k.field + "'"), std::string::npos) << err;
        EXPECT_NE(err.find("test.json"), std::string::npos) << err;
    }
    nlohmann::json j = public_json();
    j["rope_scaling"]["factor"] = "40";
    std::string err = parse_error(j);
    EXPECT_NE(err.find("rope_scaling: field 'factor'"), std::string::npos) << err;
    j = public_json();
    j["quantization_config"]["weight_block_size"] = {128};
    err = parse_error(j);
    EXPECT_NE(err.find("quantization_config: field 'weight_block_size'"), std::string::npos) << err;
}

TEST(ModelConfig, ValidateNamesFieldAndAllowedValues) {
    struct Case {
        const char* field;
        nlohmann::json value;
        std::vector<std::string> expect;  // substrings of the message
    };
    const std::vector<Case> cases = {
        {"n_group", 7, {"n_routed_experts = 256", "divisible by n_group = 7"}},
        {"topk_group", 9, {"topk_group = 9", "[1, n_group = 8]"}},
        {"first_k_dense_replace", 62, {"first_k_dense_replace = 62", "num_hidden_layers = 61"}},
        {"model_type", "llama", {"model_type = 'llama' is not supported", "supported: deepseek_v3"}},
        {"num_experts_per_tok", 300, {"num_experts_per_tok = 300", "n_routed_experts = 256"}},
        {"hidden_size", 0, {"hidden_size = 0", "must be > 0"}},
        {"scoring_func", "relu", {"scoring_func = 'relu'", "sigmoid, softmax"}},
    };
    for (const Case& k : cases) {
        nlohmann::json j = public_json();
        j[k.field] = k.value;
        const std::string err = parse_error(j);
        EXPECT_NE(err.find("test.json: invalid model config"), std::string::npos) << err;
        for (const std::string& s : k.expect) EXPECT_NE(err.find(s), std::string::npos) << k.field << ": " << err;
    }
    nlohmann::json j = public_json();
    j["quantization_config"]["fmt"] = "e5m2";
    const std::string err = parse_error(j);
    EXPECT_NE(err.find("quantization_config.fmt = 'e5m2' is not supported; supported: e4m3"), std::string::npos) << err;
}

TEST(ModelConfig, ValidateReportsEveryViolation) {
    ModelConfig c;
    c.source = "mine.json";
    c.n_group = 7;
    c.topk_group = 9;
    const std::string err = error_of([&] { c.validate(); });
    EXPECT_NE(err.find("mine.json: invalid model config (2 problems)"), std::string::npos) << err;
}

// Fields that size allocations are capped, so an absurd config.json is an error instead of std::bad_alloc.
TEST(ModelConfig, SizesAboveTheCapsAreNamed) {
    const std::vector<std::pair<const char*, std::string>> cases = {
        {"num_hidden_layers", "<= 1024"},   {"vocab_size", "<= 4194304"},          {"hidden_size", "<= 65536"},
        {"intermediate_size", "<= 262144"}, {"moe_intermediate_size", "<= 65536"}, {"n_routed_experts", "<= 4096"},
        {"n_shared_experts", "<= 64"},      {"num_attention_heads", "<= 2048"},    {"kv_lora_rank", "<= 65536"},
        {"q_lora_rank", "<= 65536"},        {"qk_nope_head_dim", "<= 4096"},       {"qk_rope_head_dim", "<= 4096"},
        {"v_head_dim", "<= 4096"},          {"num_nextn_predict_layers", "<= 16"},
    };
    for (const auto& [field, cap] : cases) {
        nlohmann::json j = public_json();
        j[field] = 1000000000;
        const std::string err = parse_error(j);
        EXPECT_EQ(err.rfind("test.json: invalid model config", 0), 0u) << field << ": " << err;
        EXPECT_NE(err.find(std::string(field) + " = 1000000000: must be " + cap), std::string::npos) << err;
    }
    ModelConfig at_caps;  // the caps themselves are allowed
    at_caps.num_hidden_layers = 1024;
    at_caps.vocab_size = 4194304;
    at_caps.n_routed_experts = 4096;
    EXPECT_EQ(error_of([&] { at_caps.validate(); }), "");
}

TEST(ModelConfig, LoadNamesMissingOrBrokenFile) {
    const std::string missing = "/nonexistent/dir/config.json";
    std::string err = error_of([&] { ModelConfig::load(missing); });
    EXPECT_NE(err.find(missing), std::string::npos) << err;
    const std::string bad = ::testing::TempDir() + "ecf8_bad_config.json";
    std::ofstream(bad) << "{ \"hidden_size\": ";
    err = error_of([&] { ModelConfig::load(bad); });
    EXPECT_NE(err.find(bad), std::string::npos) << err;
    EXPECT_NE(err.find("not valid JSON"), std::string::npos) << err;
}

// ---------------------------------------------------------------------------------------------------
// Parameter counts: an independent hand computation from the config numbers.

TEST(ModelTensors, ParameterCountsMatchHandComputation) {
    const ParamCounts pc = count_parameters(ModelConfig::load(kConfigPath));
    // MLA: q_a_proj + q_a_layernorm + q_b_proj (128 heads x (128 + 64)) + kv_a_proj_with_mqa (512 + 64)
    //      + kv_a_layernorm + kv_b_proj (128 heads x (128 + 128)) + o_proj (128 heads x 128 -> 7168)
    const uint64_t attention = 7168ull * 1536 + 1536 + 1536ull * (128 * (128 + 64)) + 7168ull * (512 + 64) + 512 +
                               512ull * (128 * (128 + 128)) + (128ull * 128) * 7168;
    const uint64_t dense_mlp = 3ull * 7168 * 18432;
    const uint64_t expert = 3ull * 7168 * 2048;
    const uint64_t moe = 256 * expert + 1 * expert + 256ull * 7168 + 256;  // routed, shared, gate, bias
    const uint64_t embedding = 129280ull * 7168;
    const uint64_t norms_per_layer = 2 * 7168;
    const uint64_t total = embedding + 61 * (attention + norms_per_layer) + 3 * dense_mlp + 58 * moe + 7168 +
                           embedding;  // embed, layers, model.norm, lm_head
    const uint64_t active = total - 58ull * (256 - 8) * expert;

    EXPECT_EQ(pc.attention_per_layer, attention);
    EXPECT_EQ(pc.dense_mlp_per_layer, dense_mlp);
    EXPECT_EQ(pc.routed_expert, expert);
    EXPECT_EQ(pc.moe_layer, moe);
    EXPECT_EQ(pc.embedding, embedding);
    EXPECT_EQ(pc.lm_head, embedding);
    EXPECT_EQ(pc.total, total);
    EXPECT_EQ(pc.active_per_token, active);

    // The README facts.
    expect_near_rel(pc.attention_per_layer, 187.1e6, 0.0005, "attention per layer");
    expect_near_rel(pc.dense_mlp_per_layer, 396.4e6, 0.0005, "dense MLP");
    expect_near_rel(pc.routed_expert, 44.04e6, 0.0005, "routed expert");
    expect_near_rel(pc.moe_layer, 11.32e9, 0.0005, "MoE layer");
    expect_near_rel(pc.embedding, 0.927e9, 0.001, "embedding");
    expect_near_rel(pc.lm_head, 0.927e9, 0.001, "lm_head");
    expect_near_rel(pc.total, 671.0e9, 0.005, "total");
    expect_near_rel(pc.active_per_token, 37.5e9, 0.01, "active per token");
    std::printf("attention/layer %.4gM  dense MLP %.4gM  expert %.4gM  MoE layer %.5gB  embedding %.4gB\n",
                pc.attention_per_layer / 1e6, pc.dense_mlp_per_layer / 1e6, pc.routed_expert / 1e6, pc.moe_layer / 1e9,
                pc.embedding / 1e9);
    std::printf("total %.5gB (%llu)  active/token %.5gB (%llu)\n", pc.total / 1e9,
                static_cast<unsigned long long>(pc.total), pc.active_per_token / 1e9,
                static_cast<unsigned long long>(pc.active_per_token));
}

TEST(ModelTensors, MtpAddsOneMoeLayerPlusItsExtras) {
    const ModelConfig c = ModelConfig::load(kConfigPath);
    const ParamCounts base = count_parameters(c);
    const ParamCounts mtp = count_parameters(c, true);
    const uint64_t layer = base.attention_per_layer + 2 * 7168 + base.moe_layer;
    const uint64_t extras = 2 * 7168 + 7168ull * 2 * 7168 + 7168;            // enorm, hnorm, eh_proj, shared_head.norm
    EXPECT_EQ(mtp.total - base.total, layer + extras + 2 * base.embedding);  // plus stored embed/head copies
    expect_near_rel(layer + extras, 11.5e9, 0.01, "MTP unique parameters (README_WEIGHTS: 11.5B)");
    std::printf("with MTP: total %.5gB  active/token %.5gB\n", mtp.total / 1e9, mtp.active_per_token / 1e9);
}

// ---------------------------------------------------------------------------------------------------
// Tensor list

std::map<std::string, const TensorSpec*> by_name(const std::vector<TensorSpec>& ts) {
    std::map<std::string, const TensorSpec*> m;
    for (const TensorSpec& t : ts) EXPECT_TRUE(m.emplace(t.name, &t).second) << "duplicate " << t.name;
    return m;
}

TEST(ModelTensors, TensorCountMatchesLayout) {
    const ModelConfig c = ModelConfig::load(kConfigPath);
    // Every linear is weight + scale (2 tensors), every norm 1.
    const size_t per_layer = 2 /*norms*/ + 2 + 1 + 2 + 2 + 1 + 2 + 2;  // q_a, q_a_ln, q_b, kv_a, kv_a_ln, kv_b, o
    const size_t dense = 3 * 2;
    const size_t moe = 256 * 3 * 2 + 1 + 1 + 3 * 2;  // experts, gate, bias, shared
    const size_t main = 3 + 61 * per_layer + 3 * dense + 58 * moe;
    const auto ts = deepseek_v3_tensors(c);
    EXPECT_EQ(ts.size(), main);
    EXPECT_EQ(ts.size(), 90427u);
    const auto mtp = deepseek_v3_tensors(c, true);
    EXPECT_EQ(mtp.size(), main + per_layer + moe + 6);  // + embed, enorm, hnorm, eh_proj, shared_head x2
    EXPECT_EQ(mtp.size(), 91991u);
    by_name(mtp);
}

TEST(ModelTensors, EveryLinearWeightHasOneScaleOfTheRightShape) {
    const auto ts = deepseek_v3_tensors(ModelConfig::load(kConfigPath), true);
    const auto names = by_name(ts);
    std::map<std::string, int> scales_of;
    for (const TensorSpec& t : ts) {
        if (t.role != TensorRole::BlockScale) continue;
        EXPECT_EQ(t.dtype, DType::F32) << t.name;
        EXPECT_EQ(t.name, t.scale_of + "_scale_inv");
        ++scales_of[t.scale_of];
    }
    size_t fp8 = 0;
    for (const TensorSpec& t : ts) {
        if (t.dtype != DType::F8_E4M3) {
            EXPECT_EQ(scales_of.count(t.name), 0u) << t.name << " is not FP8 but has a scale";
            continue;
        }
        ++fp8;
        ASSERT_EQ(t.shape.size(), 2u) << t.name;
        EXPECT_EQ(scales_of[t.name], 1) << t.name;
        const TensorSpec* s = names.at(t.name + "_scale_inv");
        EXPECT_EQ(s->shape, (std::vector<int64_t>{(t.shape[0] + 127) / 128, (t.shape[1] + 127) / 128})) << t.name;
        EXPECT_EQ(s->layer, t.layer);
        EXPECT_EQ(s->expert, t.expert);
    }
    EXPECT_EQ(fp8, scales_of.size());
    // kv_a_proj_with_mqa is 576 x 7168: 576 is not a multiple of 128, so the scale rounds up to 5 rows.
    EXPECT_EQ(names.at("model.layers.0.self_attn.kv_a_proj_with_mqa.weight_scale_inv")->shape,
              (std::vector<int64_t>{5, 56}));
}

TEST(ModelTensors, DTypesShapesAndRolesFollowTheCheckpoint) {
    const auto ts = deepseek_v3_tensors(ModelConfig::load(kConfigPath));
    const auto m = by_name(ts);
    struct Want {
        const char* name;
        DType dtype;
        std::vector<int64_t> shape;
        TensorRole role;
    };
    const std::vector<Want> wants = {
        {"model.embed_tokens.weight", DType::BF16, {129280, 7168}, TensorRole::VocabParallel},
        {"lm_head.weight", DType::BF16, {129280, 7168}, TensorRole::VocabParallel},
        {"model.norm.weight", DType::BF16, {7168}, TensorRole::Replicated},
        {"model.layers.0.input_layernorm.weight", DType::BF16, {7168}, TensorRole::Replicated},
        {"model.layers.0.self_attn.q_a_proj.weight", DType::F8_E4M3, {1536, 7168}, TensorRole::Replicated},
        {"model.layers.0.self_attn.q_a_layernorm.weight", DType::BF16, {1536}, TensorRole::Replicated},
        {"model.layers.0.self_attn.q_b_proj.weight", DType::F8_E4M3, {24576, 1536}, TensorRole::ColumnParallel},
        {"model.layers.0.self_attn.kv_a_proj_with_mqa.weight", DType::F8_E4M3, {576, 7168}, TensorRole::Replicated},
        {"model.layers.0.self_attn.kv_a_layernorm.weight", DType::BF16, {512}, TensorRole::Replicated},
        {"model.layers.0.self_attn.kv_b_proj.weight", DType::F8_E4M3, {32768, 512}, TensorRole::ColumnParallel},
        {"model.layers.0.self_attn.o_proj.weight", DType::F8_E4M3, {7168, 16384}, TensorRole::RowParallel},
        {"model.layers.2.mlp.gate_proj.weight", DType::F8_E4M3, {18432, 7168}, TensorRole::ColumnParallel},
        {"model.layers.2.mlp.down_proj.weight", DType::F8_E4M3, {7168, 18432}, TensorRole::RowParallel},
        {"model.layers.3.mlp.gate.weight", DType::BF16, {256, 7168}, TensorRole::Replicated},
        {"model.layers.3.mlp.gate.e_score_correction_bias", DType::F32, {256}, TensorRole::Replicated},
        {"model.layers.3.mlp.experts.255.up_proj.weight", DType::F8_E4M3, {2048, 7168}, TensorRole::RoutedExpert},
        {"model.layers.60.mlp.experts.0.down_proj.weight", DType::F8_E4M3, {7168, 2048}, TensorRole::RoutedExpert},
        {"model.layers.60.mlp.shared_experts.up_proj.weight", DType::F8_E4M3, {2048, 7168}, TensorRole::ColumnParallel},
        {"model.layers.60.mlp.shared_experts.down_proj.weight", DType::F8_E4M3, {7168, 2048}, TensorRole::RowParallel},
    };
    for (const Want& w : wants) {
        ASSERT_TRUE(m.count(w.name)) << w.name;
        const TensorSpec& t = *m.at(w.name);
        EXPECT_EQ(t.dtype, w.dtype) << w.name << ": " << dtype_name(t.dtype);
        EXPECT_EQ(t.shape, w.shape) << w.name;
        EXPECT_EQ(t.role, w.role) << w.name << ": " << tensor_role_name(t.role);
    }
    EXPECT_EQ(m.at("model.layers.3.mlp.experts.17.gate_proj.weight")->expert, 17);
    EXPECT_EQ(m.at("model.layers.3.mlp.experts.17.gate_proj.weight")->layer, 3);
    EXPECT_EQ(m.at("model.embed_tokens.weight")->layer, -1);
    EXPECT_EQ(m.count("model.layers.2.mlp.gate.weight"), 0u);
    EXPECT_EQ(m.count("model.layers.3.mlp.gate_proj.weight"), 0u);
    // Routed experts and their scales carry the expert index; nothing else does.
    size_t bad = 0;
    for (const TensorSpec& t : ts) {
        const bool routed = t.role == TensorRole::RoutedExpert ||
                            (t.role == TensorRole::BlockScale && m.at(t.scale_of)->role == TensorRole::RoutedExpert);
        if (routed != (t.expert >= 0) && bad++ < 5) ADD_FAILURE() << t.name << ": expert " << t.expert;
    }
    EXPECT_EQ(bad, 0u);
}

TEST(ModelTensors, UnquantizedConfigHasBf16WeightsAndNoScales) {
    nlohmann::json j = public_json();
    j.erase("quantization_config");
    j["num_hidden_layers"] = 4;
    j["n_routed_experts"] = 16;
    const ModelConfig c = ModelConfig::from_json(j, "bf16.json");
    EXPECT_FALSE(c.quantized);
    for (const TensorSpec& t : deepseek_v3_tensors(c)) {
        EXPECT_NE(t.role, TensorRole::BlockScale) << t.name;
        EXPECT_NE(t.dtype, DType::F8_E4M3) << t.name;
    }
}

TEST(ModelTensors, NullQLoraRankUsesQProj) {
    nlohmann::json j = public_json();
    j["q_lora_rank"] = nullptr;
    j["num_hidden_layers"] = 4;
    const auto ts = deepseek_v3_tensors(ModelConfig::from_json(j, "noq.json"));
    const auto m = by_name(ts);
    EXPECT_EQ(m.count("model.layers.0.self_attn.q_a_proj.weight"), 0u);
    ASSERT_EQ(m.count("model.layers.0.self_attn.q_proj.weight"), 1u);
    EXPECT_EQ(m.at("model.layers.0.self_attn.q_proj.weight")->shape, (std::vector<int64_t>{24576, 7168}));
}

// ---------------------------------------------------------------------------------------------------
// to_json

// Every field differs from the defaults, so a field written under another's name cannot round-trip.
ModelConfig unusual_config() {
    ModelConfig c;
    c.source = "x";
    c.vocab_size = 1001;
    c.hidden_size = 257;
    c.intermediate_size = 999;
    c.moe_intermediate_size = 333;
    c.num_hidden_layers = 7;
    c.num_nextn_predict_layers = 2;
    c.max_position_embeddings = 8191;
    c.first_k_dense_replace = 2;
    c.moe_layer_freq = 2;
    c.n_routed_experts = 12;
    c.n_shared_experts = 2;
    c.num_experts_per_tok = 3;
    c.n_group = 4;
    c.topk_group = 3;
    c.routed_scaling_factor = 1.7;
    c.scoring_func = "softmax";
    c.topk_method = "greedy";
    c.norm_topk_prob = false;
    c.num_attention_heads = 6;
    c.num_key_value_heads = 5;
    c.q_lora_rank = 77;
    c.kv_lora_rank = 55;
    c.qk_nope_head_dim = 33;
    c.qk_rope_head_dim = 22;
    c.v_head_dim = 11;
    c.rms_norm_eps = 1.25e-5;
    c.rope_theta = 5e5 + 0.1;
    c.rope_scaling.factor = 3.3;
    c.rope_scaling.original_max_position_embeddings = 333;
    c.rope_scaling.beta_fast = 31.5;
    c.rope_scaling.beta_slow = 1.5;
    c.rope_scaling.mscale = 0.707;
    c.rope_scaling.mscale_all_dim = 0.9;
    c.tie_word_embeddings = true;
    c.quantization.activation_scheme = "static";
    c.quantization.weight_block_size = {64, 32};
    return c;
}

TEST(ModelConfig, ToJsonRoundTripsEveryField) {
    std::vector<ModelConfig> cases;
    cases.push_back(ModelConfig{});
    cases.back().source = "x";
    cases.push_back(unusual_config());
    cases.push_back(unusual_config());
    cases.back().q_lora_rank = 0;  // written as null
    cases.push_back(unusual_config());
    cases.back().has_rope_scaling = false;  // rope_scaling null; its fields keep their defaults
    cases.back().rope_scaling = RopeScaling{};
    cases.push_back(unusual_config());
    cases.back().quantized = false;  // no quantization_config
    cases.back().quantization = QuantConfig{};
    for (const ModelConfig& c : cases) {
        ASSERT_NO_THROW(c.validate());
        const nlohmann::json j = c.to_json();
        EXPECT_EQ(ModelConfig::from_json(j, "x"), c) << j.dump();
        // Through text too, as config.json on disk.
        EXPECT_EQ(ModelConfig::from_json(nlohmann::json::parse(j.dump(2)), "x"), c) << j.dump();
        EXPECT_EQ(j.at("architectures"), nlohmann::json::array({"DeepseekV3ForCausalLM"}));
        EXPECT_EQ(j.at("torch_dtype"), "bfloat16");
        EXPECT_EQ(j.at("q_lora_rank").is_null(), c.q_lora_rank == 0);
        EXPECT_EQ(j.at("rope_scaling").is_null(), !c.has_rope_scaling);
        EXPECT_EQ(j.contains("quantization_config"), c.quantized);
    }
}

TEST(ModelConfig, ToJsonKeepsThePublicConfigsFields) {
    const nlohmann::json pub = public_json();
    const ModelConfig c = ModelConfig::load(kConfigPath);
    const nlohmann::json j = c.to_json();
    for (const auto& [key, value] : j.items()) {
        ASSERT_TRUE(pub.contains(key)) << key;
        if (value.is_number()) {
            EXPECT_DOUBLE_EQ(value.get<double>(), pub.at(key).get<double>()) << key;
        } else if (!value.is_object()) {
            EXPECT_EQ(value, pub.at(key)) << key;
        }
    }
    EXPECT_EQ(j.at("quantization_config"), pub.at("quantization_config"));
    EXPECT_EQ(ModelConfig::from_json(j, kConfigPath), c);
}

}  // namespace
}  // namespace ecf8
