// Routing's picks grouped by a rank's experts, where the routing ran (the device), so that the host never
// needs them: the routed-expert MLP reads its sizes from the offsets.
#pragma once

#include <cstdint>

namespace ecf8::cpu {

// For the n_local experts [expert_begin, expert_begin + n_local) of experts / weights [n_tokens, topk]:
// offsets[n_local + 1] (offsets[0] = 0), and for the picks of local expert e, at offsets[e] .. offsets[e + 1]
// in (token, slot) order, rows[] the token and scales[] the routing weight. rows / scales hold up to
// n_tokens * topk entries. A pick of an expert outside the range is another rank's; a negative expert (the
// CUDA router's mark for a token whose logits are NaN) is an error here.
void moe_dispatch(const int32_t* experts, const float* weights, int64_t n_tokens, int64_t topk, int64_t expert_begin,
                  int64_t n_local, int32_t* offsets, int32_t* rows, float* scales);

}  // namespace ecf8::cpu
