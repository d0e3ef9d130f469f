// Softmax and next-token sampling on the CPU (greedy as generate.py of DeepSeek-V3's inference code;
// seeded temperature + top-p sampling in place of its exponential race).
#include "kernels/cpu/sampling.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>
#include <limits>
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

namespace {

// A token and its weight; ordered by weight, larger first, then by lower index (a strict total order).
struct Weighted {
    double w;
    int64_t token;
    bool operator<(const Weighted& o) const { return w != o.w ? w > o.w : token < o.token; }
};

// The first of run[0, k) whose running sum exceeds r; when rounding leaves r at or past the end, the last
// with nonzero weight (run[0], the largest logit's token, has weight 1).
int64_t draw(const std::vector<Weighted>& run, size_t k, double r) {
    double sum = 0.0;
    for (size_t j = 0; j < k; ++j) {
        sum += run[j].w;
        if (sum > r) return run[j].token;
    }
    while (k > 1 && run[k - 1].w == 0.0) --k;
    return run[k - 1].token;
}

// The biased binary exponent of a weight in [0, 1] (0 for zero and subnormals).
int exponent_of(double w) {
    uint64_t bits;
    std::memcpy(&bits, &w, sizeof(bits));
    return static_cast<int>(bits >> 52);
}

// The nucleus of top_p < 1 (see sampling.h), sorted. Only the tokens that can be in it are sorted: those
// whose weight is at least 2^(e - 1023), with e the highest exponent at which the weights of that exponent
// and above already sum to the target with room to spare (1e-9 relative; two orders of summing n weights
// differ by at most n * 2^-53 relative). If the sorted candidates still fall short, every token is taken.
std::vector<Weighted> nucleus(const std::vector<double>& w, double target, size_t* k) {
    constexpr int kExponents = 2048;
    std::vector<double> by_exponent(kExponents, 0.0);
    for (double v : w) by_exponent[static_cast<size_t>(exponent_of(v))] += v;
    int lowest = 0;  // all tokens
    double above = 0.0;
    for (int e = kExponents - 1; e > 0; --e) {
        above += by_exponent[static_cast<size_t>(e)];
        if (above >= target * (1.0 + 1e-9)) {
            lowest = e;
            break;
        }
    }
    for (;; lowest = 0) {
        std::vector<Weighted> cand;
        for (size_t i = 0; i < w.size(); ++i)
            if (exponent_of(w[i]) >= lowest) cand.push_back({w[i], static_cast<int64_t>(i)});
        std::sort(cand.begin(), cand.end());
        double sum = 0.0;
        for (*k = 0; *k < cand.size();) {
            sum += cand[(*k)++].w;
            if (sum >= target) return cand;
        }
        if (lowest == 0) return cand;  // rounding: the ordered sum of all falls short of the target
    }
}

}  // namespace

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
    double total = 0.0;
    for (int64_t i = 0; i < n; ++i) {
        w[static_cast<size_t>(i)] = std::exp((static_cast<double>(logits[i]) - m) / temperature);
        total += w[static_cast<size_t>(i)];
    }
    const double u = sampling_uniform(seed, counter);
    if (top_p == 1.0f) {  // every token, in index order: no sort
        const double r = u * total;
        double sum = 0.0;
        int64_t last = 0;
        for (int64_t i = 0; i < n; ++i) {
            const double v = w[static_cast<size_t>(i)];
            sum += v;
            if (sum > r) return i;
            if (v != 0.0) last = i;
        }
        return last;
    }
    size_t k = 0;
    const std::vector<Weighted> nuc = nucleus(w, static_cast<double>(top_p) * total, &k);
    double nucleus_sum = 0.0;
    for (size_t j = 0; j < k; ++j) nucleus_sum += nuc[j].w;
    return draw(nuc, k, u * nucleus_sum);
}

}  // namespace ecf8::cpu
