// The compression bound of the format, everything counted: a whole compressed safetensors file (headers,
// codebooks, chunk offsets, lane padding, JSON records) against raw_bits + H(exponent) per weight, on
// 1M+ element tensors drawn like real weights (docs/FORMAT.md, issue acceptance):
//   F8_E4M3 with 128x128 block scales: <= 4 + H + 0.06;   BF16: <= 8 + H + 0.08.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstring>

#include "codec/container.h"
#include "sharding/synth_weights.h"

namespace {

using namespace ecf8;

double file_bits_per_weight(const std::string& dir, const std::string& name, DType dt, std::vector<int64_t> shape,
                            const void* data, uint64_t nbytes, uint64_t numel) {
    const std::string raw = dir + "/" + name + ".safetensors", packed = dir + "/" + name + ".ecf8.safetensors";
    write_safetensors(raw, {}, {{"w", dt, std::move(shape), data, nbytes}});
    CompressOptions opt;
    opt.progress = false;
    compress_file(raw, packed, opt);
    EXPECT_TRUE(verify_files(raw, packed, 2).empty());
    struct stat st {};
    EXPECT_EQ(stat(packed.c_str(), &st), 0);
    return 8.0 * static_cast<double>(st.st_size) / static_cast<double>(numel);
}

class Ratio : public testing::TestWithParam<WeightDist> {};

TEST_P(Ratio, Fp8BlockScaledWithinBound) {
    SynthSpec spec;
    spec.dist = GetParam();
    spec.seed = 42;
    auto q = synth_fp8_block_quantized(1024, 2048, spec);
    const double h = exponent_entropy_bits(DType::F8_E4M3, q.weight.data(), q.weight.size());
    const double bits = file_bits_per_weight(testing::TempDir(), "fp8", DType::F8_E4M3, {1024, 2048},
                                             q.weight.data(), q.weight.size(), q.weight.size());
    std::printf("F8_E4M3 %s: %.4f bits/weight, bound 4 + H = %.4f (H = %.4f)\n",
                GetParam() == WeightDist::Gaussian ? "gaussian" : "student-t", bits, 4 + h, h);
    EXPECT_LE(bits, 4 + h + 0.06);
    EXPECT_GT(bits, 4 + h - 0.2);  // a sanity floor: the byte entropy is never far below the bound
}

TEST_P(Ratio, Bf16WithinBound) {
    SynthSpec spec;
    spec.dist = GetParam();
    spec.seed = 43;
    const size_t n = 2u << 20;
    std::vector<uint16_t> v = synth_bf16(n, spec);
    const double h = exponent_entropy_bits(DType::BF16, v.data(), n);
    const double bits =
        file_bits_per_weight(testing::TempDir(), "bf16", DType::BF16, {2048, 1024}, v.data(), n * 2, n);
    std::printf("BF16 %s: %.4f bits/weight, bound 8 + H = %.4f (H = %.4f)\n",
                GetParam() == WeightDist::Gaussian ? "gaussian" : "student-t", bits, 8 + h, h);
    EXPECT_LE(bits, 8 + h + 0.08);
}

INSTANTIATE_TEST_SUITE_P(Distributions, Ratio, testing::Values(WeightDist::Gaussian, WeightDist::StudentT));

}  // namespace
