// Softmax and next-token sampling on the CPU (greedy as generate.py of DeepSeek-V3's inference code;
// seeded temperature + top-p sampling in place of its exponential race).
#include "kernels/cpu/sampling.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

#include "common/error.h"

namespace ecf8::cpu {

void softmax(const float* x, int64_t n, float* out) {
    ECF8_CHECK(n > 0, "softmax: n " << n << " must be positive");
    ECF8_CHECK(x != nullptr && out != nullptr, "softmax: null x or out");
    float m = x[0];
    for (int64_t i = 1; i < n; ++i) m = std::max(m, x[i]);
    ECF8_CHECK(std::isfinite(m), "softmax: the largest input " << m << " is not finite");
    double sum = 0.0;
    for (int64_t i = 0; i < n; ++i) sum += std::exp(static_cast<double>(x[i] - m));
    // Recomputing exp beats a double scratch buffer here and gives the same values.
    for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(std::exp(static_cast<double>(x[i] - m)) / sum);
}

int64_t argmax(const float* x, int64_t n) {
    ECF8_CHECK(n > 0, "argmax: n " << n << " must be positive");
    ECF8_CHECK(x != nullptr, "argmax: null x");
    int64_t best = -1;
    for (int64_t i = 0; i < n; ++i) {
        if (std::isnan(x[i])) continue;
        if (best < 0 || x[i] > x[best]) best = i;  // strict: the first of equal values stays
    }
    return best < 0 ? 0 : best;
}

void argmax_rows(const float* x, int64_t rows, int64_t blocks, int64_t block_len, int32_t* ids) {
    ECF8_CHECK(rows >= 0 && blocks > 0 && block_len > 0 && blocks * block_len <= INT32_MAX,
               "argmax_rows: rows " << rows << ", blocks " << blocks << ", block_len " << block_len);
    if (rows == 0) return;
    ECF8_CHECK(x != nullptr && ids != nullptr, "argmax_rows: null x or ids");
    for (int64_t r = 0; r < rows; ++r) {
        int64_t best = -1;
        float best_v = 0.0f;
        bool finite = true;
        for (int64_t b = 0; b < blocks && finite; ++b) {
            const float* part = x + (b * rows + r) * block_len;
            for (int64_t i = 0; i < block_len; ++i) {
                finite = finite && std::isfinite(part[i]);
                if (best < 0 || part[i] > best_v) best = b * block_len + i, best_v = part[i];
            }
        }
        ids[r] = finite ? static_cast<int32_t>(best) : -1;
    }
}

double sampling_uniform(uint64_t seed, uint64_t counter) {
    std::seed_seq seq{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32), static_cast<uint32_t>(counter),
                      static_cast<uint32_t>(counter >> 32)};
    std::mt19937_64 rng(seq);
    return static_cast<double>(rng() >> 11) * 0x1p-53;
}

int64_t sample_top_p(const float* logits, int64_t n, float temperature, float top_p, uint64_t seed, uint64_t counter) {
    ECF8_CHECK(n > 0, "sample_top_p: n " << n << " must be positive");
    ECF8_CHECK(logits != nullptr, "sample_top_p: null logits");
    ECF8_CHECK(std::isfinite(temperature), "sample_top_p: temperature " << temperature << " is not finite");
    ECF8_CHECK(top_p > 0.0f && top_p <= 1.0f, "sample_top_p: top_p " << top_p << " is outside (0, 1]");
    float m = -std::numeric_limits<float>::infinity();
    for (int64_t i = 0; i < n; ++i) {
        ECF8_CHECK(!std::isnan(logits[i]) && logits[i] != std::numeric_limits<float>::infinity(),
                   "sample_top_p: logits[" << i << "] = " << logits[i] << " is NaN or +inf");
        m = std::max(m, logits[i]);
    }
    ECF8_CHECK(m != -std::numeric_limits<float>::infinity(), "sample_top_p: every logit is -inf");
    if (temperature <= 0.0f) return argmax(logits, n);

    std::vector<double> w(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i)
        w[static_cast<size_t>(i)] = std::exp((static_cast<double>(logits[i]) - m) / temperature);
    std::vector<int64_t> order(static_cast<size_t>(n));
    std::iota(order.begin(), order.end(), int64_t{0});
    // A strict total order (weight, then index), so std::sort's result is unique.
    std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
        const double wa = w[static_cast<size_t>(a)], wb = w[static_cast<size_t>(b)];
        return wa != wb ? wa > wb : a < b;
    });
    // The total is summed in the same order as the nucleus, so top_p = 1 takes exactly the tokens of
    // nonzero weight.
    double total = 0.0;
    for (const int64_t i : order) total += w[static_cast<size_t>(i)];
    const double target = static_cast<double>(top_p) * total;
    double nucleus = 0.0;
    size_t k = 0;
    while (k < order.size()) {
        nucleus += w[static_cast<size_t>(order[k])];
        ++k;
        if (nucleus >= target) break;
    }
    const double r = sampling_uniform(seed, counter) * nucleus;
    double run = 0.0;
    for (size_t j = 0; j < k; ++j) {
        run += w[static_cast<size_t>(order[j])];
        if (run > r) return order[j];
    }
    // Only when rounding put r at the very end of the nucleus: its last token of nonzero weight (the
    // first token always has weight 1).
    while (k > 1 && w[static_cast<size_t>(order[k - 1])] == 0.0) --k;
    return order[k - 1];
}

}  // namespace ecf8::cpu
