// CUDA twin of kernels/cpu/moe_gate.h moe_route (sigmoid scoring, DeepSeek-V3's gate): one thread per token,
// the same selection order as the CPU (larger value first, lower index on ties) and the same rounding, so
// the picked experts and their weights are bit-identical.
#include <cmath>

#include "common/error.h"
#include "kernels/cuda/ops.cuh"

namespace ecf8::cuda {
namespace {

constexpr int kMaxExperts = 512;
constexpr int kMaxGroups = 64;
constexpr int kMaxTopk = 32;

// Index of the largest v[i] over i in [0, n) not yet taken: lower index on ties.
__device__ int take_largest(const float* v, int n, bool* taken) {
    int best = -1;
    for (int i = 0; i < n; ++i)
        if (!taken[i] && (best < 0 || v[i] > v[best])) best = i;
    taken[best] = true;
    return best;
}

__global__ void route_kernel(const float* logits, const float* bias, int64_t n_tokens, int n_experts, int n_group,
                             int topk_group, int topk, bool norm_topk_prob, float scaling, float* weights,
                             int32_t* experts) {
    const int64_t t = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
    if (t >= n_tokens) return;
    float scores[kMaxExperts], choice[kMaxExperts];
    bool taken[kMaxExperts];
    const float* lg = logits + t * n_experts;
    for (int e = 0; e < n_experts; ++e) {
        scores[e] = static_cast<float>(1.0 / (1.0 + exp(-static_cast<double>(lg[e]))));
        choice[e] = bias != nullptr ? __fadd_rn(scores[e], bias[e]) : scores[e];
        taken[e] = false;
    }
    if (n_group > 1) {
        const int per_group = n_experts / n_group;
        float group_score[kMaxGroups];
        bool group_taken[kMaxGroups], keep[kMaxGroups];
        for (int g = 0; g < n_group; ++g) {
            const float* c = choice + g * per_group;
            float a = -INFINITY, b = -INFINITY;
            for (int i = 0; i < per_group; ++i) {
                if (c[i] > a) {
                    b = a;
                    a = c[i];
                } else if (c[i] > b) {
                    b = c[i];
                }
            }
            group_score[g] = bias != nullptr ? __fadd_rn(a, b) : a;
            group_taken[g] = keep[g] = false;
        }
        for (int i = 0; i < topk_group; ++i) keep[take_largest(group_score, n_group, group_taken)] = true;
        for (int g = 0; g < n_group; ++g)
            if (!keep[g])
                for (int i = 0; i < per_group; ++i) choice[g * per_group + i] = -INFINITY;
    }
    float w[kMaxTopk];
    double sum = 0.0;
    for (int k = 0; k < topk; ++k) {
        const int e = take_largest(choice, n_experts, taken);
        experts[t * topk + k] = e;
        w[k] = scores[e];
        sum += w[k];
    }
    const float s = static_cast<float>(sum);
    for (int k = 0; k < topk; ++k) {
        float v = norm_topk_prob ? __fdiv_rn(w[k], s) : w[k];
        weights[t * topk + k] = __fmul_rn(v, scaling);
    }
}

}  // namespace

void moe_route(const float* logits, const float* bias, int64_t n_tokens, const cpu::GateParams& p, float* weights,
               int32_t* experts, cudaStream_t stream) {
    ECF8_CHECK(p.scoring == cpu::ScoringFunc::Sigmoid, "moe_route (CUDA): only sigmoid scoring is implemented");
    ECF8_CHECK(p.n_experts <= kMaxExperts && p.n_group <= kMaxGroups && p.topk <= kMaxTopk && p.n_group >= 1 &&
                   p.n_experts % p.n_group == 0 && p.topk_group >= 1 && p.topk_group <= p.n_group,
               "moe_route (CUDA): n_experts " << p.n_experts << ", n_group " << p.n_group << ", topk " << p.topk
                                              << " outside what the kernel supports (" << kMaxExperts << ", "
                                              << kMaxGroups << ", " << kMaxTopk << ")");
    if (n_tokens <= 0) return;
    const unsigned blocks = static_cast<unsigned>((n_tokens + 63) / 64);
    route_kernel<<<blocks, 64, 0, stream>>>(logits, bias, n_tokens, static_cast<int>(p.n_experts),
                                            static_cast<int>(p.n_group), static_cast<int>(p.topk_group),
                                            static_cast<int>(p.topk), p.norm_topk_prob, p.routed_scaling_factor,
                                            weights, experts);
    CUDA_CHECK(cudaGetLastError());
}

}  // namespace ecf8::cuda
