// The MoE router of one token (DeepSeek-V3's Gate.forward with sigmoid scoring: the correction bias, group-
// limited top-k, normalized and scaled weights), written once for the CPU loop (kernels/cpu/moe_gate.cpp) and
// the CUDA kernel (kernels/cuda/moe_route.cu). Plain float operations only, so with contraction off on both
// sides (-ffp-contract=off on the host, --fmad=false for CUDA) the picks and weights are bit-identical.
// Selection order: larger value first, lower index on ties.
#pragma once

#include <cmath>
#include <cstdint>

#include "common/hd.h"

namespace ecf8::core {

inline constexpr int kRouteMaxExperts = 512;
inline constexpr int kRouteMaxGroups = 64;
inline constexpr int kRouteMaxTopk = 32;

struct RouteShape {
    int n_experts = 0;   // <= kRouteMaxExperts
    int n_group = 1;     // divides n_experts, <= kRouteMaxGroups
    int topk_group = 1;  // in [1, n_group]
    int topk = 1;        // <= kRouteMaxTopk and <= the experts of topk_group groups
    bool norm_topk_prob = true;
    float scaling = 1.0f;  // routed_scaling_factor
};

// One token's working arrays, in memory the caller gives (the CUDA kernel's shared memory: arrays of this
// size in a thread's frame would make the driver reserve local memory for every resident thread of the GPU).
struct RouteScratch {
    float* scores;        // [n_experts]
    float* choice;        // [n_experts]
    float* group_scores;  // [n_group]
    bool* taken;          // [n_experts]
    bool* group_taken;    // [n_group]
    bool* keep;           // [n_group]
};

// Bytes of one token's scratch (a multiple of 4, so consecutive tokens' scratch stays float-aligned).
ECF8_HD int64_t route_scratch_bytes(const RouteShape& p) {
    const int64_t floats = 2 * int64_t{p.n_experts} + p.n_group, flags = int64_t{p.n_experts} + 2 * p.n_group;
    return 4 * floats + (flags + 3) / 4 * 4;
}
inline constexpr int64_t kRouteMaxScratchBytes =
    4 * (2 * kRouteMaxExperts + kRouteMaxGroups) + (kRouteMaxExperts + 2 * kRouteMaxGroups + 3) / 4 * 4;

// The scratch of route_scratch_bytes(p) bytes at base (4-byte aligned).
ECF8_HD RouteScratch route_scratch_at(void* base, const RouteShape& p) {
    RouteScratch s;
    s.scores = static_cast<float*>(base);
    s.choice = s.scores + p.n_experts;
    s.group_scores = s.choice + p.n_experts;
    s.taken = reinterpret_cast<bool*>(s.group_scores + p.n_group);
    s.group_taken = s.taken + p.n_experts;
    s.keep = s.group_taken + p.n_group;
    return s;
}

// Index of the largest v[i] over i in [0, n) not yet taken (lower index on ties); marks it taken.
ECF8_HD int take_largest(const float* v, int n, bool* taken) {
    int best = -1;
    for (int i = 0; i < n; ++i)
        if (!taken[i] && (best < 0 || v[i] > v[best])) best = i;
    taken[best] = true;
    return best;
}

// A group's score: its largest choice, or (sum_top2, with the correction bias) the sum of its two largest,
// as the reference's topk(2).sum.
ECF8_HD float group_score(const float* choice, int n, bool sum_top2) {
    float a = -INFINITY, b = -INFINITY;
    for (int i = 0; i < n; ++i) {
        if (choice[i] > a) {
            b = a;
            a = choice[i];
        } else if (choice[i] > b) {
            b = choice[i];
        }
    }
    return sum_top2 ? a + b : a;
}

// Routes one token: logits [n_experts], bias [n_experts] or null; writes topk experts and weights. Returns
// false, writing nothing, when a logit is NaN (the callers report it).
ECF8_HD bool route_token_sigmoid(const float* logits, const float* bias, const RouteShape& p, const RouteScratch& work,
                                 float* weights, int32_t* experts) {
    float *scores = work.scores, *choice = work.choice;
    bool* taken = work.taken;
    for (int e = 0; e < p.n_experts; ++e) {
        if (logits[e] != logits[e]) return false;  // NaN
        scores[e] = static_cast<float>(1.0 / (1.0 + exp(-static_cast<double>(logits[e]))));
        choice[e] = bias != nullptr ? scores[e] + bias[e] : scores[e];
        taken[e] = false;
    }
    if (p.n_group > 1) {
        const int per_group = p.n_experts / p.n_group;
        float* scores_of_groups = work.group_scores;
        bool *group_taken = work.group_taken, *keep = work.keep;
        for (int g = 0; g < p.n_group; ++g) {
            scores_of_groups[g] = group_score(choice + g * per_group, per_group, bias != nullptr);
            group_taken[g] = keep[g] = false;
        }
        for (int i = 0; i < p.topk_group; ++i) keep[take_largest(scores_of_groups, p.n_group, group_taken)] = true;
        for (int g = 0; g < p.n_group; ++g)  // the other groups' experts become -inf (masked_fill_)
            if (!keep[g])
                for (int i = 0; i < per_group; ++i) choice[g * per_group + i] = -INFINITY;
    }
    double sum = 0.0;
    for (int k = 0; k < p.topk; ++k) {
        const int e = take_largest(choice, p.n_experts, taken);
        experts[k] = e;
        weights[k] = scores[e];
        sum += weights[k];
    }
    const float s = static_cast<float>(sum);
    for (int k = 0; k < p.topk; ++k) {
        const float w = p.norm_topk_prob ? weights[k] / s : weights[k];
        weights[k] = w * p.scaling;
    }
    return true;
}

}  // namespace ecf8::core
