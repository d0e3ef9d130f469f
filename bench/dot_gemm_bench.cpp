// dot_gemm (kernels/cpu/dot_gemm.h) against the CPU linear it replaced (the whole weight dequantized into an
// FP32 scratch by a scalar table lookup, then OpenBLAS cblas_sgemm) at DeepSeek-V3-like shapes, FP8 and BF16
// weights, one thread each. Prints the median milliseconds of each and old / new (above 1: dot_gemm is
// faster), and the largest absolute difference between their outputs as a sanity check.
//
// Usage: dot_gemm_bench [--scalar] [--m M] [--type fp8|bf16]
//   --scalar: dot_gemm's portable path instead of AVX2; --m: that batch size (any) instead of 1, 2, 4, 16, 64
//   and 512; --type: only that weight type.
#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "common/float_formats.h"
#include "kernels/cpu/dot_gemm.h"
#include "kernels/cpu/linear.h"

namespace {

// The previous CPU dequantization: a table of the 256 e4m3 values, one multiply by the block's scale.
void scalar_dequantize(const uint8_t* w, const float* scale_inv, int64_t rows, int64_t cols, float* out) {
    float lut[256];
    for (int v = 0; v < 256; ++v) lut[v] = ecf8::fp8_e4m3_to_float(static_cast<uint8_t>(v));
    const int64_t scols = (cols + 127) / 128;
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c)
            out[r * cols + c] = lut[w[r * cols + c]] * scale_inv[(r / 128) * scols + c / 128];
}

using namespace ecf8::cpu;

struct Shape {
    int64_t n_out, k;
};

// Median seconds of fn over enough runs to fill about 0.3 s (3 to 15 runs), after one warm-up run.
template <class F>
double median_seconds(const F& fn) {
    using clock = std::chrono::steady_clock;
    auto t0 = clock::now();
    fn();
    const double first = std::chrono::duration<double>(clock::now() - t0).count();
    const int runs = std::clamp(static_cast<int>(0.3 / std::max(first, 1e-6)), 3, 15);
    std::vector<double> t;
    for (int i = 0; i < runs; ++i) {
        t0 = clock::now();
        fn();
        t.push_back(std::chrono::duration<double>(clock::now() - t0).count());
    }
    std::nth_element(t.begin(), t.begin() + runs / 2, t.end());
    return t[static_cast<size_t>(runs / 2)];
}

// Random weight bytes of the given type (FP8 without NaN bytes, scales near 2^-8) and its scales.
struct Weight {
    std::vector<uint8_t> fp8;
    std::vector<uint16_t> bf16;
    std::vector<float> scale;
    DotWeight view;
};

Weight make_weight(bool fp8, const Shape& s, std::mt19937_64& rng) {
    Weight w;
    const size_t n = static_cast<size_t>(s.n_out * s.k);
    if (fp8) {
        w.fp8.resize(n);
        for (auto& b : w.fp8) b = static_cast<uint8_t>(rng() % 0x7E) | static_cast<uint8_t>(rng() & 0x80);
        w.scale.resize(static_cast<size_t>(scale_blocks(s.n_out) * scale_blocks(s.k)));
        for (auto& v : w.scale) v = std::ldexp(1.0f + static_cast<float>(rng() % 1000) / 1000.0f, -8);
        w.view = DotWeight{DotWeightType::FP8, w.fp8.data(), w.scale.data(), 128};
    } else {
        w.bf16.resize(n);
        for (auto& b : w.bf16) b = ecf8::float_to_bf16((static_cast<float>(rng() % 2001) - 1000.0f) * 1e-4f);
        w.view = DotWeight{DotWeightType::BF16, w.bf16.data(), nullptr, 128};
    }
    return w;
}

void bench_shape(bool fp8, const Shape& s, int64_t only_m, std::mt19937_64& rng) {
    const Weight w = make_weight(fp8, s, rng);
    std::vector<float> dequant(static_cast<size_t>(s.n_out * s.k));
    std::vector<float> scratch(dot_gemm_scratch_floats(1, s.k, s.n_out));
    const std::vector<int64_t> ms =
        only_m > 0 ? std::vector<int64_t>{only_m} : std::vector<int64_t>{1, 2, 4, 16, 64, 512};
    for (int64_t m : ms) {
        std::vector<float> x(static_cast<size_t>(m * s.k));
        for (auto& v : x) v = static_cast<float>(rng() % 2001) / 1000.0f - 1.0f;
        std::vector<float> y_old(static_cast<size_t>(m * s.n_out)), y_new(y_old.size());
        const double t_old = median_seconds([&] {
            if (fp8) {
                scalar_dequantize(w.fp8.data(), w.scale.data(), s.n_out, s.k, dequant.data());
            } else {
                for (size_t i = 0; i < w.bf16.size(); ++i) dequant[i] = ecf8::bf16_to_float(w.bf16[i]);
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(m), int(s.n_out), int(s.k), 1.0f, x.data(),
                        int(s.k), dequant.data(), int(s.k), 0.0f, y_old.data(), int(s.n_out));
        });
        const double t_new =
            median_seconds([&] { dot_gemm(x.data(), m, s.k, w.view, s.n_out, y_new.data(), scratch.data()); });
        double worst = 0.0;  // largest |old - new| (|x| <= 1)
        for (size_t i = 0; i < y_old.size(); ++i) worst = std::max(worst, std::fabs(double(y_old[i]) - y_new[i]));
        std::printf("%-5s %5lld x %-5lld %4lld %10.3f %10.3f %7.2fx %10.2e\n", fp8 ? "fp8" : "bf16",
                    static_cast<long long>(s.n_out), static_cast<long long>(s.k), static_cast<long long>(m),
                    t_old * 1e3, t_new * 1e3, t_old / t_new, worst);
    }
}

}  // namespace

int main(int argc, char** argv) {
    int64_t only_m = 0;
    const char* only_type = nullptr;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--scalar") == 0) {
            dot_gemm_force_scalar(true);
        } else if (std::strcmp(argv[i], "--m") == 0 && i + 1 < argc) {
            only_m = std::atoll(argv[++i]);
        } else if (std::strcmp(argv[i], "--type") == 0 && i + 1 < argc) {
            only_type = argv[++i];
        } else {
            std::fprintf(stderr, "usage: dot_gemm_bench [--scalar] [--m M] [--type fp8|bf16]\n");
            return 2;
        }
    }
    cpu_blas_init(1);
    std::printf("dot_gemm path: %s, one thread\n", dot_gemm_uses_avx2() ? "avx2" : "scalar");
    std::printf("%-5s %-13s %4s %10s %10s %8s %10s\n", "type", "n_out x k", "M", "old ms", "dot ms", "old/dot",
                "max |diff|");
    std::mt19937_64 rng(1);
    const Shape shapes[] = {{1408, 2048}, {2048, 1408}, {4096, 2048}, {2048, 7168}};
    for (bool fp8 : {true, false}) {
        if (only_type != nullptr && std::strcmp(only_type, fp8 ? "fp8" : "bf16") != 0) continue;
        for (const Shape& s : shapes) bench_shape(fp8, s, only_m, rng);
    }
    return 0;
}
