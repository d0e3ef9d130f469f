// RMSNorm on the CPU: mirrors RMSNorm.forward (F.rms_norm) of DeepSeek-V3's inference/model.py.
#include "kernels/cpu/rmsnorm.h"

#include <cmath>

#include "common/error.h"
#include "common/float_formats.h"
#include "kernels/core/elementwise_core.h"

namespace ecf8::cpu {

void rmsnorm(const float* x, const uint16_t* w_bf16, int64_t n_tokens, int64_t dim, float eps, float* out) {
    ECF8_CHECK(n_tokens >= 0, "rmsnorm: n_tokens " << n_tokens << " is negative");
    ECF8_CHECK(dim > 0, "rmsnorm: dim " << dim << " must be positive");
    ECF8_CHECK(eps >= 0.0f, "rmsnorm: eps " << eps << " is negative");
    if (n_tokens == 0) return;
    ECF8_CHECK(x != nullptr && w_bf16 != nullptr && out != nullptr, "rmsnorm: null x, w_bf16 or out");
    for (int64_t t = 0; t < n_tokens; ++t) {
        const float* xr = x + t * dim;
        float* yr = out + t * dim;
        double ss = 0.0;
        for (int64_t i = 0; i < dim; ++i) ss += static_cast<double>(xr[i]) * xr[i];
        const float r = core::rms_factor(ss, dim, eps);
        for (int64_t i = 0; i < dim; ++i) yr[i] = core::rms_scale_one(xr[i], r, w_bf16[i]);
    }
}

}  // namespace ecf8::cpu
