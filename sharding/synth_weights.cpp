// Synthetic weights: deterministic samplers, DeepSeek-V3 block FP8 quantization, dtype conversion and
// entropy measures. See synth_weights.h.
//
// Determinism: draws use only std::mt19937_64, IEEE basic operations (+ - * / sqrt, correctly rounded
// everywhere), frexp/ldexp (exact) and the series log/exp below, so the bytes do not depend on the
// standard library or libm. Contraction into FMA is switched off where the compiler honours the pragma
// (GCC already keeps it off in ISO mode, -std=c++20).
#include "sharding/synth_weights.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstring>
#include <random>

#include "common/error.h"
#include "common/float_formats.h"

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

namespace ecf8 {
namespace {

// ---------------------------------------------------------------------------------------------------
// Portable log / exp (double, ~1 ulp), independent of libm.

constexpr double kLn2Hi = 6.93147180369123816490e-01;  // low 32 bits zero: k * kLn2Hi is exact
constexpr double kLn2Lo = 1.90821492927058770002e-10;
constexpr double kSqrtHalf = 0.70710678118654752440;

// Natural log and exp over arrays of up to kBatch elements, one series term at a time across the
// elements, so that the divisions of different elements overlap (and vectorize) instead of forming one
// chain per element; each element's operations and their order are fixed, so the bytes are too. frexp and
// ldexp work on the bits, which is exact for the normal numbers met here: logs of [2^-104, 1) and exps of
// [0, 72) (see Sampler::student_t_n).
constexpr size_t kBatch = 64;
constexpr int kLogTerms = 13;  // poly's terms below 2 / 27
constexpr int kExpTerms = 17;
constexpr uint64_t kExpMask = 0x7FFull << 52;

// ln x for finite x > 0: x = m * 2^e with m in [sqrt(1/2), sqrt(2)), then
// ln m = 2 atanh(s) = 2 (s + s^3/3 + s^5/5 + ...) with s = (m - 1) / (m + 1), |s| < 0.172; terms up to s^27
// (the next is < 1e-21 relative).
void portable_log_n(const double* x, double* out, size_t n) {
    double s[kBatch], s2[kBatch], poly[kBatch];
    for (size_t i = 0; i < n; ++i) {
        const uint64_t bits = std::bit_cast<uint64_t>(x[i]);
        const double m = std::bit_cast<double>((bits & ~kExpMask) | (uint64_t{1022} << 52));  // frexp's
        const int64_t e = static_cast<int64_t>((bits & kExpMask) >> 52) - 1022;
        const bool low = m < kSqrtHalf;
        const double mm = low ? m * 2.0 : m;
        out[i] = static_cast<double>(low ? e - 1 : e);
        s[i] = (mm - 1.0) / (mm + 1.0);
        s2[i] = s[i] * s[i];
        poly[i] = 2.0 / 27.0;
    }
    for (int k = kLogTerms - 1; k >= 0; --k) {
        const double c = 2.0 / (2 * k + 1);
        for (size_t i = 0; i < n; ++i) poly[i] = c + s2[i] * poly[i];
    }
    for (size_t i = 0; i < n; ++i) out[i] = out[i] * kLn2Hi + (out[i] * kLn2Lo + s[i] * poly[i]);
}

// e^x where the result is a normal number (x in [0, 72) here): x = k ln2 + r with |r| <= ln2 / 2, e^r by its
// Taylor series to r^17.
void portable_exp_n(const double* x, double* out, size_t n) {
    double r[kBatch], poly[kBatch];
    int64_t k[kBatch];
    for (size_t i = 0; i < n; ++i) {
        const double kd = std::floor(x[i] / 0.69314718055994530942 + 0.5);
        r[i] = (x[i] - kd * kLn2Hi) - kd * kLn2Lo;
        k[i] = static_cast<int64_t>(kd);
        poly[i] = 1.0;
    }
    for (int t = kExpTerms; t >= 1; --t) {
        const double td = t;
        for (size_t i = 0; i < n; ++i) poly[i] = 1.0 + poly[i] * r[i] / td;
    }
    for (size_t i = 0; i < n; ++i)
        out[i] = std::bit_cast<double>(std::bit_cast<uint64_t>(poly[i]) + (static_cast<uint64_t>(k[i]) << 52));
}

uint64_t splitmix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

// ---------------------------------------------------------------------------------------------------
// Samplers

// The stream is cut into chunks of kChunk draws, each from its own generator seeded by (seed, chunk),
// so any range of the stream can be produced without drawing everything before it.
constexpr size_t kChunk = 65536;

class Sampler {
public:
    Sampler(const SynthSpec& spec, uint64_t chunk)
        : rng_(splitmix64(spec.seed ^ splitmix64(chunk + 0x5EED0000ull))), dist_(spec.dist), dof_(spec.student_dof) {
        // Student-t(dof) has variance dof / (dof - 2); rescale draws to unit variance.
        t_scale_ = dist_ == WeightDist::StudentT ? std::sqrt((dof_ - 2.0) / dof_) : 1.0;
    }

    // The next n <= kBatch draws of the stream, each with zero mean and unit variance.
    void next_n(double* out, size_t n) {
        if (dist_ == WeightDist::StudentT) return student_t_n(out, n);
        for (size_t i = 0; i < n; ++i) out[i] = next_normal();
    }

    // Moves past n draws; a Student-t draw is one disc point, so its transform is skipped.
    void skip(size_t n) {
        double u = 0, v = 0;
        for (size_t i = 0; i < n; ++i) {
            if (dist_ == WeightDist::StudentT) {
                disc_point(&u, &v);
            } else {
                next_normal();
            }
        }
    }

private:
    // Uniform on [-1, 1) with 53 bits of resolution; exact.
    double uniform_pm1() { return static_cast<double>(rng_() >> 11) * 0x1p-52 - 1.0; }

    // A point uniform in the unit disc minus its centre; returns u^2 + v^2 in (0, 1).
    double disc_point(double* u, double* v) {
        for (;;) {
            *u = uniform_pm1();
            *v = uniform_pm1();
            const double w = *u * *u + *v * *v;
            if (w < 1.0 && w > 0.0) return w;
        }
    }

    // Marsaglia's polar method; yields two independent normals per disc point.
    double next_normal() {
        if (has_spare_) {
            has_spare_ = false;
            return spare_;
        }
        double u = 0, v = 0;
        const double w = disc_point(&u, &v);
        double log_w = 0;
        portable_log_n(&w, &log_w, 1);
        const double f = std::sqrt(-2.0 * log_w / w);
        spare_ = v * f;
        has_spare_ = true;
        return u * f;
    }

    // Bailey's polar method: T = u * sqrt(dof (w^(-2/dof) - 1) / w) is Student-t with dof degrees; times
    // t_scale_ for unit variance. n draws: the disc points in stream order, then log and exp of them all.
    // w is a sum of squares of nonzero multiples of 2^-52 below 1, so it lies in [2^-104, 1), and the exp's
    // argument -2 / dof * log(w) in [0, 72) since dof > 2.
    void student_t_n(double* out, size_t n) {
        double u[kBatch], w[kBatch], c[kBatch];
        for (size_t i = 0; i < n; ++i) {
            double v = 0;
            w[i] = disc_point(&u[i], &v);
        }
        portable_log_n(w, c, n);
        const double power = -2.0 / dof_;
        for (size_t i = 0; i < n; ++i) c[i] = power * c[i];
        portable_exp_n(c, c, n);
        for (size_t i = 0; i < n; ++i) out[i] = u[i] * std::sqrt(dof_ * (c[i] - 1.0) / w[i]) * t_scale_;
    }

    std::mt19937_64 rng_;
    WeightDist dist_;
    double dof_;
    double t_scale_ = 1.0;
    double spare_ = 0.0;
    bool has_spare_ = false;
};

void check_spec(const SynthSpec& spec) {
    ECF8_CHECK(spec.std > 0.0 && std::isfinite(spec.std), "synthetic weights: std must be positive, got " << spec.std);
    ECF8_CHECK(spec.dist != WeightDist::StudentT || (spec.student_dof > 2.0 && std::isfinite(spec.student_dof)),
               "synthetic weights: Student-t needs dof > 2 for a finite std, got " << spec.student_dof);
}

// Writes draws [first, first + n) of the stream, each multiplied by `scale`, converted by `convert`.
template <typename T, typename Convert>
void draw_range(const SynthSpec& spec, double scale, size_t first, T* out, size_t n, Convert convert) {
    check_spec(spec);
    size_t i = 0;
    while (i < n) {
        const size_t pos = first + i;
        const size_t chunk = pos / kChunk;
        Sampler sampler(spec, chunk);
        sampler.skip(pos - chunk * kChunk);
        const size_t end = std::min(n, i + (kChunk - pos % kChunk));
        double draws[kBatch];
        while (i < end) {
            const size_t m = std::min(kBatch, end - i);
            sampler.next_n(draws, m);
            for (size_t j = 0; j < m; ++j) out[i + j] = convert(static_cast<float>(draws[j] * scale));
            i += m;
        }
    }
}

float identity(float x) { return x; }

// ---------------------------------------------------------------------------------------------------
// Entropy tables

struct ExponentField {
    DType dtype;
    int shift;
    uint32_t mask;
};
constexpr ExponentField kExponentFields[] = {
    {DType::F8_E4M3, 3, 0xF}, {DType::F8_E5M2, 2, 0x1F}, {DType::BF16, 7, 0xFF},
    {DType::F16, 10, 0x1F},   {DType::F32, 23, 0xFF},
};

double entropy_from_counts(const uint64_t* counts, size_t bins, size_t n) {
    if (n == 0) return 0.0;
    double h = 0.0;
    for (size_t b = 0; b < bins; ++b) {
        if (counts[b] == 0) continue;
        const double p = static_cast<double>(counts[b]) / static_cast<double>(n);
        h -= p * std::log2(p);
    }
    return h;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------
// Draws

void synth_float(const SynthSpec& spec, float* out, size_t n) { draw_range(spec, spec.std, 0, out, n, identity); }

void synth_float_range(const SynthSpec& spec, size_t first, float* out, size_t n) {
    draw_range(spec, spec.std, first, out, n, identity);
}

// ---------------------------------------------------------------------------------------------------
// Block FP8

void quantize_fp8_block(const float* w, int64_t rows, int64_t cols, uint8_t* q, float* scale_inv) {
    ECF8_CHECK(rows >= 0 && cols >= 0, "quantize_fp8_block: bad shape " << rows << "x" << cols);
    const int64_t nbc = fp8_scale_blocks(cols);
    std::vector<float> amax(static_cast<size_t>(nbc));
    for (int64_t r0 = 0; r0 < rows; r0 += kFp8BlockSize) {
        const int64_t r1 = std::min(rows, r0 + kFp8BlockSize);
        const int64_t br = r0 / kFp8BlockSize;
        std::fill(amax.begin(), amax.end(), 0.0f);
        for (int64_t r = r0; r < r1; ++r) {
            for (int64_t c = 0; c < cols; ++c) {
                float& m = amax[static_cast<size_t>(c / kFp8BlockSize)];
                m = std::max(m, std::fabs(w[r * cols + c]));
            }
        }
        for (int64_t bc = 0; bc < nbc; ++bc) {
            const float a = amax[static_cast<size_t>(bc)];
            ECF8_CHECK(std::isfinite(a), "quantize_fp8_block: non-finite weight in block (" << br << ", " << bc << ")");
            scale_inv[br * nbc + bc] = a == 0.0f ? 1.0f : a / 448.0f;
        }
        for (int64_t r = r0; r < r1; ++r) {
            for (int64_t c = 0; c < cols; ++c) {
                const float s = scale_inv[br * nbc + c / kFp8BlockSize];
                q[r * cols + c] = float_to_fp8_e4m3(w[r * cols + c] / s);
            }
        }
    }
}

void dequantize_fp8_block(const uint8_t* q, const float* scale_inv, int64_t rows, int64_t cols, float* out) {
    ECF8_CHECK(rows >= 0 && cols >= 0, "dequantize_fp8_block: bad shape " << rows << "x" << cols);
    static const std::array<float, 256> kDecode = [] {
        std::array<float, 256> t{};
        for (int i = 0; i < 256; ++i) t[static_cast<size_t>(i)] = fp8_e4m3_to_float(static_cast<uint8_t>(i));
        return t;
    }();
    const int64_t nbc = fp8_scale_blocks(cols);
    for (int64_t r = 0; r < rows; ++r) {
        const float* s_row = scale_inv + (r / kFp8BlockSize) * nbc;
        for (int64_t c = 0; c < cols; ++c) {
            out[r * cols + c] = kDecode[q[r * cols + c]] * s_row[c / kFp8BlockSize];
        }
    }
}

Fp8BlockQuantized synth_fp8_block_quantized(int64_t rows, int64_t cols, const SynthSpec& spec) {
    ECF8_CHECK(rows >= 0 && cols >= 0, "synth_fp8_block_quantized: bad shape " << rows << "x" << cols);
    Fp8BlockQuantized t;
    t.rows = rows;
    t.cols = cols;
    const size_t n = static_cast<size_t>(rows) * static_cast<size_t>(cols);
    std::vector<float> w(n);
    synth_float(spec, w.data(), n);
    t.weight.resize(n);
    t.scale_inv.resize(static_cast<size_t>(fp8_scale_blocks(rows) * fp8_scale_blocks(cols)));
    quantize_fp8_block(w.data(), rows, cols, t.weight.data(), t.scale_inv.data());
    return t;
}

// ---------------------------------------------------------------------------------------------------
// Other dtypes

std::vector<uint16_t> synth_bf16(size_t n, const SynthSpec& spec) {
    std::vector<uint16_t> out(n);
    draw_range(spec, spec.std, 0, out.data(), n, [](float x) { return float_to_bf16(x); });
    return out;
}

std::vector<uint16_t> synth_f16(size_t n, const SynthSpec& spec) {
    std::vector<uint16_t> out(n);
    draw_range(spec, spec.std, 0, out.data(), n, [](float x) { return float_to_f16(x); });
    return out;
}

std::vector<uint8_t> synth_fp8_e5m2(size_t n, const SynthSpec& spec) {
    std::vector<uint8_t> out(n);
    draw_range(spec, 1.0, 0, out.data(), n, [](float x) { return float_to_fp8_e5m2(x); });
    return out;
}

// ---------------------------------------------------------------------------------------------------
// Entropy

double exponent_entropy_bits(DType dt, const void* data, size_t n) {
    const ExponentField* field = nullptr;
    for (const ExponentField& f : kExponentFields) {
        if (f.dtype == dt) field = &f;
    }
    ECF8_CHECK(field != nullptr, "exponent_entropy_bits: dtype " << dtype_name(dt)
                                                                 << " has no exponent field (use F8_E4M3, "
                                                                 << "F8_E5M2, BF16, F16 or F32)");
    const size_t size = dtype_size(dt);
    const auto* bytes = static_cast<const uint8_t*>(data);
    std::vector<uint64_t> counts(field->mask + 1, 0);
    for (size_t i = 0; i < n; ++i) {
        uint32_t v = 0;
        if (size == 1) {
            v = bytes[i];
        } else if (size == 2) {
            uint16_t h = 0;
            std::memcpy(&h, bytes + 2 * i, 2);
            v = h;
        } else {
            std::memcpy(&v, bytes + 4 * i, 4);
        }
        ++counts[(v >> field->shift) & field->mask];
    }
    return entropy_from_counts(counts.data(), counts.size(), n);
}

double byte_entropy_bits(const uint8_t* data, size_t n) {
    uint64_t counts[256] = {};
    for (size_t i = 0; i < n; ++i) ++counts[data[i]];
    return entropy_from_counts(counts, 256, n);
}

}  // namespace ecf8
