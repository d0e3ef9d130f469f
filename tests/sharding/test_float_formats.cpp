// Tests of common/float_formats.h: every code of every format decodes to the value of an independent
// ldexp formula and round-trips; float -> format matches a brute-force nearest-even search at every
// midpoint, next to it and at random floats; known values, hand-checked ties and e4m3 saturation.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <random>
#include <vector>

#include "common/float_formats.h"

namespace ecf8 {
namespace {

// ---------------------------------------------------------------------------------------------------
// An independent description of each format, used as the reference.

struct Format {
    const char* name;
    int ebits;
    int mbits;
    bool has_inf;  // false: e4m3fn (saturating, all-ones exponent still holds finite values)
    float (*decode)(uint32_t);
    uint32_t (*encode)(float);
};

float dec_e4m3(uint32_t c) { return fp8_e4m3_to_float(static_cast<uint8_t>(c)); }
uint32_t enc_e4m3(float f) { return float_to_fp8_e4m3(f); }
float dec_e5m2(uint32_t c) { return fp8_e5m2_to_float(static_cast<uint8_t>(c)); }
uint32_t enc_e5m2(float f) { return float_to_fp8_e5m2(f); }
float dec_bf16(uint32_t c) { return bf16_to_float(static_cast<uint16_t>(c)); }
uint32_t enc_bf16(float f) { return float_to_bf16(f); }
float dec_f16(uint32_t c) { return f16_to_float(static_cast<uint16_t>(c)); }
uint32_t enc_f16(float f) { return float_to_f16(f); }

const Format kE4M3{"e4m3", 4, 3, false, dec_e4m3, enc_e4m3};
const Format kE5M2{"e5m2", 5, 2, true, dec_e5m2, enc_e5m2};
const Format kBF16{"bf16", 8, 7, true, dec_bf16, enc_bf16};
const Format kF16{"f16", 5, 10, true, dec_f16, enc_f16};
const Format* const kFormats[] = {&kE4M3, &kE5M2, &kBF16, &kF16};

int total_bits(const Format& f) { return 1 + f.ebits + f.mbits; }
uint32_t sign_bit(const Format& f) { return 1u << (f.ebits + f.mbits); }
int bias(const Format& f) { return (1 << (f.ebits - 1)) - 1; }
uint32_t exp_all_ones(const Format& f) { return ((1u << f.ebits) - 1u) << f.mbits; }

bool is_nan_code(const Format& f, uint32_t c) {
    const uint32_t mag = c & (sign_bit(f) - 1u);
    if (!f.has_inf) return mag == sign_bit(f) - 1u;  // e4m3fn: only S.1111.111
    return mag > exp_all_ones(f);
}

// The magnitude of a non-NaN code by the textbook formula; infinity for the inf code.
double reference_magnitude(const Format& f, uint32_t mag) {
    const uint32_t e = mag >> f.mbits;
    const uint32_t m = mag & ((1u << f.mbits) - 1u);
    if (f.has_inf && mag == exp_all_ones(f)) return std::numeric_limits<double>::infinity();
    if (e == 0) return std::ldexp(static_cast<double>(m), 1 - bias(f) - f.mbits);
    return std::ldexp(static_cast<double>(m + (1u << f.mbits)), static_cast<int>(e) - bias(f) - f.mbits);
}

// Largest finite magnitude code.
uint32_t max_finite(const Format& f) { return f.has_inf ? exp_all_ones(f) - 1u : sign_bit(f) - 2u; }

// Ascending magnitudes of codes 0..max_finite, then (with infinities) the inf code standing for
// 2^(emax+1): rounding with an unbounded exponent and then overflowing is IEEE's overflow rule.
std::vector<double> magnitude_table(const Format& f) {
    std::vector<double> t;
    for (uint32_t c = 0; c <= max_finite(f); ++c) t.push_back(reference_magnitude(f, c));
    if (f.has_inf) t.push_back(std::ldexp(1.0, (1 << f.ebits) - 1 - bias(f)));
    return t;
}

// Nearest code with ties to the even code; beyond the table, its last code (saturation / infinity).
uint32_t reference_encode(const Format& f, const std::vector<double>& table, float x) {
    const uint32_t sign = std::signbit(x) ? sign_bit(f) : 0u;
    const double ax = std::fabs(static_cast<double>(x));
    const auto it = std::lower_bound(table.begin(), table.end(), ax);
    if (it == table.end()) return sign | static_cast<uint32_t>(table.size() - 1);
    const auto hi = static_cast<uint32_t>(it - table.begin());
    if (*it == ax || hi == 0) return sign | hi;
    const double d_lo = ax - table[hi - 1];
    const double d_hi = *it - ax;
    if (d_lo < d_hi) return sign | (hi - 1);
    if (d_hi < d_lo) return sign | hi;
    return sign | ((hi & 1u) ? hi - 1 : hi);
}

uint32_t float_bits(float f) { return f32_to_bits(f); }

// ---------------------------------------------------------------------------------------------------
// Decode and round trip, every code

TEST(FloatFormats, EveryCodeDecodesToTheFormulaValue) {
    for (const Format* f : kFormats) {
        SCOPED_TRACE(f->name);
        for (uint32_t c = 0; c < (1u << total_bits(*f)); ++c) {
            const float got = f->decode(c);
            const bool negative = (c & sign_bit(*f)) != 0;
            if (is_nan_code(*f, c)) {
                EXPECT_TRUE(std::isnan(got)) << std::hex << c;
                EXPECT_EQ(std::signbit(got), negative) << std::hex << c;
                continue;
            }
            const double want = reference_magnitude(*f, c & (sign_bit(*f) - 1u));
            EXPECT_EQ(static_cast<double>(got), negative ? -want : want) << std::hex << c;
            EXPECT_EQ(std::signbit(got), negative) << std::hex << c;  // -0 decodes to -0
        }
    }
}

// All codes come back unchanged, -0 included, except NaNs: e4m3 0xFF -> 0x7F (every NaN encodes as
// 0x7F); e5m2/bf16/f16 signalling NaNs come back with the quiet bit set (sign and payload kept).
TEST(FloatFormats, EveryCodeRoundTrips) {
    for (const Format* f : kFormats) {
        SCOPED_TRACE(f->name);
        const uint32_t quiet = 1u << (f->mbits - 1);
        int nan_changed = 0;
        for (uint32_t c = 0; c < (1u << total_bits(*f)); ++c) {
            const uint32_t back = f->encode(f->decode(c));
            if (!is_nan_code(*f, c)) {
                EXPECT_EQ(back, c) << std::hex << c;
                continue;
            }
            const uint32_t want = f->has_inf ? (c | quiet) : 0x7Fu;
            EXPECT_EQ(back, want) << std::hex << c;
            nan_changed += back != c;
        }
        std::printf("[ %s ] NaN codes normalized by the round trip: %d\n", f->name, nan_changed);
    }
}

// ---------------------------------------------------------------------------------------------------
// Encode against brute force

void expect_matches_reference(const Format& f, const std::vector<double>& table, float x) {
    if (std::isnan(x)) return;
    EXPECT_EQ(f.encode(x), reference_encode(f, table, x))
        << f.name << " x=" << x << " bits=" << std::hex << float_bits(x);
}

TEST(FloatFormats, EncodeMatchesNearestEvenAtMidpoints) {
    const float inf = std::numeric_limits<float>::infinity();
    for (const Format* f : kFormats) {
        const std::vector<double> table = magnitude_table(*f);
        for (size_t i = 0; i < table.size(); ++i) {
            std::vector<float> points = {static_cast<float>(table[i])};
            if (i + 1 < table.size()) {
                const double mid = 0.5 * (table[i] + table[i + 1]);
                const auto midf = static_cast<float>(mid);
                ASSERT_EQ(static_cast<double>(midf), mid) << f->name << " midpoint not a float";
                points.push_back(midf);
                points.push_back(std::nextafter(midf, 0.0f));
                points.push_back(std::nextafter(midf, inf));
            }
            for (float p : points) {
                expect_matches_reference(*f, table, p);
                expect_matches_reference(*f, table, -p);
            }
        }
        for (float p : {inf, -inf, std::numeric_limits<float>::max(), std::numeric_limits<float>::denorm_min(),
                        std::numeric_limits<float>::min()}) {
            expect_matches_reference(*f, table, p);
        }
    }
}

TEST(FloatFormats, EncodeMatchesNearestEvenOnRandomFloats) {
    const uint64_t seed = 20240607;
    std::printf("seed %llu\n", static_cast<unsigned long long>(seed));
    std::mt19937_64 rng(seed);
    for (const Format* f : kFormats) {
        const std::vector<double> table = magnitude_table(*f);
        const int emin = 1 - bias(*f) - f->mbits;         // smallest subnormal exponent
        const int emax = (1 << f->ebits) - 1 - bias(*f);  // first exponent past the top binade
        for (int i = 0; i < 200000; ++i) {
            // Half uniform bit patterns, half a random mantissa over the format's exponent range and beyond.
            const uint32_t bits = static_cast<uint32_t>(rng());
            float x = f32_from_bits(bits);
            if (i & 1) {
                const int e = emin - 3 + static_cast<int>(rng() % static_cast<uint64_t>(emax - emin + 6));
                x = std::ldexp(f32_from_bits((bits & 0x807FFFFFu) | 0x3F800000u), e);
            }
            expect_matches_reference(*f, table, x);
        }
    }
}

TEST(FloatFormats, NanInputs) {
    const float qnan = std::numeric_limits<float>::quiet_NaN();
    EXPECT_EQ(float_to_fp8_e4m3(qnan), 0x7F);
    EXPECT_EQ(float_to_fp8_e4m3(-qnan), 0x7F);
    EXPECT_EQ(float_to_fp8_e5m2(qnan) & 0x7F, 0x7E);
    EXPECT_EQ(float_to_fp8_e5m2(-qnan), 0xFE);
    EXPECT_EQ(float_to_bf16(qnan), 0x7FC0);
    EXPECT_EQ(float_to_bf16(f32_from_bits(0x7F800001u)), 0x7FC0);  // low-payload sNaN stays NaN
    EXPECT_EQ(float_to_f16(qnan), 0x7E00);
    EXPECT_EQ(float_to_f16(f32_from_bits(0xFF800001u)), 0xFE00);
}

// ---------------------------------------------------------------------------------------------------
// Known values and hand-checked ties

TEST(FloatFormats, KnownValues) {
    EXPECT_EQ(fp8_e4m3_to_float(0x7E), 448.0f);
    EXPECT_EQ(fp8_e4m3_to_float(0xFE), -448.0f);
    EXPECT_EQ(fp8_e4m3_to_float(0x01), std::ldexp(1.0f, -9));  // smallest subnormal
    EXPECT_EQ(fp8_e4m3_to_float(0x08), std::ldexp(1.0f, -6));  // smallest normal
    EXPECT_EQ(fp8_e4m3_to_float(0x38), 1.0f);
    EXPECT_EQ(float_to_fp8_e4m3(448.0f), 0x7E);
    EXPECT_EQ(float_to_fp8_e4m3(std::ldexp(1.0f, -9)), 0x01);
    EXPECT_EQ(float_to_fp8_e4m3(-0.0f), 0x80);

    EXPECT_EQ(fp8_e5m2_to_float(0x7B), 57344.0f);
    EXPECT_EQ(fp8_e5m2_to_float(0x01), std::ldexp(1.0f, -16));
    EXPECT_EQ(fp8_e5m2_to_float(0x3C), 1.0f);
    EXPECT_TRUE(std::isinf(fp8_e5m2_to_float(0x7C)));
    EXPECT_EQ(float_to_fp8_e5m2(57344.0f), 0x7B);
    EXPECT_EQ(float_to_fp8_e5m2(60000.0f), 0x7B);
    EXPECT_EQ(float_to_fp8_e5m2(61440.0f), 0x7C);  // max + half ulp: tie to even is infinity
    EXPECT_EQ(float_to_fp8_e5m2(-1e9f), 0xFC);

    EXPECT_EQ(float_bits(1.0f / 3.0f), 0x3EAAAAABu);
    EXPECT_EQ(float_to_bf16(1.0f / 3.0f), 0x3EAB);  // low half 0xAAAB > 0x8000 rounds up
    EXPECT_EQ(bf16_to_float(0x3EAB), 0.333984375f);
    EXPECT_EQ(float_to_bf16(std::numeric_limits<float>::max()), 0x7F80);  // overflow to inf
    EXPECT_EQ(float_to_bf16(-0.0f), 0x8000);

    EXPECT_EQ(f16_to_float(0x7BFF), 65504.0f);
    EXPECT_EQ(float_to_f16(65504.0f), 0x7BFF);
    EXPECT_EQ(float_to_f16(65519.0f), 0x7BFF);
    EXPECT_EQ(float_to_f16(65520.0f), 0x7C00);  // tie to even is infinity
    EXPECT_EQ(f16_to_float(0x0001), std::ldexp(1.0f, -24));
    EXPECT_EQ(float_to_f16(std::ldexp(1.0f, -24)), 0x0001);
    EXPECT_EQ(float_to_f16(std::ldexp(1.0f, -25)), 0x0000);  // tie between 0 and 2^-24: even is 0
    EXPECT_EQ(float_to_f16(std::ldexp(3.0f, -25)), 0x0002);  // tie between 1 and 2 ulps: even is 2
    EXPECT_EQ(float_to_f16(1.0f / 3.0f), 0x3555);
}

TEST(FloatFormats, TiesRoundToEven) {
    // e4m3 around 1 (ulp 1/8): 1.0625 sits between 0x38 (1.0) and 0x39 (1.125); 1.1875 between 0x39 and 0x3A.
    EXPECT_EQ(float_to_fp8_e4m3(1.0625f), 0x38);
    EXPECT_EQ(float_to_fp8_e4m3(1.1875f), 0x3A);
    EXPECT_EQ(float_to_fp8_e4m3(std::nextafter(1.0625f, 2.0f)), 0x39);
    EXPECT_EQ(float_to_fp8_e4m3(std::ldexp(1.0f, -10)), 0x00);  // half the smallest subnormal
    EXPECT_EQ(float_to_fp8_e4m3(std::ldexp(3.0f, -10)), 0x02);
    EXPECT_EQ(float_to_fp8_e4m3(std::ldexp(15.0f, -10)), 0x08);  // largest subnormal + half: up to 2^-6
    // e5m2 around 1 (ulp 1/4).
    EXPECT_EQ(float_to_fp8_e5m2(1.125f), 0x3C);
    EXPECT_EQ(float_to_fp8_e5m2(1.375f), 0x3E);
    EXPECT_EQ(float_to_fp8_e5m2(-1.375f), 0xBE);
    // bf16 around 1 (ulp 2^-7).
    EXPECT_EQ(float_to_bf16(f32_from_bits(0x3F808000u)), 0x3F80);
    EXPECT_EQ(float_to_bf16(f32_from_bits(0x3F818000u)), 0x3F82);
    EXPECT_EQ(float_to_bf16(f32_from_bits(0x3F808001u)), 0x3F81);
    // f16 at 2048 (ulp 2).
    EXPECT_EQ(float_to_f16(2049.0f), 0x6800);
    EXPECT_EQ(float_to_f16(2051.0f), 0x6802);
    EXPECT_EQ(float_to_f16(1.0f + std::ldexp(1.0f, -11)), 0x3C00);
    EXPECT_EQ(float_to_f16(1.0f + std::ldexp(3.0f, -11)), 0x3C02);
}

TEST(FloatFormats, E4M3Saturates) {
    const float inf = std::numeric_limits<float>::infinity();
    EXPECT_EQ(float_to_fp8_e4m3(464.0f), 0x7E);  // tie between 448 and (absent) 480: even is 448
    EXPECT_EQ(float_to_fp8_e4m3(480.0f), 0x7E);
    EXPECT_EQ(float_to_fp8_e4m3(1e6f), 0x7E);
    EXPECT_EQ(float_to_fp8_e4m3(-1e6f), 0xFE);
    EXPECT_EQ(float_to_fp8_e4m3(std::numeric_limits<float>::max()), 0x7E);
    EXPECT_EQ(float_to_fp8_e4m3(inf), 0x7E);
    EXPECT_EQ(float_to_fp8_e4m3(-inf), 0xFE);
}

}  // namespace
}  // namespace ecf8
