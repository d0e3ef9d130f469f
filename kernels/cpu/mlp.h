// Elementwise helpers of the feed-forward blocks on the CPU: the silu(w1 x) * (w3 x) of MLP.forward and
// Expert.forward, and the residual / weighted adds of Block.forward and MoE.forward in DeepSeek-V3's
// inference/model.py.
#pragma once

#include <cstdint>

namespace ecf8::cpu {

// out[i] = silu(gate[i]) * up[i], silu(g) = g / (1 + exp(-g)); silu is evaluated in double and rounded
// once to float, the product is a float multiply. out may alias gate or up.
void silu_mul(const float* gate, const float* up, int64_t n, float* out);

// out[i] = a[i] + b[i] (residual add). out may alias a or b.
void add(const float* a, const float* b, int64_t n, float* out);

// out[i] += scale * x[i], as y[idx] += expert(x[idx]) * weights[idx, top, None] of MoE.forward: the product
// is rounded to float before the add (no fused multiply-add), as the reference's two tensor ops do.
void add_scaled(const float* x, float scale, int64_t n, float* out);

}  // namespace ecf8::cpu
