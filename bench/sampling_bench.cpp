// Host-side token sampling (kernels/cpu/sampling.h) at a vocabulary's size: milliseconds per row of
// sample_top_p over normally distributed logits, for several temperatures and top_p values, next to the
// full sort of every token that the previous rule needed (std::sort of indices by weight), one thread.
// The median of the repetitions is printed.
//
// Usage: sampling_bench [--vocab N] [--repeat R] [--sigma S]   (defaults: DeepSeek-V3's 129280, 15, 3)
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#include "kernels/cpu/sampling.h"

namespace {

template <class F>
double median_ms(int repeat, const F& fn) {
    std::vector<double> ms;
    for (int r = 0; r < repeat; ++r) {
        const auto t0 = std::chrono::steady_clock::now();
        fn(r);
        ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    std::nth_element(ms.begin(), ms.begin() + ms.size() / 2, ms.end());
    return ms[ms.size() / 2];
}

// What the previous rule paid for every temperature row: weights, then every token sorted by weight.
int64_t full_sort(const std::vector<float>& lg, float temperature) {
    const float m = *std::max_element(lg.begin(), lg.end());
    std::vector<double> w(lg.size());
    for (size_t i = 0; i < lg.size(); ++i) w[i] = std::exp((static_cast<double>(lg[i]) - m) / temperature);
    std::vector<int64_t> order(lg.size());
    std::iota(order.begin(), order.end(), int64_t{0});
    std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return w[a] != w[b] ? w[a] > w[b] : a < b; });
    return order[0];
}

}  // namespace

int main(int argc, char** argv) {
    int64_t vocab = 129280;
    int repeat = 15;
    double sigma = 3.0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (std::strcmp(argv[i], "--vocab") == 0)
            vocab = std::atoll(argv[i + 1]);
        else if (std::strcmp(argv[i], "--repeat") == 0)
            repeat = std::atoi(argv[i + 1]);
        else if (std::strcmp(argv[i], "--sigma") == 0)
            sigma = std::atof(argv[i + 1]);
        else {
            std::fprintf(stderr, "unknown option %s\nusage: sampling_bench [--vocab N] [--repeat R] [--sigma S]\n",
                         argv[i]);
            return 2;
        }
    }
    if (vocab <= 0 || repeat <= 0 || !(sigma > 0)) {
        std::fprintf(stderr, "sampling_bench: --vocab, --repeat and --sigma must be positive\n");
        return 2;
    }
    std::mt19937 rng(1);
    std::normal_distribution<float> normal(0.0f, static_cast<float>(sigma));
    std::vector<float> logits(static_cast<size_t>(vocab));
    for (float& v : logits) v = normal(rng);
    std::printf("vocab %lld, logits ~ N(0, %.1f), median of %d, one thread\n", static_cast<long long>(vocab), sigma,
                repeat);
    std::printf("temperature  top_p  sample_top_p ms  full sort ms\n");
    for (float t : {0.6f, 1.0f}) {
        const double sort_ms = median_ms(repeat, [&](int) {
            volatile int64_t x = full_sort(logits, t);
            (void)x;
        });
        for (float p : {0.9f, 0.95f, 1.0f}) {
            const double ms = median_ms(repeat, [&](int r) {
                volatile int64_t x = ecf8::cpu::sample_top_p(logits.data(), vocab, t, p, 7, static_cast<uint64_t>(r));
                (void)x;
            });
            std::printf("%11.1f  %5.2f  %15.2f  %12.2f\n", t, p, ms, sort_ms);
        }
    }
}
