// Elementwise helpers of the feed-forward blocks on the CPU (MLP.forward, Expert.forward, Block.forward and
// MoE.forward of DeepSeek-V3's inference/model.py).
#include "kernels/cpu/mlp.h"

#include <cmath>

#include "common/error.h"
#include "kernels/core/elementwise_core.h"

namespace ecf8::cpu {

void silu_mul(const float* gate, const float* up, int64_t n, float* out) {
    ECF8_CHECK(n >= 0, "silu_mul: n " << n << " is negative");
    if (n == 0) return;
    ECF8_CHECK(gate != nullptr && up != nullptr && out != nullptr, "silu_mul: null gate, up or out");
    for (int64_t i = 0; i < n; ++i) {
        out[i] = core::silu_mul_one(gate[i], up[i]);
    }
}

void add(const float* a, const float* b, int64_t n, float* out) {
    ECF8_CHECK(n >= 0, "add: n " << n << " is negative");
    if (n == 0) return;
    ECF8_CHECK(a != nullptr && b != nullptr && out != nullptr, "add: null a, b or out");
    for (int64_t i = 0; i < n; ++i) out[i] = core::add_one(a[i], b[i]);
}

void add_scaled(const float* x, float scale, int64_t n, float* out) {
    ECF8_CHECK(n >= 0, "add_scaled: n " << n << " is negative");
    if (n == 0) return;
    ECF8_CHECK(x != nullptr && out != nullptr, "add_scaled: null x or out");
    for (int64_t i = 0; i < n; ++i) out[i] = core::add_scaled_one(out[i], x[i], scale);
}

}  // namespace ecf8::cpu
