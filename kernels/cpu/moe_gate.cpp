// Mixture-of-experts routing on the CPU: mirrors Gate.forward of DeepSeek-V3's inference/model.py.
#include "kernels/cpu/moe_gate.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "common/error.h"
#include "kernels/cpu/linear.h"
#include "kernels/cpu/sampling.h"
#include "sharding/model_config.h"

namespace ecf8::cpu {

namespace {

void check_params(const GateParams& p) {
    ECF8_CHECK(p.n_experts > 0 && p.n_experts <= INT32_MAX, "moe gate: n_experts " << p.n_experts << " is invalid");
    ECF8_CHECK(p.n_group >= 1 && p.n_experts % p.n_group == 0,
               "moe gate: n_group " << p.n_group << " must be >= 1 and divide n_experts " << p.n_experts);
    ECF8_CHECK(p.topk_group >= 1 && p.topk_group <= p.n_group,
               "moe gate: topk_group " << p.topk_group << " must be in [1, n_group " << p.n_group << "]");
    // Fewer eligible experts than topk would make the reference pick -inf (masked) experts.
    const int64_t eligible = p.n_group > 1 ? p.topk_group * (p.n_experts / p.n_group) : p.n_experts;
    ECF8_CHECK(p.topk >= 1 && p.topk <= eligible,
               "moe gate: topk " << p.topk << " must be in [1, " << eligible << "] (experts in the eligible groups)");
    ECF8_CHECK(std::isfinite(p.routed_scaling_factor),
               "moe gate: routed_scaling_factor " << p.routed_scaling_factor << " is not finite");
}

// Larger value first, then lower index: a strict total order on (value, index) pairs without NaN.
struct ByValueThenIndex {
    const float* v;
    bool operator()(int32_t a, int32_t b) const { return v[a] != v[b] ? v[a] > v[b] : a < b; }
};

}  // namespace

GateParams gate_params(const ModelConfig& cfg) {
    GateParams p;
    p.n_experts = cfg.n_routed_experts;
    p.topk = cfg.num_experts_per_tok;
    p.n_group = cfg.n_group;
    p.topk_group = cfg.topk_group;
    ECF8_CHECK(cfg.scoring_func == "sigmoid" || cfg.scoring_func == "softmax",
               "gate_params: scoring_func '" << cfg.scoring_func << "' is neither sigmoid nor softmax");
    p.scoring = cfg.scoring_func == "sigmoid" ? ScoringFunc::Sigmoid : ScoringFunc::Softmax;
    p.norm_topk_prob = cfg.norm_topk_prob;
    p.routed_scaling_factor = static_cast<float>(cfg.routed_scaling_factor);
    return p;
}

void moe_route(const float* logits, const float* bias, int64_t n_tokens, const GateParams& p, float* weights,
               int32_t* experts) {
    check_params(p);
    ECF8_CHECK(n_tokens >= 0, "moe_route: n_tokens " << n_tokens << " is negative");
    if (n_tokens == 0) return;
    ECF8_CHECK(logits != nullptr && weights != nullptr && experts != nullptr,
               "moe_route: null logits, weights or experts");
    const int64_t E = p.n_experts, G = p.n_group, per_group = E / G;
    ECF8_CHECK(bias == nullptr || G == 1 || per_group >= 2,
               "moe_route: a group-limited gate with a bias needs >= 2 experts per group, not " << per_group);
    constexpr float kNegInf = -std::numeric_limits<float>::infinity();
    std::vector<float> scores(static_cast<size_t>(E)), choice(static_cast<size_t>(E)),
        group_score(static_cast<size_t>(G));
    std::vector<int32_t> order(static_cast<size_t>(E)), group_order(static_cast<size_t>(G));

    for (int64_t t = 0; t < n_tokens; ++t) {
        const float* lg = logits + t * E;
        for (int64_t e = 0; e < E; ++e) {
            ECF8_CHECK(!std::isnan(lg[e]), "moe_route: logit " << e << " of token " << t << " is NaN");
        }
        if (p.scoring == ScoringFunc::Softmax) {
            softmax(lg, E, scores.data());
        } else {
            for (int64_t e = 0; e < E; ++e)
                scores[e] = static_cast<float>(1.0 / (1.0 + std::exp(-static_cast<double>(lg[e]))));
        }
        for (int64_t e = 0; e < E; ++e) choice[e] = bias != nullptr ? scores[e] + bias[e] : scores[e];

        if (G > 1) {
            for (int64_t g = 0; g < G; ++g) {
                const float* c = choice.data() + g * per_group;
                if (bias != nullptr) {
                    // Sum of the two largest (topk(2) values, largest first).
                    float a = kNegInf, b = kNegInf;
                    for (int64_t i = 0; i < per_group; ++i) {
                        if (c[i] > a) {
                            b = a;
                            a = c[i];
                        } else if (c[i] > b) {
                            b = c[i];
                        }
                    }
                    group_score[g] = a + b;
                } else {
                    group_score[g] = *std::max_element(c, c + per_group);
                }
            }
            std::iota(group_order.begin(), group_order.end(), 0);
            std::partial_sort(group_order.begin(), group_order.begin() + p.topk_group, group_order.end(),
                              ByValueThenIndex{group_score.data()});
            // Experts of the other groups become -inf (masked_fill_ of the reference).
            std::vector<bool> keep(static_cast<size_t>(G), false);
            for (int64_t i = 0; i < p.topk_group; ++i) keep[static_cast<size_t>(group_order[i])] = true;
            for (int64_t g = 0; g < G; ++g) {
                if (!keep[static_cast<size_t>(g)]) std::fill_n(choice.data() + g * per_group, per_group, kNegInf);
            }
        }
        std::iota(order.begin(), order.end(), 0);
        std::partial_sort(order.begin(), order.begin() + p.topk, order.end(), ByValueThenIndex{choice.data()});

        float* w = weights + t * p.topk;
        int32_t* ex = experts + t * p.topk;
        double sum = 0.0;
        for (int64_t k = 0; k < p.topk; ++k) {
            ex[k] = order[k];
            w[k] = scores[order[k]];
            sum += w[k];
        }
        if (p.norm_topk_prob) {
            const float s = static_cast<float>(sum);
            for (int64_t k = 0; k < p.topk; ++k) w[k] /= s;
        }
        for (int64_t k = 0; k < p.topk; ++k) w[k] *= p.routed_scaling_factor;
    }
}

int64_t moe_gate_scratch_floats(const GateParams& p, int64_t n_tokens, int64_t dim) {
    return p.n_experts * dim + n_tokens * p.n_experts;
}

void moe_gate(const float* x, const uint16_t* w_bf16, const float* bias, int64_t n_tokens, int64_t dim,
              const GateParams& p, float* scratch, float* weights, int32_t* experts) {
    check_params(p);
    ECF8_CHECK(dim > 0, "moe_gate: dim " << dim << " must be positive");
    ECF8_CHECK(n_tokens >= 0, "moe_gate: n_tokens " << n_tokens << " is negative");
    if (n_tokens == 0) return;
    ECF8_CHECK(scratch != nullptr, "moe_gate: null scratch");
    float* w_float = scratch;
    float* logits = scratch + p.n_experts * dim;
    linear_bf16(x, w_bf16, w_float, logits, n_tokens, dim, p.n_experts);
    moe_route(logits, bias, n_tokens, p, weights, experts);
}

}  // namespace ecf8::cpu
