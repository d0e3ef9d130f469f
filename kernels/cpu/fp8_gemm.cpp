// DeepSeek-V3's FP8 linear on the CPU: 1x128 activation quantization and the block-scaled FP8 GEMM.
#include "kernels/cpu/fp8_gemm.h"

#include <algorithm>
#include <vector>

#include "common/error.h"
#include "kernels/cpu/linear.h"

namespace ecf8::cpu {

namespace {

// Sum of a[i] * b[i] for i < n (n <= 128) in the documented lane order. The products of two e4m3 values
// are exact in float, so fusing them into FMAs does not change the sum.
float block_dot(const float* a, const float* b, int64_t n) {
    float lane[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
    int64_t k = 0;
    for (; k + 8 <= n; k += 8) {
        for (int j = 0; j < 8; ++j) lane[j] += a[k + j] * b[k + j];
    }
    for (int j = 0; k < n; ++k, ++j) lane[j] += a[k] * b[k];
    return ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
}

}  // namespace

void quantize_activations_fp8(const float* x, int64_t rows, int64_t cols, uint8_t* q, float* scales) {
    ECF8_CHECK(rows >= 0 && cols >= 0, "quantize_activations_fp8: rows " << rows << ", cols " << cols);
    if (rows == 0 || cols == 0) return;
    ECF8_CHECK(x != nullptr && q != nullptr && scales != nullptr, "quantize_activations_fp8: null x, q or scales");
    const int64_t nkb = scale_blocks(cols, kFp8Block);
    for (int64_t r = 0; r < rows; ++r) {
        const float* xr = x + r * cols;
        uint8_t* qr = q + r * cols;
        for (int64_t kb = 0; kb < nkb; ++kb) {
            const int64_t c0 = kb * kFp8Block, c1 = std::min(cols, c0 + kFp8Block);
            float amax = 0.0f;
            for (int64_t c = c0; c < c1; ++c) amax = fp8_amax_step(amax, xr[c]);
            const float s = fp8_act_scale(amax);
            scales[r * nkb + kb] = s;
            for (int64_t c = c0; c < c1; ++c) qr[c] = fp8_act_quantize(xr[c], s);
        }
    }
}

void linear_fp8_block(const uint8_t* xq, const float* x_scales, const uint8_t* w, const float* w_scale_inv, float* y,
                      int64_t n_tokens, int64_t in, int64_t out) {
    ECF8_CHECK(n_tokens >= 0 && in > 0 && out > 0,
               "linear_fp8_block: n_tokens " << n_tokens << ", in " << in << ", out " << out);
    if (n_tokens == 0) return;
    ECF8_CHECK(xq != nullptr && x_scales != nullptr && w != nullptr && w_scale_inv != nullptr && y != nullptr,
               "linear_fp8_block: null operand");
    float lut[256];
    for (int v = 0; v < 256; ++v) lut[v] = fp8_e4m3_to_float(static_cast<uint8_t>(v));
    const int64_t nkb = scale_blocks(in, kFp8Block);
    // Decode the activations once and one weight row at a time (exact), then run the block dot products.
    std::vector<float> xf(static_cast<size_t>(n_tokens * in)), wf(static_cast<size_t>(in));
    for (int64_t i = 0; i < n_tokens * in; ++i) xf[static_cast<size_t>(i)] = lut[xq[i]];
    for (int64_t o = 0; o < out; ++o) {
        for (int64_t k = 0; k < in; ++k) wf[static_cast<size_t>(k)] = lut[w[o * in + k]];
        const float* ws = w_scale_inv + (o / kFp8Block) * nkb;
        for (int64_t t = 0; t < n_tokens; ++t) {
            const float* xr = xf.data() + t * in;
            const float* xs = x_scales + t * nkb;
            float acc = 0.0f;
            for (int64_t kb = 0; kb < nkb; ++kb) {
                const int64_t k0 = kb * kFp8Block, n = std::min(in - k0, kFp8Block);
                const float partial = block_dot(xr + k0, wf.data() + k0, n);
                acc += (partial * xs[kb]) * ws[kb];
            }
            y[t * out + o] = acc;
        }
    }
}

}  // namespace ecf8::cpu
