// The CPU MoE gate (kernels/cpu/moe_gate.h) against a plain float64 version of DeepSeek-V3's Gate.forward
// (inference/model.py) on seeded random logits, plus hand-made cases for group limiting, ties and the bias.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <vector>

#include "common/error.h"
#include "kernels/cpu/moe_gate.h"
#include "sharding/model_config.h"
#include "tests/kernels/kernel_test_inputs.h"

namespace {

using namespace ecf8::cpu;
using namespace ecf8::test;
using ecf8::ModelConfig;

// moe_gate

float logit_of(double p) { return static_cast<float>(std::log(p / (1.0 - p))); }

GateParams small_gate(int64_t E, int64_t topk, int64_t G, int64_t topk_group) {
    GateParams p;
    p.n_experts = E;
    p.topk = topk;
    p.n_group = G;
    p.topk_group = topk_group;
    p.scoring = ScoringFunc::Sigmoid;
    p.norm_topk_prob = true;
    p.routed_scaling_factor = 2.5f;
    return p;
}

TEST(MoeGate, ParamsFromDeepSeekV3Config) {
    const GateParams p = gate_params(ModelConfig{});
    EXPECT_EQ(p.n_experts, 256);
    EXPECT_EQ(p.topk, 8);
    EXPECT_EQ(p.n_group, 8);
    EXPECT_EQ(p.topk_group, 4);
    EXPECT_EQ(p.scoring, ScoringFunc::Sigmoid);
    EXPECT_TRUE(p.norm_topk_prob);
    EXPECT_FLOAT_EQ(p.routed_scaling_factor, 2.5f);
}

TEST(MoeGate, GroupLimitingChangesTheChoiceAndTiesGoToTheLowerIndex) {
    // Four groups of two. Group scores (top-2 sums): 1.0, 1.2, 1.1, 0.9 -> groups 1 and 2 stay. Globally the
    // best are e0 (0.9) and e6 (0.85); within the groups the best are e2 and e3, tied at 0.6.
    const std::vector<double> s = {0.9, 0.1, 0.6, 0.6, 0.55, 0.55, 0.85, 0.05};
    std::vector<float> logits;
    for (double v : s) logits.push_back(logit_of(v));
    const std::vector<float> zero_bias(8, 0.0f);
    float w[2];
    int32_t e[2];
    moe_route(logits.data(), zero_bias.data(), 1, small_gate(8, 2, 4, 2), w, e);
    EXPECT_EQ(e[0], 2);
    EXPECT_EQ(e[1], 3);
    EXPECT_NEAR(w[0], 1.25f, 1e-6);  // 0.6 / 1.2 * 2.5
    EXPECT_NEAR(w[1], 1.25f, 1e-6);
    // Without group limiting.
    moe_route(logits.data(), zero_bias.data(), 1, small_gate(8, 2, 1, 1), w, e);
    EXPECT_EQ(e[0], 0);
    EXPECT_EQ(e[1], 6);
    EXPECT_NEAR(w[0], 0.9 / 1.75 * 2.5, 1e-6);
    EXPECT_NEAR(w[1], 0.85 / 1.75 * 2.5, 1e-6);
    // Without a bias a group scores by its maximum: groups 0 (0.9) and 3 (0.85) win instead.
    moe_route(logits.data(), nullptr, 1, small_gate(8, 2, 4, 2), w, e);
    EXPECT_EQ(e[0], 0);
    EXPECT_EQ(e[1], 6);
    // Tied groups: the lower group index wins.
    const std::vector<float> flat(8, logit_of(0.5));
    float w3[3];
    int32_t e3[3];
    moe_route(flat.data(), zero_bias.data(), 1, small_gate(8, 3, 4, 2), w3, e3);
    EXPECT_EQ(std::vector<int32_t>(e3, e3 + 3), (std::vector<int32_t>{0, 1, 2}));
    for (float v : w3) EXPECT_NEAR(v, 2.5 / 3.0, 1e-6);
}

TEST(MoeGate, BiasSelectsButWeightsComeFromTheOriginalScores) {
    const std::vector<float> logits = {logit_of(0.5), logit_of(0.4), logit_of(0.3)};
    const std::vector<float> bias = {0.0f, 0.0f, 0.3f};  // choice 0.5, 0.4, 0.6
    GateParams p = small_gate(3, 2, 1, 1);
    p.routed_scaling_factor = 1.0f;
    float w[2];
    int32_t e[2];
    moe_route(logits.data(), bias.data(), 1, p, w, e);
    EXPECT_EQ(e[0], 2);
    EXPECT_EQ(e[1], 0);
    EXPECT_NEAR(w[0], 0.3 / 0.8, 1e-6);
    EXPECT_NEAR(w[1], 0.5 / 0.8, 1e-6);
    // Without normalisation the raw scores, times the scaling factor.
    p.norm_topk_prob = false;
    p.routed_scaling_factor = 2.0f;
    moe_route(logits.data(), bias.data(), 1, p, w, e);
    EXPECT_NEAR(w[0], 0.6, 1e-6);
    EXPECT_NEAR(w[1], 1.0, 1e-6);
}

// A straightforward double version of Gate.forward with full sorts, for random inputs.
void naive_route(const float* lg, const float* bias, const GateParams& p, std::vector<double>* w,
                 std::vector<int32_t>* e) {
    const int64_t E = p.n_experts, G = p.n_group, per = E / G;
    std::vector<double> sc(E), ch(E);
    double mx = -1e300, sum = 0.0;
    for (int64_t i = 0; i < E; ++i) mx = std::max(mx, static_cast<double>(lg[i]));
    for (int64_t i = 0; i < E; ++i) {
        sc[i] = p.scoring == ScoringFunc::Sigmoid ? 1.0 / (1.0 + std::exp(-static_cast<double>(lg[i])))
                                                  : std::exp(static_cast<double>(lg[i]) - mx);
        sum += sc[i];
    }
    for (int64_t i = 0; i < E; ++i) {
        if (p.scoring == ScoringFunc::Softmax) sc[i] /= sum;
        ch[i] = sc[i] + (bias ? bias[i] : 0.0);
    }
    if (G > 1) {
        std::vector<std::pair<double, int64_t>> gs;
        for (int64_t g = 0; g < G; ++g) {
            std::vector<double> v(ch.begin() + g * per, ch.begin() + (g + 1) * per);
            std::sort(v.rbegin(), v.rend());
            gs.push_back({-(bias ? v[0] + v[1] : v[0]), g});
        }
        std::sort(gs.begin(), gs.end());
        for (int64_t k = p.topk_group; k < G; ++k) {
            std::fill(ch.begin() + gs[k].second * per, ch.begin() + (gs[k].second + 1) * per, -1e300);
        }
    }
    std::vector<std::pair<double, int32_t>> ord;
    for (int64_t i = 0; i < E; ++i) ord.push_back({-ch[i], static_cast<int32_t>(i)});
    std::sort(ord.begin(), ord.end());
    e->clear();
    w->clear();
    double tot = 0.0;
    for (int64_t k = 0; k < p.topk; ++k) {
        e->push_back(ord[k].second);
        w->push_back(sc[ord[k].second]);
        tot += w->back();
    }
    for (auto& v : *w) v = (p.norm_topk_prob ? v / tot : v) * p.routed_scaling_factor;
}

TEST(MoeGate, RandomTokensMatchDoubleReference) {
    const int64_t T = 20, E = 64;
    const auto logits = uniform(T * E, 15, 4.0);
    const auto bias = uniform(E, 16, 0.1);
    for (const auto scoring : {ScoringFunc::Sigmoid, ScoringFunc::Softmax}) {
        for (const bool with_bias : {true, false}) {
            GateParams p = small_gate(E, 6, 8, 3);
            p.scoring = scoring;
            p.norm_topk_prob = scoring == ScoringFunc::Sigmoid;
            std::vector<float> w(T * 6);
            std::vector<int32_t> e(T * 6);
            const float* b = with_bias ? bias.data() : nullptr;
            moe_route(logits.data(), b, T, p, w.data(), e.data());
            for (int64_t t = 0; t < T; ++t) {
                std::vector<double> rw;
                std::vector<int32_t> re;
                naive_route(logits.data() + t * E, b, p, &rw, &re);
                EXPECT_EQ(std::vector<int32_t>(e.begin() + t * 6, e.begin() + (t + 1) * 6), re) << "token " << t;
                for (int k = 0; k < 6; ++k) EXPECT_NEAR(w[t * 6 + k], rw[k], kRel * rw[k]) << "token " << t;
            }
        }
    }
}

TEST(MoeGate, RejectsBadParams) {
    std::vector<float> lg(8, 0.0f), w(8);
    std::vector<int32_t> e(8);
    EXPECT_THROW(moe_route(lg.data(), nullptr, 1, small_gate(8, 2, 3, 1), w.data(), e.data()), ecf8::Error);
    EXPECT_THROW(moe_route(lg.data(), nullptr, 1, small_gate(8, 5, 4, 2), w.data(), e.data()), ecf8::Error);
    EXPECT_THROW(moe_route(lg.data(), nullptr, 1, small_gate(8, 2, 4, 5), w.data(), e.data()), ecf8::Error);
    lg[3] = kNaN;
    EXPECT_THROW(moe_route(lg.data(), nullptr, 1, small_gate(8, 2, 1, 1), w.data(), e.data()), ecf8::Error);
}

}  // namespace
