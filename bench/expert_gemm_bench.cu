// The routed experts' linear on the GPU (cuda::linear_picks, kernels/cuda/moe_experts.cu) at the bench synth's
// shapes (configs/models/synth-bench-h100.yaml: FP8 experts of 2048 x 7168 and 7168 x 2048, 128 x 128 block
// scales, 8 of 48 experts per token): a group of 8 experts, each with the picks of a step of T tokens
// (T x 8 / 48, at least 1), the host bound being T as in the runtime. Two modes: compute.gemm fp32 (the
// one-warp-per-column kernel up to 64 tokens, the tiled FP32 kernel above) and fp8 (BF16 tensor cores above
// 64 tokens). Median of --reps timed launches (CUDA events, after 3 warm-ups); TFLOP/s counts 2 x picks x in x
// out; weight GB/s is the group's FP8 bytes over the time. Where both modes run different kernels, the
// largest difference of their outputs relative to the largest output is printed as a check.
// Usage: expert_gemm_bench [--reps N] [--tokens 1,16,64,256,2048]. Exits 0 with a message without a device.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "bench/gpu_bench_util.cuh"
#include "common/error.h"
#include "kernels/cuda/ops.cuh"

namespace {

using namespace ecf8;
using bench::device_copy;
using bench::median_ms;

constexpr int64_t kExperts = 8, kTopk = 8, kRouted = 48, kBlock = 128;

struct Matrices {
    cuda::ExpertMatrices m{};
    std::vector<void*> owned;
};

// kExperts random FP8 matrices of out x in (no NaN bytes) with block scales near 2^-8.
Matrices make_experts(std::mt19937& rng, int64_t out, int64_t in) {
    Matrices r;
    std::vector<uint8_t> w(static_cast<size_t>(out * in));
    std::vector<float> s(static_cast<size_t>(((out + kBlock - 1) / kBlock) * ((in + kBlock - 1) / kBlock)));
    for (int64_t e = 0; e < kExperts; ++e) {
        for (uint8_t& b : w) b = static_cast<uint8_t>(rng() & 0xF7);  // 0x7F / 0xFF (NaN) never
        for (float& v : s) v = std::ldexp(1.0f + float(rng() % 64) / 64.0f, -8);
        r.m.w[e] = device_copy(w);
        r.m.scale_inv[e] = device_copy(s);
        r.owned.push_back(const_cast<uint8_t*>(r.m.w[e]));
        r.owned.push_back(const_cast<float*>(r.m.scale_inv[e]));
    }
    return r;
}

void bench_matrix(int64_t out, int64_t in, const char* what, const std::vector<int64_t>& tokens, int reps,
                  cudaStream_t stream) {
    std::mt19937 rng(7);
    Matrices ex = make_experts(rng, out, in);
    const int64_t t_max = *std::max_element(tokens.begin(), tokens.end());
    const int64_t rows_max = std::max<int64_t>(1, t_max * kTopk / kRouted) * kExperts;
    std::vector<float> x_host(static_cast<size_t>(rows_max * in));
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    for (float& v : x_host) v = u(rng);
    float* x = device_copy(x_host);
    float *y_fp32 = nullptr, *y_fp8 = nullptr;
    CUDA_CHECK(cudaMalloc(&y_fp32, rows_max * out * sizeof(float)));
    CUDA_CHECK(cudaMalloc(&y_fp8, rows_max * out * sizeof(float)));
    for (int64_t t : tokens) {
        const int64_t per_expert = std::max<int64_t>(1, t * kTopk / kRouted), rows = per_expert * kExperts;
        std::vector<int32_t> offsets(kExperts + 1);
        for (int64_t e = 0; e <= kExperts; ++e) offsets[static_cast<size_t>(e)] = static_cast<int32_t>(e * per_expert);
        int32_t* d_offsets = device_copy(offsets);
        cuda::PickGroup g;
        g.offsets = d_offsets;
        g.first = 0;
        g.count = kExperts;
        g.cap_rows = rows;
        g.expert_bound = t;
        g.group_bound = rows;
        double ms[2];
        for (int tc = 0; tc < 2; ++tc) {
            float* y = tc ? y_fp8 : y_fp32;
            ms[tc] = median_ms(reps, stream,
                               [&] { cuda::linear_picks(ex.m, true, kBlock, out, in, x, g, y, tc == 1, stream); });
        }
        const double flop = 2.0 * double(rows) * double(in) * double(out);
        const double bytes = double(kExperts) * double(out) * double(in);
        std::vector<float> a(static_cast<size_t>(rows * out)), b(a.size());
        CUDA_CHECK(cudaMemcpy(a.data(), y_fp32, a.size() * sizeof(float), cudaMemcpyDeviceToHost));
        CUDA_CHECK(cudaMemcpy(b.data(), y_fp8, b.size() * sizeof(float), cudaMemcpyDeviceToHost));
        double top = 0.0, diff = 0.0;
        for (size_t i = 0; i < a.size(); ++i) {
            top = std::max(top, double(std::fabs(a[i])));
            diff = std::max(diff, double(std::fabs(a[i] - b[i])));
        }
        for (int tc = 0; tc < 2; ++tc)
            std::printf(
                "%-13s %6ld %6ld  %-4s %10.3f %9.2f %9.1f%s\n", what, long(t), long(per_expert), tc ? "fp8" : "fp32",
                ms[tc], flop / (ms[tc] * 1e9), bytes / (ms[tc] * 1e6),
                tc && t > 64 ? ("   (max |fp8 - fp32| / max |y| " + std::to_string(diff / top) + ")").c_str() : "");
        CUDA_CHECK(cudaFree(d_offsets));
    }
    CUDA_CHECK(cudaFree(x));
    CUDA_CHECK(cudaFree(y_fp32));
    CUDA_CHECK(cudaFree(y_fp8));
    for (void* p : ex.owned) CUDA_CHECK(cudaFree(p));
}

}  // namespace

int main(int argc, char** argv) {
    int reps = 10;
    std::vector<int64_t> tokens = {1, 16, 64, 128, 512, 2048};
    if (!bench::parse_reps_and_tokens(argc, argv, &reps, &tokens)) {
        std::fprintf(stderr, "usage: %s [--reps N] [--tokens 1,16,64,128,512,2048]\n", argv[0]);
        return 2;
    }
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) {
        std::printf("expert_gemm_bench: no CUDA device\n");
        return 0;
    }
    cudaStream_t stream;
    CUDA_CHECK(cudaStreamCreate(&stream));
    std::printf("%-13s %6s %6s  %-4s %10s %9s %9s\n", "matrix", "tokens", "picks", "gemm", "ms", "TFLOP/s",
                "weight GB/s");
    bench_matrix(2048, 7168, "gate/up", tokens, reps, stream);
    bench_matrix(7168, 2048, "down", tokens, reps, stream);
    CUDA_CHECK(cudaStreamDestroy(stream));
    return 0;
}
