// Mixture-of-experts routing on the CPU: mirrors Gate.forward of DeepSeek-V3's inference/model.py.
#include "kernels/cpu/moe_gate.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "common/error.h"
#include "kernels/core/moe_route_core.h"
#include "kernels/cpu/linear.h"
#include "kernels/cpu/sampling.h"
#include "sharding/model_config.h"

namespace ecf8::cpu {

namespace {

// Larger value first, then lower index: a strict total order on (value, index) pairs without NaN.
struct ByValueThenIndex {
    const float* v;
    bool operator()(int32_t a, int32_t b) const { return v[a] != v[b] ? v[a] > v[b] : a < b; }
};

// The softmax-scored gate (DeepSeek-V2), on the CPU only: the same selection as the sigmoid core.
void route_softmax(const float* logits, const float* bias, int64_t n_tokens, const GateParams& p, float* weights,
                   int32_t* experts) {
    const int64_t E = p.n_experts, G = p.n_group, per_group = E / G;
    constexpr float kNegInf = -std::numeric_limits<float>::infinity();
    std::vector<float> scores(static_cast<size_t>(E)), choice(static_cast<size_t>(E)),
        group_scores(static_cast<size_t>(G));
    std::vector<int32_t> order(static_cast<size_t>(E)), group_order(static_cast<size_t>(G));
    for (int64_t t = 0; t < n_tokens; ++t) {
        const float* lg = logits + t * E;
        for (int64_t e = 0; e < E; ++e)
            ECF8_CHECK(!std::isnan(lg[e]), "moe_route: a router logit of token " << t << " is NaN");
        softmax(lg, E, scores.data());
        for (int64_t e = 0; e < E; ++e) choice[e] = bias != nullptr ? scores[e] + bias[e] : scores[e];
        if (G > 1) {
            for (int64_t g = 0; g < G; ++g)
                group_scores[g] =
                    core::group_score(choice.data() + g * per_group, static_cast<int>(per_group), bias != nullptr);
            std::iota(group_order.begin(), group_order.end(), 0);
            std::partial_sort(group_order.begin(), group_order.begin() + p.topk_group, group_order.end(),
                              ByValueThenIndex{group_scores.data()});
            std::vector<bool> keep(static_cast<size_t>(G), false);
            for (int64_t i = 0; i < p.topk_group; ++i) keep[static_cast<size_t>(group_order[i])] = true;
            for (int64_t g = 0; g < G; ++g)
                if (!keep[static_cast<size_t>(g)]) std::fill_n(choice.data() + g * per_group, per_group, kNegInf);
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
        const float s = static_cast<float>(sum);
        for (int64_t k = 0; k < p.topk; ++k) w[k] = (p.norm_topk_prob ? w[k] / s : w[k]) * p.routed_scaling_factor;
    }
}

}  // namespace

void check_gate_params(const GateParams& p) {
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

core::RouteShape route_shape(const GateParams& p) {
    check_gate_params(p);
    ECF8_CHECK(
        p.n_experts <= core::kRouteMaxExperts && p.n_group <= core::kRouteMaxGroups && p.topk <= core::kRouteMaxTopk,
        "moe gate: n_experts " << p.n_experts << ", n_group " << p.n_group << ", topk " << p.topk
                               << " exceed the router's limits (" << core::kRouteMaxExperts << ", "
                               << core::kRouteMaxGroups << ", " << core::kRouteMaxTopk << ")");
    core::RouteShape r;
    r.n_experts = static_cast<int>(p.n_experts);
    r.n_group = static_cast<int>(p.n_group);
    r.topk_group = static_cast<int>(p.topk_group);
    r.topk = static_cast<int>(p.topk);
    r.norm_topk_prob = p.norm_topk_prob;
    r.scaling = p.routed_scaling_factor;
    return r;
}

void moe_route(const float* logits, const float* bias, int64_t n_tokens, const GateParams& p, float* weights,
               int32_t* experts) {
    check_gate_params(p);
    ECF8_CHECK(n_tokens >= 0, "moe_route: n_tokens " << n_tokens << " is negative");
    if (n_tokens == 0) return;
    ECF8_CHECK(logits != nullptr && weights != nullptr && experts != nullptr,
               "moe_route: null logits, weights or experts");
    const int64_t E = p.n_experts, G = p.n_group, per_group = E / G;
    ECF8_CHECK(bias == nullptr || G == 1 || per_group >= 2,
               "moe_route: a group-limited gate with a bias needs >= 2 experts per group, not " << per_group);
    if (p.scoring == ScoringFunc::Softmax) return route_softmax(logits, bias, n_tokens, p, weights, experts);
    const core::RouteShape shape = route_shape(p);
    alignas(4) uint8_t scratch[core::kRouteMaxScratchBytes];
    const core::RouteScratch s = core::route_scratch_at(scratch, shape);
    for (int64_t t = 0; t < n_tokens; ++t)
        ECF8_CHECK(
            core::route_token_sigmoid(logits + t * E, bias, shape, s, weights + t * p.topk, experts + t * p.topk),
            "moe_route: a router logit of token " << t << " is NaN");
}

}  // namespace ecf8::cpu
