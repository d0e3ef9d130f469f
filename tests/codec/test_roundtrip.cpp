// Bit-exact encode -> decode round trips over every dtype, size and distribution the format must handle.
#include <gtest/gtest.h>

#include <random>

#include "codec/decoder.h"
#include "codec/encoder.h"
#include "codec_test_util.h"
#include "common/error.h"
#include "common/thread_pool.h"

namespace {

using ecf8::DType;
using ecf8::test::Shape;

std::vector<uint8_t> round_trip(DType dt, const std::vector<uint8_t>& values, const ecf8::EncodeOptions& opt,
                                ecf8::ThreadPool* pool) {
    uint64_t numel = values.size() / ecf8::dtype_size(dt);
    std::vector<uint8_t> blob = ecf8::encode_tensor(dt, values.data(), numel, opt, pool);
    auto t = ecf8::PreparedTensor::prepare(blob, "t");
    std::vector<uint8_t> out(values.size() + 1, 0xA5);  // poisoned, one guard byte
    ecf8::decode_all(t, out.data(), pool);
    EXPECT_EQ(out.back(), 0xA5) << "decoder wrote past the end";
    // The portable scalar loop (the GPU kernel's twin) must agree with the SIMD path byte for byte.
    std::vector<uint8_t> scalar(values.size() + 1, 0x5A);
    ecf8::force_scalar_decode(true);
    ecf8::decode_all(t, scalar.data(), pool);
    ecf8::force_scalar_decode(false);
    EXPECT_EQ(scalar.back(), 0x5A) << "scalar decoder wrote past the end";
    out.pop_back();
    scalar.pop_back();
    EXPECT_EQ(scalar, out) << "scalar and SIMD decoders disagree";
    return out;
}

struct Case {
    DType dtype;
    size_t numel;
    Shape shape;
};

class RoundTrip : public testing::TestWithParam<Case> {};

TEST_P(RoundTrip, BitExact) {
    const Case c = GetParam();
    uint64_t seed = ecf8::test::test_seed() ^ (c.numel * 31 + static_cast<int>(c.shape));
    auto values = ecf8::test::make_values(c.shape, c.numel, ecf8::dtype_size(c.dtype), seed);
    ecf8::ThreadPool pool(2);
    for (uint32_t lane_elems : {0u, 2u, 64u}) {
        ecf8::EncodeOptions opt;
        opt.lane_elems = lane_elems;
        EXPECT_EQ(round_trip(c.dtype, values, opt, &pool), values)
            << ecf8::dtype_name(c.dtype) << " n=" << c.numel << " " << ecf8::test::shape_name(c.shape)
            << " lane_elems=" << lane_elems;
        if (c.numel > 100000) break;  // large sizes: default chunking only
    }
}

std::vector<Case> all_cases() {
    std::vector<Case> cases;
    for (DType dt : {DType::F8_E4M3, DType::F8_E5M2, DType::BF16, DType::F16, DType::F32, DType::I64})
        for (size_t n : {0u, 1u, 2u, 7u, 4095u, 4097u, 200003u})
            for (Shape s : {Shape::Gaussian, Shape::Uniform, Shape::Single, Shape::Skewed, Shape::AllBytes})
                cases.push_back({dt, n, s});
    cases.push_back({DType::F8_E4M3, 10'000'019, Shape::Gaussian});
    cases.push_back({DType::BF16, 10'000'019, Shape::Gaussian});
    return cases;
}

INSTANTIATE_TEST_SUITE_P(AllDtypes, RoundTrip, testing::ValuesIn(all_cases()), [](const auto& p) {
    return std::string(ecf8::dtype_name(p.param.dtype)) + "_" + std::to_string(p.param.numel) + "_" +
           (p.param.shape == Shape::AllBytes ? std::string("allbytes") : ecf8::test::shape_name(p.param.shape));
});

TEST(RoundTripGroups, PerGroupCodebooks) {
    auto values = ecf8::test::make_values(Shape::Gaussian, 1 << 20, 1, ecf8::test::test_seed());
    ecf8::EncodeOptions opt;
    opt.lane_elems = 256;
    ecf8::parse_granularity("group:16384", &opt);
    EXPECT_EQ(round_trip(DType::F8_E4M3, values, opt, nullptr), values);
    ecf8::parse_granularity("group:1000", &opt);  // rounds up to one chunk per codebook
    EXPECT_EQ(round_trip(DType::F8_E4M3, values, opt, nullptr), values);
    EXPECT_THROW(ecf8::parse_granularity("group:0", &opt), ecf8::Error);
    EXPECT_THROW(ecf8::parse_granularity("rows", &opt), ecf8::Error);
}

TEST(RoundTripRange, SlicesMatchTheFullDecode) {
    std::mt19937_64 rng(ecf8::test::test_seed());
    for (DType dt : {DType::F8_E4M3, DType::BF16}) {
        size_t n = 300007;
        auto values = ecf8::test::make_values(Shape::Gaussian, n, ecf8::dtype_size(dt), rng());
        ecf8::EncodeOptions opt;
        opt.lane_elems = 128;
        auto blob = ecf8::encode_tensor(dt, values.data(), n, opt);
        auto t = ecf8::PreparedTensor::prepare(blob, "slice");
        ecf8::ThreadPool pool(2);
        size_t vb = ecf8::dtype_size(dt);
        for (int trial = 0; trial < 50; ++trial) {
            uint64_t a = rng() % (n + 1), b = rng() % (n + 1);
            if (a > b) std::swap(a, b);
            std::vector<uint8_t> out((b - a) * vb, 0x5A);
            ecf8::decode_range(t, a, b, out.data(), trial % 2 ? &pool : nullptr);
            ASSERT_TRUE(std::equal(out.begin(), out.end(), values.begin() + a * vb)) << "range " << a << ".." << b;
        }
        std::vector<uint8_t> one(vb);
        EXPECT_THROW(ecf8::decode_range(t, n, n + 1, one.data(), nullptr), ecf8::Error);
    }
}

}  // namespace
