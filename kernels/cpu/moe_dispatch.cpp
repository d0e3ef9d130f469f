// moe_dispatch on the CPU: a counting sort by local expert, stable in (token, slot) order.
#include "kernels/cpu/moe_dispatch.h"

#include "common/error.h"

namespace ecf8::cpu {

void moe_dispatch(const int32_t* experts, const float* weights, int64_t n_tokens, int64_t topk, int64_t expert_begin,
                  int64_t n_local, int32_t* offsets, int32_t* rows, float* scales) {
    ECF8_CHECK(n_tokens >= 0 && topk >= 1 && n_local >= 1 && expert_begin >= 0,
               "moe_dispatch: n_tokens " << n_tokens << ", topk " << topk << ", experts [" << expert_begin << ", +"
                                         << n_local << ")");
    const int64_t picks = n_tokens * topk;
    for (int64_t e = 0; e <= n_local; ++e) offsets[e] = 0;
    for (int64_t i = 0; i < picks; ++i) {
        ECF8_CHECK(experts[i] >= 0, "moe_dispatch: token " << i / topk << " has no routed expert (NaN logits?)");
        const int64_t e = experts[i] - expert_begin;
        if (e >= 0 && e < n_local) ++offsets[e + 1];
    }
    for (int64_t e = 0; e < n_local; ++e) offsets[e + 1] += offsets[e];
    // Fill in order; offsets[e] walks to the end of e's range, then is restored from its predecessor's end.
    for (int64_t i = 0; i < picks; ++i) {
        const int64_t e = experts[i] - expert_begin;
        if (e < 0 || e >= n_local) continue;
        const int32_t at = offsets[e]++;
        rows[at] = static_cast<int32_t>(i / topk);
        scales[at] = weights[i];
    }
    for (int64_t e = n_local; e > 0; --e) offsets[e] = offsets[e - 1];
    offsets[0] = 0;
}

}  // namespace ecf8::cpu
