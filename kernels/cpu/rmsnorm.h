// RMSNorm on the CPU: mirrors RMSNorm.forward (F.rms_norm) of DeepSeek-V3's inference/model.py.
#pragma once

#include <cstdint>

namespace ecf8::cpu {

// out[t, :] = x[t, :] * rsqrt(mean(x[t, :]^2) + eps) * w for t in [0, n_tokens), rows of `dim` floats.
// w is the checkpoint's BF16 weight. The mean of squares is accumulated in double (more accurate than the
// reference's float reduction); the rest is float, in the reference's order. out may alias x.
void rmsnorm(const float* x, const uint16_t* w_bf16, int64_t n_tokens, int64_t dim, float eps, float* out);

}  // namespace ecf8::cpu
