// RMSNorm on the CPU: mirrors RMSNorm.forward (F.rms_norm) of DeepSeek-V3's inference/model.py, summing the
// squares in the order kernels/core fixes for every backend.
#include "kernels/cpu/rmsnorm.h"

#include <algorithm>
#include <cmath>

#include "common/error.h"
#include "common/float_formats.h"
#include "kernels/core/elementwise_core.h"

namespace ecf8::cpu {
namespace {

// The sum of squares in core's order (kRmsPartials strided partials, then a tree), as the CUDA block sums it.
double sum_squares(const float* x, int64_t dim) {
    double partial[core::kRmsPartials] = {};
    for (int64_t base = 0; base < dim; base += core::kRmsPartials) {
        const int64_t n = std::min<int64_t>(core::kRmsPartials, dim - base);
        for (int64_t l = 0; l < n; ++l) partial[l] += static_cast<double>(x[base + l]) * x[base + l];
    }
    for (int half = core::kRmsPartials / 2; half > 0; half /= 2)
        for (int i = 0; i < half; ++i) partial[i] += partial[i + half];
    return partial[0];
}

}  // namespace

void rmsnorm(const float* x, const uint16_t* w_bf16, int64_t n_tokens, int64_t dim, float eps, float* out) {
    ECF8_CHECK(n_tokens >= 0, "rmsnorm: n_tokens " << n_tokens << " is negative");
    ECF8_CHECK(dim > 0, "rmsnorm: dim " << dim << " must be positive");
    ECF8_CHECK(eps >= 0.0f, "rmsnorm: eps " << eps << " is negative");
    if (n_tokens == 0) return;
    ECF8_CHECK(x != nullptr && w_bf16 != nullptr && out != nullptr, "rmsnorm: null x, w_bf16 or out");
    for (int64_t t = 0; t < n_tokens; ++t) {
        const float* xr = x + t * dim;
        float* yr = out + t * dim;
        const float r = core::rms_factor(sum_squares(xr, dim), dim, eps);
        for (int64_t i = 0; i < dim; ++i) yr[i] = core::rms_scale_one(xr[i], r, w_bf16[i]);
    }
}

}  // namespace ecf8::cpu
