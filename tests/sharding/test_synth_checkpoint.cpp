// Tests of sharding/synth_checkpoint: the tiny preset's layout on disk (files, index, config.json, every
// tensor's dtype and shape), determinism across runs and thread counts, the statistics of the weights (FP8
// exponent entropy, block scales, std), YAML overrides and their errors, and rewriting a directory.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "codec/safetensors.h"
#include "common/error.h"
#include "common/float_formats.h"
#include "sharding/model_tensors.h"
#include "sharding/synth_checkpoint.h"
#include "tests/test_util.h"

namespace ecf8 {
namespace {

namespace fs = std::filesystem;
using test::error_of;
using test::TempDir;

SynthCheckpointOptions tiny(uint64_t seed, int threads) {
    SynthCheckpointOptions o = synth_preset("tiny");
    o.seed = seed;
    o.threads = threads;
    o.progress = false;
    return o;
}

bool same_bytes(const SafetensorsCheckpoint& a, const SafetensorsCheckpoint& b, const std::string& name) {
    const TensorInfo &ia = a.info(name), &ib = b.info(name);
    return ia.nbytes() == ib.nbytes() && std::memcmp(a.data(name), b.data(name), ia.nbytes()) == 0;
}

nlohmann::json read_json(const std::string& path) {
    std::ifstream in(path);
    EXPECT_TRUE(in.good()) << path;
    return nlohmann::json::parse(in);
}

// Three tiny checkpoints shared by the tests: seed 0 on 1 and on 2 threads, and seed 1.
class SynthTiny : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        const std::pair<uint64_t, int> runs[] = {{0, 1}, {0, 2}, {1, 2}};
        for (auto [seed, threads] : runs) {
            dirs_.push_back(std::make_unique<TempDir>("tiny"));
            results_.push_back(write_synth_checkpoint(dirs_.back()->str(), tiny(seed, threads)));
        }
    }
    static void TearDownTestSuite() {
        dirs_.clear();
        results_.clear();
    }
    static std::string dir(int i) { return dirs_.at(static_cast<size_t>(i))->str(); }

    static std::vector<std::unique_ptr<TempDir>> dirs_;
    static std::vector<SynthCheckpointResult> results_;
};
std::vector<std::unique_ptr<TempDir>> SynthTiny::dirs_;
std::vector<SynthCheckpointResult> SynthTiny::results_;

// ---------------------------------------------------------------------------------------------------
// Presets

TEST(SynthPreset, TinySplitsOn128RowBlocksForEveryTensorParallelSize) {
    const SynthCheckpointOptions o = synth_preset("tiny");
    EXPECT_EQ(o.model.hidden_size, 128);
    EXPECT_EQ(o.model.num_hidden_layers, 3);
    EXPECT_EQ(o.model.n_routed_experts, 8);
    EXPECT_EQ(o.model.num_nextn_predict_layers, 0);
    EXPECT_TRUE(o.model.has_rope_scaling);
    EXPECT_EQ(o.model.rope_scaling.original_max_position_embeddings, 256);
    EXPECT_DOUBLE_EQ(o.model.rope_scaling.factor, 4.0);
    EXPECT_EQ(o.max_file_bytes, 4u << 20);
    for (int64_t tp : {1, 2, 4, 8}) {
        for (const TensorSpec& t : deepseek_v3_tensors(o.model)) {
            if (t.role == TensorRole::ColumnParallel || t.role == TensorRole::VocabParallel) {
                EXPECT_EQ(t.shape[0] % (tp * 128), 0) << t.name << " tp " << tp;
            }
            if (t.role == TensorRole::RowParallel) {
                EXPECT_EQ(t.shape[1] % (tp * 128), 0) << t.name << " tp " << tp;
            }
        }
    }
}

TEST(SynthPreset, SmallIsAFewGigabytes) {
    const SynthCheckpointOptions o = synth_preset("small");
    uint64_t bytes = 0;
    for (const TensorSpec& t : deepseek_v3_tensors(o.model, o.include_mtp)) {
        bytes += t.nbytes();
    }
    EXPECT_GT(bytes, 2ull << 30);
    EXPECT_LT(bytes, 8ull << 30);
    EXPECT_EQ(o.max_file_bytes, 1ull << 30);
    EXPECT_EQ(o.model.num_nextn_predict_layers, 1);
}

TEST(SynthPreset, UnknownPresetListsThePresets) {
    const std::string e = error_of([] { synth_preset("huge"); });
    EXPECT_NE(e.find("'huge'"), std::string::npos) << e;
    EXPECT_NE(e.find("tiny, small"), std::string::npos) << e;
}

// ---------------------------------------------------------------------------------------------------
// Layout on disk

TEST_F(SynthTiny, WritesALoadableMultiFileCheckpoint) {
    const SafetensorsCheckpoint ck = SafetensorsCheckpoint::open(dir(0));
    EXPECT_GT(ck.num_files(), 1u);
    EXPECT_EQ(results_[0].files, ck.num_files());
    const nlohmann::json index = read_json(dir(0) + "/model.safetensors.index.json");
    std::map<std::string, uint64_t> file_bytes;
    for (const auto& [name, file] : index.at("weight_map").items()) {
        file_bytes[file.get<std::string>()] += ck.info(name).nbytes();
        EXPECT_EQ(fs::path(ck.file_of(name).path()).filename().string(), file.get<std::string>()) << name;
    }
    ASSERT_EQ(file_bytes.size(), ck.num_files());
    size_t i = 0;
    const size_t n = file_bytes.size();
    for (const auto& [file, bytes] : file_bytes) {
        char want[64];
        std::snprintf(want, sizeof(want), "model-%05zu-of-%05zu.safetensors", ++i, n);
        EXPECT_EQ(file, want);
        EXPECT_LE(bytes, 4u << 20) << file;
        const SafetensorsFile f = SafetensorsFile::open(dir(0) + "/" + file);
        EXPECT_EQ(f.metadata(), (std::map<std::string, std::string>{{"format", "pt"}})) << file;
    }
}

TEST_F(SynthTiny, HasEveryTensorOfTheLayoutAndNothingElse) {
    const SynthCheckpointOptions o = tiny(0, 1);
    const std::vector<TensorSpec> specs = deepseek_v3_tensors(o.model, o.include_mtp);
    const SafetensorsCheckpoint ck = SafetensorsCheckpoint::open(dir(0));
    std::set<std::string> want;
    for (const TensorSpec& t : specs) {
        want.insert(t.name);
        const TensorInfo& info = ck.info(t.name);
        EXPECT_EQ(info.dtype, t.dtype) << t.name;
        EXPECT_EQ(info.shape, t.shape) << t.name;
    }
    const std::vector<std::string> names = ck.tensor_names();
    EXPECT_EQ(std::set<std::string>(names.begin(), names.end()), want);
    EXPECT_EQ(names.size(), specs.size());
    EXPECT_EQ(results_[0].tensors, specs.size());
}

TEST_F(SynthTiny, ConfigJsonLoadsAsThePreset) {
    ModelConfig c = ModelConfig::load(dir(0) + "/config.json");
    const ModelConfig want = synth_preset("tiny").model;
    c.source = want.source;
    EXPECT_EQ(c, want);
}

TEST_F(SynthTiny, IndexTotalSizeIsTheSumOfTensorBytes) {
    const SafetensorsCheckpoint ck = SafetensorsCheckpoint::open(dir(0));
    uint64_t sum = 0;
    for (const std::string& name : ck.tensor_names()) sum += ck.info(name).nbytes();
    const nlohmann::json index = read_json(dir(0) + "/model.safetensors.index.json");
    EXPECT_EQ(index.at("metadata").at("total_size").get<uint64_t>(), sum);
    EXPECT_EQ(index.at("weight_map").size(), ck.tensor_names().size());
    EXPECT_EQ(results_[0].bytes, sum);
}

// ---------------------------------------------------------------------------------------------------
// Determinism

TEST_F(SynthTiny, SameSeedSameBytesWhateverTheThreadCount) {
    const SafetensorsCheckpoint a = SafetensorsCheckpoint::open(dir(0)), b = SafetensorsCheckpoint::open(dir(1));
    ASSERT_EQ(a.tensor_names(), b.tensor_names());
    for (const std::string& name : a.tensor_names()) EXPECT_TRUE(same_bytes(a, b, name)) << name;
    // The files themselves too (same grouping, same headers).
    for (size_t i = 1; i <= a.num_files(); ++i) {
        char name[64];
        std::snprintf(name, sizeof(name), "model-%05zu-of-%05zu.safetensors", i, a.num_files());
        std::ifstream fa(dir(0) + "/" + name, std::ios::binary), fb(dir(1) + "/" + name, std::ios::binary);
        const std::string sa((std::istreambuf_iterator<char>(fa)), {}), sb((std::istreambuf_iterator<char>(fb)), {});
        EXPECT_TRUE(!sa.empty() && sa == sb) << name;
    }
}

TEST_F(SynthTiny, DifferentSeedDifferentBytes) {
    const SafetensorsCheckpoint a = SafetensorsCheckpoint::open(dir(0)), c = SafetensorsCheckpoint::open(dir(2));
    for (const std::string name :
         {"model.embed_tokens.weight", "model.layers.0.self_attn.q_b_proj.weight",
          "model.layers.0.self_attn.q_b_proj.weight_scale_inv", "model.layers.1.mlp.experts.3.down_proj.weight",
          "model.layers.2.mlp.gate.e_score_correction_bias", "model.layers.1.input_layernorm.weight"}) {
        EXPECT_FALSE(same_bytes(a, c, name)) << name;
    }
}

TEST_F(SynthTiny, TensorsOfOneCheckpointDiffer) {
    // Seeds derive from tensor names: two experts of one layer must not repeat each other.
    const SafetensorsCheckpoint a = SafetensorsCheckpoint::open(dir(0));
    const std::string e0 = "model.layers.1.mlp.experts.0.gate_proj.weight",
                      e1 = "model.layers.1.mlp.experts.1.gate_proj.weight";
    EXPECT_NE(std::memcmp(a.data(e0), a.data(e1), a.info(e0).nbytes()), 0);
}

// ---------------------------------------------------------------------------------------------------
// Statistics

TEST_F(SynthTiny, Fp8ExponentEntropyIsInTheRealRange) {
    const SafetensorsCheckpoint ck = SafetensorsCheckpoint::open(dir(0));
    int measured = 0;
    double sum = 0;
    for (const std::string& name : ck.tensor_names()) {
        const TensorInfo& t = ck.info(name);
        if (t.dtype != DType::F8_E4M3 || t.numel() < (128u << 10)) continue;
        const double h = exponent_entropy_bits(DType::F8_E4M3, ck.data(name), t.numel());
        EXPECT_GE(h, 2.5) << name;
        EXPECT_LE(h, 3.0) << name;
        sum += h;
        ++measured;
    }
    ASSERT_GT(measured, 10);
    std::printf("[ tiny, seed 0 ] mean FP8 exponent entropy %.4f bits over %d weights\n", sum / measured, measured);
}

TEST_F(SynthTiny, ScalesArePositiveAndDequantizedStdIsWeightStd) {
    const SafetensorsCheckpoint ck = SafetensorsCheckpoint::open(dir(0));
    const double want = tiny(0, 1).weight_std;
    double sum = 0, sum2 = 0;
    uint64_t n = 0;
    std::set<uint32_t> distinct_scales;
    for (const std::string& name : ck.tensor_names()) {
        const TensorInfo& t = ck.info(name);
        if (t.dtype != DType::F8_E4M3) continue;
        const TensorInfo& s = ck.info(name + "_scale_inv");
        ASSERT_EQ(s.dtype, DType::F32) << name;
        std::vector<float> scale(s.numel());
        std::memcpy(scale.data(), ck.data(s.name), s.nbytes());
        for (float v : scale) {
            ASSERT_TRUE(std::isfinite(v) && v > 0) << s.name << " has scale " << v;
            uint32_t bits = 0;
            std::memcpy(&bits, &v, 4);
            distinct_scales.insert(bits);
        }
        std::vector<float> w(t.numel());
        dequantize_fp8_block(ck.data(name), scale.data(), t.shape[0], t.shape[1], w.data());
        for (float v : w) {
            sum += v;
            sum2 += static_cast<double>(v) * v;
        }
        n += t.numel();
    }
    const double mean = sum / static_cast<double>(n);
    const double std = std::sqrt(sum2 / static_cast<double>(n) - mean * mean);
    std::printf("[ tiny, seed 0 ] dequantized FP8 weights: %llu values, mean %.3g, std %.5f (want %.5f)\n",
                static_cast<unsigned long long>(n), mean, std, want);
    EXPECT_NEAR(std, want, 0.05 * want);
    EXPECT_LT(std::fabs(mean), 0.01 * want);
    EXPECT_GT(distinct_scales.size(), 100u);  // blocks differ in scale
}

TEST_F(SynthTiny, NormsNearOneAndBiasesSmall) {
    const SafetensorsCheckpoint ck = SafetensorsCheckpoint::open(dir(0));
    for (const std::string& name : ck.tensor_names()) {
        const TensorInfo& t = ck.info(name);
        if (t.dtype == DType::BF16 && t.shape.size() == 1) {
            const auto* v = reinterpret_cast<const uint16_t*>(ck.data(name));
            double sum = 0;
            for (uint64_t i = 0; i < t.numel(); ++i) sum += bf16_to_float(v[i]);
            EXPECT_NEAR(sum / static_cast<double>(t.numel()), 1.0, 0.05) << name;
        }
        if (t.dtype == DType::F32 && name.find("e_score_correction_bias") != std::string::npos) {
            const auto* v = reinterpret_cast<const float*>(ck.data(name));
            for (uint64_t i = 0; i < t.numel(); ++i) EXPECT_LT(std::fabs(v[i]), 0.1f) << name;
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// YAML overrides

std::string write_file(const TempDir& dir, const std::string& name, const std::string& text) {
    const std::string path = dir.file(name);
    std::ofstream(path) << text;
    return path;
}

TEST(SynthYaml, OverridesApply) {
    TempDir tmp("yaml");
    const std::string path = write_file(tmp, "o.yaml",
                                        "base: tiny\n"
                                        "seed: 7\n"
                                        "max_file_mb: 0.5\n"
                                        "weight_std: 0.01\n"
                                        "student_dof: 5\n"
                                        "include_mtp: false\n"
                                        "config:\n"
                                        "  num_hidden_layers: 2\n"
                                        "  q_lora_rank: null\n"
                                        "  rms_norm_eps: 1.0e-5\n"
                                        "  scoring_func: softmax\n"
                                        "  norm_topk_prob: false\n"
                                        "  rope_scaling: {factor: 8}\n");
    const SynthCheckpointOptions o = synth_options_from_yaml(path);
    EXPECT_EQ(o.seed, 7u);
    EXPECT_EQ(o.max_file_bytes, 512u << 10);
    EXPECT_DOUBLE_EQ(o.weight_std, 0.01);
    EXPECT_DOUBLE_EQ(o.student_dof, 5.0);
    EXPECT_FALSE(o.include_mtp);
    EXPECT_EQ(o.model.num_hidden_layers, 2);
    EXPECT_EQ(o.model.q_lora_rank, 0);
    EXPECT_DOUBLE_EQ(o.model.rms_norm_eps, 1e-5);
    EXPECT_EQ(o.model.scoring_func, "softmax");
    EXPECT_FALSE(o.model.norm_topk_prob);
    EXPECT_DOUBLE_EQ(o.model.rope_scaling.factor, 8.0);
    EXPECT_EQ(o.model.rope_scaling.original_max_position_embeddings, 256);  // kept from the preset
    EXPECT_EQ(o.model.hidden_size, 128);                                    // kept from the preset

    const std::string small = write_file(tmp, "s.yaml", "base: small\n");
    EXPECT_EQ(synth_options_from_yaml(small).model.hidden_size, 2048);
    const std::string empty = write_file(tmp, "e.yaml", "");
    EXPECT_EQ(synth_options_from_yaml(empty).model, synth_preset("tiny").model);
}

TEST(SynthYaml, UnknownKeysAndBadValuesAreNamed) {
    TempDir tmp("yaml-bad");
    const auto err = [&](const std::string& text) {
        const std::string path = write_file(tmp, "bad.yaml", text);
        return error_of([&] { synth_options_from_yaml(path); });
    };
    std::string e = err("seeed: 3\n");
    EXPECT_NE(e.find("'seeed'"), std::string::npos) << e;
    EXPECT_NE(e.find("allowed keys: base, config, include_mtp"), std::string::npos) << e;
    EXPECT_NE(e.find("bad.yaml"), std::string::npos) << e;
    e = err("config:\n  hiden_size: 64\n");
    EXPECT_NE(e.find("'hiden_size'"), std::string::npos) << e;
    e = err("config:\n  rope_scaling: {facter: 2}\n");
    EXPECT_NE(e.find("config.rope_scaling.facter"), std::string::npos) << e;
    e = err("config:\n  n_group: 3\n");  // 8 experts are not divisible into 3 groups
    EXPECT_NE(e.find("n_routed_experts = 8: must be divisible by n_group = 3"), std::string::npos) << e;
    e = err("config:\n  hidden_size: wide\n");
    EXPECT_NE(e.find("'hidden_size' must be an integer"), std::string::npos) << e;
    e = err("base: medium\n");
    EXPECT_NE(e.find("'medium'"), std::string::npos) << e;
    e = err("student_dof: 2\n");
    EXPECT_NE(e.find("student_dof"), std::string::npos) << e;
    e = err("seed: -1\n");
    EXPECT_NE(e.find("seed"), std::string::npos) << e;
    e = err("include_mtp: maybe\n");
    EXPECT_NE(e.find("include_mtp"), std::string::npos) << e;
    e = err("[1, 2]\n");
    EXPECT_NE(e.find("must be a YAML map"), std::string::npos) << e;
    e = error_of([&] { synth_options_from_yaml(tmp.file("missing.yaml")); });
    EXPECT_NE(e.find("missing.yaml"), std::string::npos) << e;
}

// ---------------------------------------------------------------------------------------------------
// Rewriting a directory; unquantized models

TEST(SynthCheckpoint, RewriteReplacesFilesAndRemovesStaleShards) {
    TempDir tmp("rewrite");
    SynthCheckpointOptions o = tiny(3, 2);
    o.model.num_hidden_layers = 1;  // dense only, about 1.4 MB
    o.model.first_k_dense_replace = 1;
    o.max_file_bytes = 256 << 10;
    const SynthCheckpointResult many = write_synth_checkpoint(tmp.str(), o);
    ASSERT_GT(many.files, 3u);
    o.max_file_bytes = 64 << 20;
    o.seed = 4;
    const SynthCheckpointResult one = write_synth_checkpoint(tmp.str(), o);
    EXPECT_EQ(one.files, 1u);
    std::vector<std::string> left;
    for (const auto& e : fs::directory_iterator(tmp.str())) left.push_back(e.path().filename().string());
    std::sort(left.begin(), left.end());
    EXPECT_EQ(left, (std::vector<std::string>{"config.json", "model-00001-of-00001.safetensors",
                                              "model.safetensors.index.json"}));
    EXPECT_EQ(SafetensorsCheckpoint::open(tmp.str()).num_files(), 1u);
}

TEST(SynthCheckpoint, UnquantizedConfigWritesBf16Weights) {
    TempDir tmp("bf16");
    SynthCheckpointOptions o = tiny(0, 2);
    o.model.num_hidden_layers = 2;
    o.model.quantized = false;
    write_synth_checkpoint(tmp.str(), o);
    const SafetensorsCheckpoint ck = SafetensorsCheckpoint::open(tmp.str());
    const std::vector<TensorSpec> specs = deepseek_v3_tensors(o.model);
    EXPECT_EQ(ck.tensor_names().size(), specs.size());
    for (const TensorSpec& t : specs) EXPECT_NE(t.dtype, DType::F8_E4M3) << t.name;
    EXPECT_EQ(ck.info("model.layers.1.mlp.experts.0.up_proj.weight").dtype, DType::BF16);
    EXPECT_FALSE(ModelConfig::load(tmp.file("config.json")).quantized);
}

TEST(SynthCheckpoint, InvalidOptionsAreRejected) {
    SynthCheckpointOptions o = tiny(0, 1);
    o.weight_std = 0;
    EXPECT_NE(error_of([&] { o.validate(); }).find("weight_std"), std::string::npos);
    o = tiny(0, 1);
    o.model.quantization.weight_block_size = {64, 64};
    EXPECT_NE(error_of([&] { o.validate(); }).find("[128, 128]"), std::string::npos);
}

}  // namespace
}  // namespace ecf8
