// Tests of the float64 DeepSeek-V3 reference (tests/reference/deepseek_reference.h) on the tiny synthetic
// checkpoint: finite, varied and deterministic logits; incremental decoding equals one prefill; causality;
// weight dequantization against the raw checkpoint; Gate.forward on hand-checked examples (group limiting,
// correction bias, ties); rotary identity at position 0 and DeepSeek-V3's YaRN frequencies computed by hand;
// MoE output as the explicit sum over the selected experts; the q_proj / BF16 variant; and clear errors.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <numeric>
#include <string>
#include <vector>

#include "codec/safetensors.h"
#include "common/error.h"
#include "common/float_formats.h"
#include "sharding/synth_checkpoint.h"
#include "tests/reference/deepseek_reference.h"
#include "tests/test_util.h"
#include "tests/tiny_model.h"

namespace ecf8::reference {
namespace {

namespace fs = std::filesystem;
using test::error_of;
using test::TempDir;

// max |a - b| / max |b|: the relative distance of a from the reference b.
double rel_diff(const std::vector<double>& a, const std::vector<double>& b) {
    EXPECT_EQ(a.size(), b.size());
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
        num = std::max(num, std::abs(a[i] - b[i]));
        den = std::max(den, std::abs(b[i]));
    }
    return den > 0 ? num / den : num;
}

std::vector<double> slice(const std::vector<double>& v, int64_t begin, int64_t count) {
    return std::vector<double>(v.begin() + begin, v.begin() + begin + count);
}

std::vector<double> random_vector(int64_t n, uint64_t seed) {
    std::vector<double> v(static_cast<size_t>(n));
    uint64_t s = seed * 6364136223846793005ull + 1442695040888963407ull;
    for (double& x : v) {  // LCG in [-1, 1): deterministic and dependency-free
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        x = static_cast<double>(s >> 11) / static_cast<double>(1ull << 53) * 2.0 - 1.0;
    }
    return v;
}

const std::vector<int32_t> kTokens = {17, 503, 2, 999, 64, 300, 777, 1023};

// One tiny checkpoint and model for the whole suite (writing and loading it is the slow part).
class ReferenceModelTest : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        dir_ = std::make_unique<TempDir>("tiny");
        write_synth_checkpoint(dir_->str(), test::tiny_model_options(0));
        model_ = std::make_unique<ReferenceModel>(ReferenceModel::load(dir_->str(), 4096));
    }
    static void TearDownTestSuite() {
        model_.reset();
        dir_.reset();
    }
    static std::vector<double> prefill(const std::vector<int32_t>& tokens) {
        KVCache cache = model_->new_cache();
        return model_->forward(tokens, 0, cache);
    }

    static std::unique_ptr<TempDir> dir_;
    static std::unique_ptr<ReferenceModel> model_;
};

std::unique_ptr<TempDir> ReferenceModelTest::dir_;
std::unique_ptr<ReferenceModel> ReferenceModelTest::model_;

// ---------------------------------------------------------------------------------------------------------------
// Whole-model properties

TEST_F(ReferenceModelTest, LogitsAreFiniteAndVaried) {
    const int64_t vocab = model_->vocab_size();
    const std::vector<double> logits = prefill(kTokens);
    ASSERT_EQ(logits.size(), kTokens.size() * static_cast<size_t>(vocab));
    for (double v : logits) ASSERT_TRUE(std::isfinite(v));
    for (size_t t = 0; t < kTokens.size(); ++t) {
        const std::vector<double> row = slice(logits, static_cast<int64_t>(t) * vocab, vocab);
        const auto [mn, mx] = std::minmax_element(row.begin(), row.end());
        EXPECT_GT(*mx - *mn, 1e-3 * std::max(std::abs(*mx), std::abs(*mn))) << "position " << t;
        if (t > 0) {
            EXPECT_GT(rel_diff(row, slice(logits, static_cast<int64_t>(t - 1) * vocab, vocab)), 1e-6);
        }
    }
}

TEST_F(ReferenceModelTest, Deterministic) {
    const std::vector<double> a = prefill(kTokens), b = prefill(kTokens);
    EXPECT_EQ(a, b);
}

TEST_F(ReferenceModelTest, IncrementalDecodingEqualsOnePrefill) {
    const int64_t vocab = model_->vocab_size();
    const std::vector<double> full = prefill(kTokens);

    KVCache cache = model_->new_cache();
    const std::vector<int32_t> first(kTokens.begin(), kTokens.begin() + 5);
    const std::vector<double> pre = model_->forward(first, 0, cache);
    EXPECT_EQ(cache.length, 5);
    EXPECT_LE(rel_diff(pre, slice(full, 0, 5 * vocab)), 1e-12);
    for (int64_t pos = 5; pos < 8; ++pos) {
        const std::vector<double> step = model_->forward({kTokens[pos]}, pos, cache);
        EXPECT_EQ(cache.length, pos + 1);
        EXPECT_LE(rel_diff(step, slice(full, pos * vocab, vocab)), 1e-12) << "position " << pos;
    }
}

TEST_F(ReferenceModelTest, ForwardLastIsTheLastRowAndTheCacheRewinds) {
    const int64_t vocab = model_->vocab_size();
    const std::vector<double> full = prefill(kTokens);
    KVCache cache = model_->new_cache();
    EXPECT_EQ(model_->forward_last(kTokens, 0, cache), slice(full, 7 * vocab, vocab));
    // Re-running positions 3.. over a longer cache overwrites them and drops the rest.
    const std::vector<double> again = model_->forward({kTokens[3], kTokens[4]}, 3, cache);
    EXPECT_EQ(cache.length, 5);
    EXPECT_LE(rel_diff(again, slice(full, 3 * vocab, 2 * vocab)), 1e-12);
}

TEST_F(ReferenceModelTest, LogitsAtPositionTDependOnlyOnTokensUpToT) {
    const int64_t vocab = model_->vocab_size();
    std::vector<int32_t> other = kTokens;
    other[4] = 5;
    other[6] = 6;
    const std::vector<double> a = prefill(kTokens), b = prefill(other);
    for (int64_t t = 0; t < 4; ++t) EXPECT_EQ(slice(a, t * vocab, vocab), slice(b, t * vocab, vocab)) << t;
    for (int64_t t = 4; t < 8; ++t) EXPECT_GT(rel_diff(slice(a, t * vocab, vocab), slice(b, t * vocab, vocab)), 1e-6);
}

TEST_F(ReferenceModelTest, Fp8WeightsAreDequantizedPerBlock) {
    const SafetensorsCheckpoint ck = SafetensorsCheckpoint::open(dir_->str());
    const std::string name = "model.layers.0.self_attn.q_b_proj.weight";  // [2048, 256]: 16 x 2 blocks
    ASSERT_EQ(ck.info(name).dtype, DType::F8_E4M3);
    const uint8_t* q = ck.data(name);
    const uint8_t* s = ck.data(name + "_scale_inv");
    const Matrix& w = model_->weight(name);
    ASSERT_EQ(w.rows, 2048);
    ASSERT_EQ(w.cols, 256);
    for (const auto& [r, c] : std::vector<std::pair<int64_t, int64_t>>{{0, 0}, {127, 128}, {128, 127}, {2047, 255}}) {
        float scale;
        std::memcpy(&scale, s + 4 * ((r / 128) * 2 + c / 128), 4);
        EXPECT_EQ(w.at(r, c), static_cast<double>(fp8_e4m3_to_float(q[r * 256 + c])) * scale) << r << ", " << c;
    }
    uint16_t bits;
    std::memcpy(&bits, ck.data("model.norm.weight") + 2 * 5, 2);
    EXPECT_EQ(model_->weight("model.norm.weight").at(0, 5), bf16_to_float(bits));
}

// ---------------------------------------------------------------------------------------------------------------
// MoE

TEST_F(ReferenceModelTest, MoeIsTheExplicitSumOverSelectedExperts) {
    const ModelConfig& c = model_->config();
    const int64_t hid = c.hidden_size;
    // SiLU-gated MLP by hand from the stored weights.
    const auto mlp_by_hand = [&](const std::string& prefix, const std::vector<double>& x) {
        const Matrix& w1 = model_->weight(prefix + ".gate_proj.weight");
        const Matrix& w3 = model_->weight(prefix + ".up_proj.weight");
        const Matrix& w2 = model_->weight(prefix + ".down_proj.weight");
        std::vector<double> act(static_cast<size_t>(w1.rows)), y(static_cast<size_t>(hid), 0.0);
        for (int64_t j = 0; j < w1.rows; ++j) {
            double g = 0, u = 0;
            for (int64_t i = 0; i < hid; ++i) {
                g += w1.at(j, i) * x[i];
                u += w3.at(j, i) * x[i];
            }
            act[j] = g / (1 + std::exp(-g)) * u;
        }
        for (int64_t o = 0; o < hid; ++o) {
            for (int64_t j = 0; j < w2.cols; ++j) y[o] += w2.at(o, j) * act[j];
        }
        return y;
    };
    for (int64_t layer = 1; layer < c.num_hidden_layers; ++layer) {
        const std::string p = "model.layers." + std::to_string(layer) + ".mlp";
        for (uint64_t seed = 0; seed < 3; ++seed) {
            const std::vector<double> x = random_vector(hid, seed + 10 * static_cast<uint64_t>(layer));
            const Routing r = model_->route_token(layer, x);
            ASSERT_EQ(r.experts.size(), 2u);
            EXPECT_NE(r.experts[0], r.experts[1]);
            // Weights are the normalised sigmoid scores of the chosen experts, times routed_scaling_factor.
            const Matrix& gate = model_->weight(p + ".gate.weight");
            std::vector<double> sig;
            for (int64_t e : r.experts) {
                double logit = 0;
                for (int64_t i = 0; i < hid; ++i) logit += gate.at(e, i) * x[i];
                sig.push_back(1 / (1 + std::exp(-logit)));
            }
            for (size_t k = 0; k < 2; ++k) {
                EXPECT_NEAR(r.weights[k], sig[k] / (sig[0] + sig[1]) * c.routed_scaling_factor, 1e-14);
            }
            std::vector<double> expected = mlp_by_hand(p + ".shared_experts", x);
            for (size_t k = 0; k < 2; ++k) {
                const std::vector<double> y = mlp_by_hand(p + ".experts." + std::to_string(r.experts[k]), x);
                EXPECT_LE(rel_diff(model_->expert(layer, r.experts[k], x), y), 1e-13);
                for (int64_t i = 0; i < hid; ++i) expected[i] += r.weights[k] * y[i];
            }
            EXPECT_LE(rel_diff(model_->moe(layer, x), expected), 1e-13);
            EXPECT_LE(rel_diff(model_->ffn(layer, x), expected), 1e-13);
        }
    }
    // Layer 0 is dense.
    const std::vector<double> x = random_vector(hid, 99);
    EXPECT_LE(rel_diff(model_->ffn(0, x), mlp_by_hand("model.layers.0.mlp", x)), 1e-13);
}

// Logit whose sigmoid is s.
double logit_of(double s) { return std::log(s / (1 - s)); }

TEST(Gate, GroupLimitingChangesTheChosenExperts) {
    GateParams p;
    p.n_experts = 8;
    p.top_k = 2;
    p.n_group = 4;
    p.topk_group = 2;
    p.route_scale = 2.5;
    // Group sums of the top-2: g0 = 1.00, g1 = 1.15, g2 = 1.08, g3 = 0.50, so groups 1 and 2 are kept and the
    // best expert overall (0, score 0.95) is dropped with its group.
    const std::vector<double> s = {0.95, 0.05, 0.60, 0.55, 0.58, 0.50, 0.30, 0.20};
    std::vector<double> logits;
    for (double v : s) logits.push_back(logit_of(v));
    const std::vector<double> zero(8, 0.0);
    Routing r = route(logits, zero, p);
    EXPECT_EQ(r.experts, (std::vector<int64_t>{2, 4}));
    ASSERT_EQ(r.weights.size(), 2u);
    EXPECT_NEAR(r.weights[0], 0.60 / 1.18 * 2.5, 1e-14);
    EXPECT_NEAR(r.weights[1], 0.58 / 1.18 * 2.5, 1e-14);

    // Without group limiting the global top-2 wins.
    GateParams flat = p;
    flat.n_group = 1;
    flat.topk_group = 1;
    EXPECT_EQ(route(logits, zero, flat).experts, (std::vector<int64_t>{0, 2}));

    // A bias of +0.2 on expert 5 lifts group 2 (0.58 + 0.70 = 1.28) and makes 5 the first choice; the weights
    // still come from the unbiased scores 0.50 and 0.60.
    std::vector<double> bias = zero;
    bias[5] = 0.2;
    r = route(logits, bias, p);
    EXPECT_EQ(r.experts, (std::vector<int64_t>{5, 2}));
    EXPECT_NEAR(r.weights[0], 0.50 / 1.10 * 2.5, 1e-14);
    EXPECT_NEAR(r.weights[1], 0.60 / 1.10 * 2.5, 1e-14);

    // A bias of +0.5 on expert 1 lifts group 0 to 1.50, so groups 0 and 1 are kept and expert 0 is back; the
    // biased expert 1 (0.55) still loses to expert 2 (0.60).
    bias = zero;
    bias[1] = 0.5;
    r = route(logits, bias, p);
    EXPECT_EQ(r.experts, (std::vector<int64_t>{0, 2}));
    EXPECT_NEAR(r.weights[0], 0.95 / 1.55 * 2.5, 1e-14);
    EXPECT_NEAR(r.weights[1], 0.60 / 1.55 * 2.5, 1e-14);
}

TEST(Gate, TiesGoToTheLowerIndex) {
    GateParams p;
    p.n_experts = 8;
    p.top_k = 3;
    p.n_group = 4;
    p.topk_group = 2;
    const std::vector<double> logits(8, 0.0), bias(8, 0.0);
    const Routing r = route(logits, bias, p);  // all groups tie: groups 0 and 1; all experts tie: 0, 1, 2
    EXPECT_EQ(r.experts, (std::vector<int64_t>{0, 1, 2}));
    for (double w : r.weights) EXPECT_NEAR(w, 1.0 / 3.0, 1e-15);

    // Groups 0, 1 and 2 tie exactly (the same two scores); groups 0 and 1 are kept, so of the three experts
    // with logit 1 the chosen ones are 1 and 2, and 4 (group 2) is not.
    const std::vector<double> tied = {0, 1, 1, 0, 1, 0, 0, 0};
    p.top_k = 2;
    EXPECT_EQ(route(tied, bias, p).experts, (std::vector<int64_t>{1, 2}));
}

TEST(Gate, SoftmaxWithoutBiasUsesTheGroupMaximum) {
    GateParams p;
    p.n_experts = 6;
    p.top_k = 2;
    p.n_group = 3;
    p.topk_group = 1;
    p.sigmoid = false;
    p.use_bias = false;
    p.route_scale = 1.0;
    // Group maxima: g0 = 3 (with a 0 beside it), g1 = 2.5 (sum 5 would win with top-2 sums), g2 = 1.
    const std::vector<double> logits = {3.0, 0.0, 2.5, 2.5, 1.0, -1.0};
    const Routing r = route(logits, {}, p);
    EXPECT_EQ(r.experts, (std::vector<int64_t>{0, 1}));
    double z = 0;
    for (double l : logits) z += std::exp(l);
    EXPECT_NEAR(r.weights[0], std::exp(3.0) / z, 1e-15);  // softmax weights are not renormalised
    EXPECT_NEAR(r.weights[1], std::exp(0.0) / z, 1e-15);
}

// ---------------------------------------------------------------------------------------------------------------
// Rope

TEST(Rope, PositionZeroIsIdentityAndRotationsCompose) {
    RopeParams p;
    p.dim = 64;
    p.max_seq_len = 4096;
    const std::vector<double> freq = yarn_inv_freq(p);
    ASSERT_EQ(freq.size(), 32u);
    const std::vector<double> x = random_vector(64, 1);
    std::vector<double> y = x;
    apply_rotary(y, freq, 0);
    EXPECT_EQ(y, x);
    // Rotating by 3 then 4 is rotating by 7; pair norms are kept.
    std::vector<double> a = x, b = x;
    apply_rotary(a, freq, 3);
    apply_rotary(a, freq, 4);
    apply_rotary(b, freq, 7);
    EXPECT_LE(rel_diff(a, b), 1e-14);
    for (size_t i = 0; i < 32; ++i) {
        EXPECT_NEAR(std::hypot(b[2 * i], b[2 * i + 1]), std::hypot(x[2 * i], x[2 * i + 1]), 1e-15);
    }
    // Pair 0 has frequency 1: (1, 0) at position 1 becomes (cos 1, sin 1).
    std::vector<double> e(64, 0.0);
    e[0] = 1.0;
    apply_rotary(e, freq, 1);
    EXPECT_DOUBLE_EQ(e[0], std::cos(1.0));
    EXPECT_DOUBLE_EQ(e[1], std::sin(1.0));
}

TEST(Rope, DeepSeekV3YarnFrequenciesByHand) {
    // DeepSeek-V3's config.json: rope_theta 10000, factor 40, beta_fast 32, beta_slow 1, original 4096,
    // qk_rope_head_dim 64; model.py's max_seq_len 163840 > 4096 turns YaRN on.
    RopeParams p;
    p.dim = 64;
    p.max_seq_len = 163840;
    p.theta = 10000;
    p.factor = 40;
    p.original_seq_len = 4096;
    p.beta_fast = 32;
    p.beta_slow = 1;
    ASSERT_TRUE(p.yarn_active());
    // d(32) = 64 ln(4096 / (64 pi)) / (2 ln 10000) = 10.47 -> floor 10; d(1) = 64 ln(4096 / (2 pi)) / 18.42 = 22.51
    // -> ceil 23.
    EXPECT_EQ(yarn_correction_range(p), (std::pair<int64_t, int64_t>{10, 23}));
    const std::vector<double> f = yarn_inv_freq(p);
    ASSERT_EQ(f.size(), 32u);
    const auto base = [](int i) { return std::pow(10000.0, -2.0 * i / 64.0); };
    EXPECT_DOUBLE_EQ(f[0], 1.0);                                  // ramp 0: unchanged
    EXPECT_DOUBLE_EQ(f[10], base(10));                            // last unchanged pair
    const double r16 = 6.0 / 13.0;                                // (16 - 10) / (23 - 10)
    EXPECT_DOUBLE_EQ(f[16], 0.01 * (1 - r16) + 0.01 / 40 * r16);  // 10000^-0.5 = 0.01
    EXPECT_DOUBLE_EQ(f[23], base(23) / 40);                       // ramp 1: interpolated by the factor
    EXPECT_DOUBLE_EQ(f[31], std::pow(10000.0, -62.0 / 64.0) / 40);
    // softmax_scale = 192^-0.5 * (0.1 ln 40 + 1)^2 (mscale 1).
    const double m = 0.1 * std::log(40.0) + 1.0;
    EXPECT_DOUBLE_EQ(attention_softmax_scale(192, p), m * m / std::sqrt(192.0));

    // max_seq_len <= original: still YaRN (the serving engines' rule, not model.py's); without rope_scaling:
    // plain rope and no mscale.
    p.max_seq_len = 4096;
    EXPECT_TRUE(p.yarn_active());
    EXPECT_EQ(yarn_inv_freq(p), f);
    p.has_scaling = false;
    EXPECT_FALSE(p.yarn_active());
    EXPECT_DOUBLE_EQ(yarn_inv_freq(p)[23], base(23));
    EXPECT_DOUBLE_EQ(attention_softmax_scale(192, p), 1.0 / std::sqrt(192.0));
}

TEST_F(ReferenceModelTest, ModelUsesYarnWhateverItsMaxSeqLen) {
    // tiny: original_max_position_embeddings 256, factor 4, qk_head_dim 128.
    const double m = 0.1 * std::log(4.0) + 1.0;
    EXPECT_DOUBLE_EQ(model_->softmax_scale(), m * m / std::sqrt(128.0));
    EXPECT_LT(model_->inv_freq().back(), std::pow(10000.0, -62.0 / 64.0));
    const ReferenceModel short_model = ReferenceModel::load(dir_->str(), 256);
    EXPECT_DOUBLE_EQ(short_model.softmax_scale(), model_->softmax_scale());
    EXPECT_EQ(short_model.inv_freq(), model_->inv_freq());
}

// ---------------------------------------------------------------------------------------------------------------
// Variants and errors

TEST(ReferenceVariant, QProjAndBf16Weights) {
    TempDir dir("qproj");
    SynthCheckpointOptions o = test::tiny_model_options(0);
    o.model.q_lora_rank = 0;
    o.model.quantized = false;
    o.model.num_hidden_layers = 2;  // one dense and one MoE layer, narrow, to keep the write quick
    o.model.intermediate_size = 256;
    o.model.moe_intermediate_size = 256;
    write_synth_checkpoint(dir.str(), o);
    const ReferenceModel m = ReferenceModel::load(dir.str(), 64);
    EXPECT_EQ(m.weight("model.layers.0.self_attn.q_proj.weight").rows, 16 * 128);
    const int64_t vocab = m.vocab_size();
    KVCache full_cache = m.new_cache(), cache = m.new_cache();
    const std::vector<double> full = m.forward(kTokens, 0, full_cache);
    for (double v : full) ASSERT_TRUE(std::isfinite(v));
    m.forward({kTokens.begin(), kTokens.begin() + 6}, 0, cache);
    EXPECT_LE(rel_diff(m.forward({kTokens[6], kTokens[7]}, 6, cache), slice(full, 6 * vocab, 2 * vocab)), 1e-12);
}

TEST_F(ReferenceModelTest, ClearErrors) {
    KVCache cache = model_->new_cache();
    EXPECT_NE(error_of([&] { model_->forward({1}, 1, cache); }).find("beyond the cached length"), std::string::npos);
    EXPECT_NE(error_of([&] { model_->forward({1024}, 0, cache); }).find("token 1024"), std::string::npos);
    EXPECT_NE(error_of([&] { model_->forward(std::vector<int32_t>(4097, 1), 0, cache); }).find("max_seq_len"),
              std::string::npos);
    EXPECT_NE(error_of([&] { model_->weight("nope"); }).find("'nope'"), std::string::npos);

    // The same tensors under an edited config.json: a q_proj the checkpoint lacks, an unsupported mscale.
    TempDir other("edited");
    for (const auto& e : fs::directory_iterator(dir_->str())) {
        if (e.path().filename() != "config.json") fs::create_symlink(e.path(), other.file(e.path().filename()));
    }
    nlohmann::json cfg;
    std::ifstream(dir_->file("config.json")) >> cfg;
    const auto write_config = [&](const nlohmann::json& j) { std::ofstream(other.file("config.json")) << j.dump(); };
    nlohmann::json edited = cfg;
    edited["q_lora_rank"] = nullptr;
    write_config(edited);
    std::string err = error_of([&] { ReferenceModel::load(other.str(), 64); });
    EXPECT_NE(err.find("missing tensor 'model.layers.0.self_attn.q_proj.weight'"), std::string::npos) << err;
    edited = cfg;
    edited["rope_scaling"]["mscale"] = 0.707;
    write_config(edited);
    err = error_of([&] { ReferenceModel::load(other.str(), 64); });
    EXPECT_NE(err.find("mscale_all_dim"), std::string::npos) << err;
    edited = cfg;
    edited["norm_topk_prob"] = false;
    write_config(edited);
    err = error_of([&] { ReferenceModel::load(other.str(), 64); });
    EXPECT_NE(err.find("norm_topk_prob"), std::string::npos) << err;
}

}  // namespace
}  // namespace ecf8::reference
