// Mixture-of-experts routing on the CPU: mirrors Gate.forward of DeepSeek-V3's inference/model.py
// (scores, e_score_correction_bias, group-limited top-k, weights from the uncorrected scores).
#pragma once

#include <cstdint>

#include "kernels/core/moe_route_core.h"

namespace ecf8 {
struct ModelConfig;
}

namespace ecf8::cpu {

enum class ScoringFunc { Sigmoid, Softmax };

struct GateParams {
    int64_t n_experts = 0;   // n_routed_experts
    int64_t topk = 0;        // num_experts_per_tok
    int64_t n_group = 1;     // expert groups; 1 disables group limiting
    int64_t topk_group = 1;  // groups a token may route to
    ScoringFunc scoring = ScoringFunc::Sigmoid;
    bool norm_topk_prob = true;  // divide the top-k weights by their sum
    float routed_scaling_factor = 1.0f;
};

// The gate parameters of a config. norm_topk_prob comes from config.json (as Hugging Face does); the
// reference normalises exactly when scoring is sigmoid, which agrees for every public DeepSeek config
// (V3: sigmoid with norm_topk_prob true; V2: softmax with it false).
GateParams gate_params(const ModelConfig& cfg);
// Throws unless p describes a gate the router can run: groups dividing the experts, topk_group <= n_group,
// and topk no more than the experts of the eligible groups. Both routers (CPU and CUDA) call it.
void check_gate_params(const GateParams& p);
// The shared router core's description of a gate (kernels/core/moe_route_core.h); checks p and the core's
// size limits.
core::RouteShape route_shape(const GateParams& p);

// Routing from gate logits [n_tokens, n_experts] (x . W_gate^T). For each token:
//   scores = sigmoid(logits) or softmax(logits) (float; sigmoid evaluated in double and rounded once);
//   choice = scores + bias (bias: e_score_correction_bias [n_experts], or null when the checkpoint has none);
//   with n_group > 1, a group's score is the sum of its two largest choice values when bias is given, its
//   largest otherwise; only the topk_group best groups stay eligible;
//   experts = the topk largest eligible choice values, in descending order;
//   weights = scores (not choice) of those experts, divided by their sum when norm_topk_prob, times
//   routed_scaling_factor.
// Ties (torch.topk leaves them unspecified) go to the larger value first and then the lower index, for
// groups and experts alike, so the result is deterministic. NaN logits are errors.
// weights and experts are [n_tokens, topk].
void moe_route(const float* logits, const float* bias, int64_t n_tokens, const GateParams& p, float* weights,
               int32_t* experts);

}  // namespace ecf8::cpu
