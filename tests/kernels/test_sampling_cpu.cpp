// Host sampling (kernels/cpu/sampling.h): softmax and argmax against float64, greedy draws, seeded top-p
// draws, and the pruned nucleus against the rule done by a full sort.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <set>
#include <vector>

#include "common/error.h"
#include "kernels/cpu/sampling.h"
#include "tests/kernels/kernel_test_inputs.h"

namespace {

using namespace ecf8::cpu;
using namespace ecf8::test;

// sampling

TEST(Sampling, SoftmaxAndArgmax) {
    auto x = uniform(500, 23, 20.0);
    x[7] = -kInf;
    std::vector<float> p(x.size());
    softmax(x.data(), 500, p.data());
    double m = -1e300, sum = 0.0, total = 0.0;
    for (float v : x) m = std::max(m, static_cast<double>(v));
    for (float v : x) sum += std::exp(v - m);
    for (size_t i = 0; i < x.size(); ++i) {
        const double ref = std::exp(x[i] - m) / sum;
        ASSERT_NEAR(p[i], ref, kRel * ref + 1e-38) << i;
        total += p[i];
    }
    EXPECT_EQ(p[7], 0.0f);
    EXPECT_NEAR(total, 1.0, 1e-5);
    softmax(x.data(), 500, x.data());
    EXPECT_EQ(x, p);

    const std::vector<float> t = {1.0f, 3.0f, kNaN, 3.0f, -2.0f};
    EXPECT_EQ(argmax(t.data(), 5), 1);
    const std::vector<float> nan_first = {kNaN, -1.0f, -1.0f};
    EXPECT_EQ(argmax(nan_first.data(), 3), 1);
}

TEST(Sampling, GreedyAndTinyTemperatureEqualArgmax) {
    for (uint64_t seed = 0; seed < 20; ++seed) {
        const auto lg = uniform(1000, 100 + seed, 5.0);
        const int64_t best = argmax(lg.data(), 1000);
        EXPECT_EQ(sample_top_p(lg.data(), 1000, 0.0f, 0.9f, seed, 0), best);
        EXPECT_EQ(sample_top_p(lg.data(), 1000, 1e-6f, 1.0f, seed, 7), best);
    }
}

TEST(Sampling, SeededDrawsAreReproducibleAndStayInTheNucleus) {
    // Probabilities 0.5, 0.3, 0.15, 0.05 (shuffled positions): top_p 0.7 keeps the first two, since
    // 0.5 < 0.7 <= 0.8.
    const std::vector<float> lg = {static_cast<float>(std::log(0.15)), static_cast<float>(std::log(0.5)),
                                   static_cast<float>(std::log(0.05)), static_cast<float>(std::log(0.3))};
    int count1 = 0;
    const int draws = 4000;
    for (int c = 0; c < draws; ++c) {
        const int64_t tok = sample_top_p(lg.data(), 4, 1.0f, 0.7f, 42, static_cast<uint64_t>(c));
        ASSERT_TRUE(tok == 1 || tok == 3) << tok;
        ASSERT_EQ(tok, sample_top_p(lg.data(), 4, 1.0f, 0.7f, 42, static_cast<uint64_t>(c)));
        count1 += tok == 1;
    }
    EXPECT_NEAR(static_cast<double>(count1) / draws, 0.5 / 0.8, 0.03);
    // top_p 1 samples from all four in proportion.
    std::vector<int> counts(4, 0);
    for (int c = 0; c < draws; ++c) ++counts[sample_top_p(lg.data(), 4, 1.0f, 1.0f, 7, static_cast<uint64_t>(c))];
    const double want[4] = {0.15, 0.5, 0.05, 0.3};
    for (int i = 0; i < 4; ++i) EXPECT_NEAR(static_cast<double>(counts[i]) / draws, want[i], 0.03) << i;
    // Seeds and counters change the draw; -inf tokens are never drawn.
    std::set<int64_t> seen;
    const std::vector<float> masked = {0.0f, -kInf, 0.0f, 0.0f};
    for (uint64_t c = 0; c < 200; ++c) {
        const int64_t tok = sample_top_p(masked.data(), 4, 1.0f, 1.0f, 3, c);
        EXPECT_NE(tok, 1);
        seen.insert(tok);
    }
    EXPECT_EQ(seen.size(), 3u);
}

// sample_top_p's rule (sampling.h) written out the slow way: every token sorted, no candidate pruning.
int64_t top_p_by_full_sort(const std::vector<float>& lg, float temperature, float top_p, uint64_t seed,
                           uint64_t counter) {
    const float m = *std::max_element(lg.begin(), lg.end());
    std::vector<double> w;
    double total = 0.0;
    for (float v : lg) {
        w.push_back(std::exp((static_cast<double>(v) - m) / temperature));
        total += w.back();
    }
    const double u = sampling_uniform(seed, counter);
    std::vector<int64_t> walk(lg.size());
    std::iota(walk.begin(), walk.end(), int64_t{0});
    size_t k = walk.size();
    double bound = u * total;
    if (top_p < 1.0f) {
        std::sort(walk.begin(), walk.end(), [&](int64_t a, int64_t b) { return w[a] != w[b] ? w[a] > w[b] : a < b; });
        double sum = 0.0;
        for (k = 0; k < walk.size();) {
            sum += w[walk[k++]];
            if (sum >= static_cast<double>(top_p) * total) break;
        }
        double nucleus = 0.0;
        for (size_t j = 0; j < k; ++j) nucleus += w[walk[j]];
        bound = u * nucleus;
    }
    double run = 0.0;
    int64_t last = walk[0];
    for (size_t j = 0; j < k; ++j) {
        run += w[walk[j]];
        if (run > bound) return walk[j];
        if (w[walk[j]] != 0.0) last = walk[j];
    }
    return last;
}

// The pruned sort gives the full sort's token for every draw: vocabularies up to DeepSeek's, flat and peaked
// logits, many ties, masked tokens, weights that underflow to zero, top_p from tiny to 1.
TEST(Sampling, PrunedNucleusEqualsFullSort) {
    std::mt19937 rng(2024);
    const float top_ps[] = {1e-6f, 0.1f, 0.5f, 0.9f, 0.95f, 0.999f, 1.0f};
    for (int trial = 0; trial < 24; ++trial) {
        const size_t n = trial % 12 == 0 ? 129280 : 1 + rng() % 4000;
        std::vector<float> lg = uniform(n, 500 + trial, 0.5 + trial % 5 * 4.0);
        if (trial % 4 == 1)
            for (auto& v : lg) v = std::round(v);  // ties
        if (trial % 5 == 2)
            for (size_t i = 1; i < n; i += 3) lg[i] = -kInf;
        if (trial % 7 == 3)
            for (auto& v : lg) v *= 400.0f;  // most weights are 0 in double
        const bool big = n > 4000;           // fewer draws: the reference sorts every token each time
        for (float t : {0.05f, 0.7f, 1.0f, 3.0f}) {
            if (big && (t == 0.05f || t == 3.0f)) continue;
            for (float p : top_ps) {
                for (uint64_t c = 0; c < (big ? 2u : 3u); ++c) {
                    ASSERT_EQ(sample_top_p(lg.data(), static_cast<int64_t>(n), t, p, trial, c),
                              top_p_by_full_sort(lg, t, p, trial, c))
                        << "trial " << trial << " n " << n << " temperature " << t << " top_p " << p << " counter "
                        << c;
                }
            }
        }
    }
}

TEST(Sampling, UniformStreamIsPinned) {
    // The documented stream: mt19937_64 seeded by seed_seq{seed lo, seed hi, counter lo, counter hi}, top 53
    // bits of its first output. Both are fully specified by the C++ standard, so these values hold everywhere.
    std::seed_seq seq{1u, 0u, 2u, 0u};
    std::mt19937_64 rng(seq);
    EXPECT_EQ(sampling_uniform(1, 2), static_cast<double>(rng() >> 11) * 0x1p-53);
    // Golden values: a change here changes every seeded sample.
    EXPECT_EQ(sampling_uniform(1, 2), 0.052070160232512319);
    EXPECT_EQ(sampling_uniform(0, 0), 0.532715625326173);
    for (uint64_t c = 0; c < 1000; ++c) {
        const double u = sampling_uniform(0xDEADBEEFCAFEull, c);
        ASSERT_GE(u, 0.0);
        ASSERT_LT(u, 1.0);
    }
    EXPECT_NE(sampling_uniform(1, 2), sampling_uniform(1, 3));
    EXPECT_NE(sampling_uniform(1, 2), sampling_uniform(2, 2));
}

TEST(Sampling, RejectsBadArguments) {
    const std::vector<float> lg = {0.0f, 1.0f};
    EXPECT_THROW(sample_top_p(lg.data(), 2, 1.0f, 0.0f, 0, 0), ecf8::Error);
    EXPECT_THROW(sample_top_p(lg.data(), 2, 1.0f, 1.5f, 0, 0), ecf8::Error);
    const std::vector<float> bad = {0.0f, kNaN};
    EXPECT_THROW(sample_top_p(bad.data(), 2, 1.0f, 1.0f, 0, 0), ecf8::Error);
    const std::vector<float> all_masked = {-kInf, -kInf};
    EXPECT_THROW(sample_top_p(all_masked.data(), 2, 1.0f, 1.0f, 0, 0), ecf8::Error);
}

}  // namespace
