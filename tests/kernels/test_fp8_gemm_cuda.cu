// The GPU FP8 linear (kernels/cuda/fp8_gemm.cuh) against its CPU twin (gpu label; skips without a device),
// on seeded random inputs (seed printed). The activation quantization must be bit-identical (bytes and
// scales). Fp8BlockGemm is compared with cpu::linear_fp8_block on the same FP8 operands: ||y - ref||_2 /
// ||ref||_2 < 1e-3 and max |y - ref| < 1e-2 * max |ref| (the tensor cores sum a 128-wide K block in
// their own order and reduced precision before the float scaling, the twin in float lanes; on an H100
// with cuBLASLt 13.1 every shape gave a relative L2 error of 2.2e-4 .. 2.7e-4). T = 1 and 7 take the
// padded route of fp8_gemm.cu, T = 128 the direct one; in = 256 has weight-scale rows padded to 4.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "common/error.h"
#include "kernels/cpu/fp8_gemm.h"
#include "kernels/cuda/fp8_gemm.cuh"
#include "tests/kernels/cuda_test.h"
#include "tests/kernels/fp8_test_data.h"

namespace ecf8 {
namespace {

constexpr uint64_t kSeed = 20261123;
using cpu::kFp8Block;

class Fp8GemmCuda : public test::CudaOpTest {
protected:
    Fp8GemmCuda() : CudaOpTest(kSeed) {}
    // Block magnitudes 2^-8 .. 2^8; weights as a checkpoint holds them (tests/kernels/fp8_test_data.h).
    std::vector<float> activations(int64_t rows, int64_t cols) {
        return test::block_scaled_activations(rows, cols, -8, 8, rng_);
    }
    void weight(int64_t out, int64_t in, std::vector<uint8_t>& w, std::vector<float>& s) {
        test::checkpoint_like_weight(out, in, rng_, w, s);
    }
};

TEST_F(Fp8GemmCuda, QuantizationIsBitIdenticalToTheCpu) {
    const int64_t rows = 37, cols = 7000;  // a 88-wide tail block per row
    std::vector<float> x = activations(rows, cols);
    for (int64_t c = 0; c < 128; ++c) x[c] = 0.0f;     // a zero block
    for (int64_t c = 128; c < 256; ++c) x[c] = -0.0f;  // a block of -0
    x[cols + 300] = std::nanf("");                     // NaN: never the amax, byte 0x7F
    x[2 * cols + 700] = INFINITY;                      // inf: scale inf
    x[3 * cols + 5] = 1e-44f;                          // amax / 448 underflows: scale 1
    for (int64_t c = 1; c < 128; ++c) x[3 * cols + c] = 0.0f;

    const int64_t nkb = test::fp8_blocks(cols);
    std::vector<uint8_t> want_q(x.size());
    std::vector<float> want_s(static_cast<size_t>(rows * nkb));
    cpu::quantize_activations_fp8(x.data(), rows, cols, want_q.data(), want_s.data());
    uint8_t* q = dev(std::vector<uint8_t>(x.size(), 0xAA));
    float* s = dev(std::vector<float>(want_s.size(), -1.0f));
    cuda::quantize_activations_fp8(dev(x), rows, cols, q, s, nullptr);
    const std::vector<uint8_t> got_q = host(q, x.size());
    const std::vector<float> got_s = host(s, want_s.size());
    EXPECT_EQ(std::memcmp(got_q.data(), want_q.data(), want_q.size()), 0) << "bytes differ";
    EXPECT_EQ(std::memcmp(got_s.data(), want_s.data(), want_s.size() * sizeof(float)), 0) << "scales differ";
}

TEST_F(Fp8GemmCuda, BlockGemmMatchesTheCpuTwin) {
    struct Shape {
        int64_t in, out;
    };
    // DeepSeek-V3 projections, a small one (2 K blocks: padded weight scales) and out % 128 != 0.
    const Shape shapes[] = {{256, 128}, {7168, 2048}, {2048, 7168}, {1536, 7168}, {512, 400}};
    cuda::Fp8BlockGemm gemm;
    for (const Shape& sh : shapes) {
        for (const int64_t t : {int64_t{1}, int64_t{7}, int64_t{128}}) {
            if (!cuda::Fp8BlockGemm::supported(t, sh.in, sh.out)) GTEST_SKIP() << "Fp8BlockGemm not supported here";
            const std::vector<float> x = activations(t, sh.in);
            std::vector<uint8_t> w;
            std::vector<float> ws;
            weight(sh.out, sh.in, w, ws);
            std::vector<uint8_t> xq(x.size());
            std::vector<float> xs(static_cast<size_t>(t * test::fp8_blocks(sh.in)));
            cpu::quantize_activations_fp8(x.data(), t, sh.in, xq.data(), xs.data());
            std::vector<float> want(static_cast<size_t>(t * sh.out));
            cpu::linear_fp8_block(xq.data(), xs.data(), w.data(), ws.data(), want.data(), t, sh.in, sh.out);

            float* y = dev(std::vector<float>(want.size(), NAN));
            gemm.linear(dev(xq), dev(xs), dev(w), dev(ws), y, t, sh.in, sh.out, nullptr);
            const std::vector<float> got = host(y, want.size());
            double err2 = 0, ref2 = 0, max_err = 0, max_ref = 0;
            for (size_t i = 0; i < want.size(); ++i) {
                ASSERT_TRUE(std::isfinite(got[i])) << "y[" << i << "] = " << got[i];
                const double d = double{got[i]} - want[i];
                err2 += d * d;
                ref2 += double{want[i]} * want[i];
                max_err = std::max(max_err, std::fabs(d));
                max_ref = std::max(max_ref, std::fabs(double{want[i]}));
            }
            const double rel = std::sqrt(err2 / ref2);
            std::printf("T %3lld in %5lld out %5lld: rel L2 %.3g, max abs %.3g of max |ref| %.3g\n",
                        static_cast<long long>(t), static_cast<long long>(sh.in), static_cast<long long>(sh.out), rel,
                        max_err, max_ref);
            EXPECT_LT(rel, 1e-3) << "T " << t << " in " << sh.in << " out " << sh.out;
            EXPECT_LT(max_err, 1e-2 * max_ref) << "T " << t << " in " << sh.in << " out " << sh.out;
        }
    }
}

TEST_F(Fp8GemmCuda, SupportedRejectsShapesOutsideTheOp) {
    EXPECT_FALSE(cuda::Fp8BlockGemm::supported(0, 7168, 2048));  // no tokens
    EXPECT_FALSE(cuda::Fp8BlockGemm::supported(1, 7000, 2048));  // in % 128 != 0
    EXPECT_FALSE(cuda::Fp8BlockGemm::supported(1, 64, 2048));    // in < 128
    EXPECT_FALSE(cuda::Fp8BlockGemm::supported(1, 7168, 2050));  // out % 16 != 0
    EXPECT_FALSE(cuda::Fp8BlockGemm::supported(1, 7168, 0));     // no outputs
    EXPECT_FALSE(cuda::Fp8BlockGemm::supported(int64_t{1} << 31, 7168, 2048));
    cudaDeviceProp prop{};
    ASSERT_EQ(cudaGetDeviceProperties(&prop, 0), cudaSuccess);
    EXPECT_EQ(cuda::Fp8BlockGemm::supported(1, 7168, 2048), prop.major == 9) << "compute capability " << prop.major;
    cuda::Fp8BlockGemm gemm;
    EXPECT_THROW(gemm.linear(nullptr, nullptr, nullptr, nullptr, nullptr, 1, 7000, 2048, nullptr), Error);
}

}  // namespace
}  // namespace ecf8
