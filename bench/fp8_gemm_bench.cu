// DeepSeek-V3's FP8 linear on the GPU: cuBLASLt's block-scaled FP8 matmul (Fp8BlockGemm, with and without
// the activation quantization in front) against the fallback path, dequantize_fp8_block_to_float + FP32
// SGEMM (kernels/cuda/ops.cuh), at the model's projection shapes and T in {1, 16, 64, 256} tokens.
// Median of --reps timed runs (CUDA events, after 3 warm-ups). TFLOP/s counts 2 T in out; weight GB/s is
// the FP8 weight's bytes (plus its scales) over the time, the rate at which each path consumes it.
// Usage: fp8_gemm_bench [--reps N] [--tokens 1,16,64,256]. Exits 0 with a message without a CUDA device.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <vector>

#include "bench/gpu_bench_util.cuh"
#include "common/error.h"
#include "kernels/cuda/fp8_gemm.cuh"
#include "kernels/cuda/ops.cuh"

namespace {

using namespace ecf8;
using bench::device_copy;
using bench::median_ms;

struct Shape {
    int64_t in, out;
    const char* what;
};

void bench_shape(const Shape& sh, const std::vector<int64_t>& tokens, int reps, bool fp8_ok, cuda::Fp8BlockGemm& gemm,
                 cuda::Sgemm& sgemm, cudaStream_t stream) {
    const int64_t t_max = *std::max_element(tokens.begin(), tokens.end());
    const int64_t nkb = (sh.in + 127) / 128, nob = (sh.out + 127) / 128;
    std::mt19937_64 rng(42);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::uniform_int_distribution<int> byte(0, 255);
    std::vector<float> x(static_cast<size_t>(t_max * sh.in)), ws(static_cast<size_t>(nob * nkb), 1.0f / 4096);
    for (float& v : x) v = normal(rng);
    std::vector<uint8_t> w(static_cast<size_t>(sh.out * sh.in));
    for (uint8_t& b : w) {
        do b = static_cast<uint8_t>(byte(rng));
        while ((b & 0x7F) == 0x7F);
    }
    float* d_x = device_copy(x);
    float* d_ws = device_copy(ws);
    uint8_t* d_w = device_copy(w);
    uint8_t* d_xq = nullptr;
    float *d_xs = nullptr, *d_y = nullptr, *d_wf = nullptr;
    CUDA_CHECK(cudaMalloc(&d_xq, x.size()));
    CUDA_CHECK(cudaMalloc(&d_xs, static_cast<size_t>(t_max * nkb) * sizeof(float)));
    CUDA_CHECK(cudaMalloc(&d_y, static_cast<size_t>(t_max * sh.out) * sizeof(float)));
    CUDA_CHECK(cudaMalloc(&d_wf, w.size() * sizeof(float)));
    const double weight_bytes = static_cast<double>(w.size() + ws.size() * sizeof(float));

    for (const int64_t t : tokens) {
        double gemm_ms = 0, fp8_ms = 0;
        if (fp8_ok) {
            cuda::quantize_activations_fp8(d_x, t, sh.in, d_xq, d_xs, stream);
            gemm_ms =
                median_ms(reps, stream, [&] { gemm.linear(d_xq, d_xs, d_w, d_ws, d_y, t, sh.in, sh.out, stream); });
            fp8_ms = median_ms(reps, stream, [&] {
                cuda::quantize_activations_fp8(d_x, t, sh.in, d_xq, d_xs, stream);
                gemm.linear(d_xq, d_xs, d_w, d_ws, d_y, t, sh.in, sh.out, stream);
            });
        }
        CUBLAS_CHECK(cublasSetStream(sgemm.handle(), stream));
        const double sgemm_ms =
            median_ms(reps, stream, [&] { sgemm.linear_f32(d_x, d_wf, d_y, t, sh.in, sh.out, stream); });
        const double fallback_ms = median_ms(reps, stream, [&] {
            cuda::dequantize_fp8_block_to_float(d_w, d_ws, sh.out, sh.in, d_wf, 128, stream);
            sgemm.linear_f32(d_x, d_wf, d_y, t, sh.in, sh.out, stream);
        });
        const double flop = 2.0 * static_cast<double>(t) * sh.in * sh.out;
        auto row = [&](const char* path, double ms) {
            std::printf("%-10s %6lld %6lld %4lld  %-22s %9.1f us %8.1f TFLOP/s %8.1f GB/s\n", sh.what,
                        static_cast<long long>(sh.in), static_cast<long long>(sh.out), static_cast<long long>(t), path,
                        ms * 1e3, flop / (ms * 1e-3) / 1e12, weight_bytes / (ms * 1e-3) / 1e9);
        };
        if (fp8_ok) {
            row("fp8 gemm", gemm_ms);
            row("fp8 quant+gemm", fp8_ms);
        }
        row("dequant+sgemm", fallback_ms);
        row("sgemm (predequant)", sgemm_ms);
        if (fp8_ok)
            std::printf("%-10s speedup of fp8 quant+gemm over dequant+sgemm: %.1fx\n", "", fallback_ms / fp8_ms);
    }
    CUDA_CHECK(cudaFree(d_x));
    CUDA_CHECK(cudaFree(d_ws));
    CUDA_CHECK(cudaFree(d_w));
    CUDA_CHECK(cudaFree(d_xq));
    CUDA_CHECK(cudaFree(d_xs));
    CUDA_CHECK(cudaFree(d_y));
    CUDA_CHECK(cudaFree(d_wf));
}

}  // namespace

int main(int argc, char** argv) {
    int reps = 20;
    std::vector<int64_t> tokens = {1, 16, 64, 256};
    if (!bench::parse_reps_and_tokens(argc, argv, &reps, &tokens)) {
        std::fprintf(stderr, "usage: %s [--reps N] [--tokens 1,16,64,256]\n", argv[0]);
        return 2;
    }
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) {
        std::printf("fp8_gemm_bench: no CUDA device, nothing to measure\n");
        return 0;
    }
    try {
        cudaDeviceProp prop{};
        CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
        const bool fp8_ok = cuda::Fp8BlockGemm::supported(1, 7168, 2048);
        std::printf("device %s (cc %d.%d), cuBLASLt %zu; fp8 block-scaled path %s; median of %d runs\n", prop.name,
                    prop.major, prop.minor, cublasLtGetVersion(), fp8_ok ? "on" : "not supported here", reps);
        std::printf("%-10s %6s %6s %4s  %-22s %12s %16s %13s\n", "weight", "in", "out", "T", "path", "time", "rate",
                    "weight rate");
        // Routed expert gate/up and down (moe_inter_dim 2048), dense MLP up and down (inter_dim 18432),
        // and a wide 7168 -> 24576 projection.
        const std::vector<Shape> shapes = {{7168, 2048, "expert_up"},
                                           {2048, 7168, "expert_dn"},
                                           {7168, 18432, "mlp_up"},
                                           {18432, 7168, "mlp_down"},
                                           {7168, 24576, "wide"}};
        cudaStream_t stream;
        CUDA_CHECK(cudaStreamCreate(&stream));
        cuda::Fp8BlockGemm gemm;
        cuda::Sgemm sgemm;
        for (const Shape& sh : shapes) bench_shape(sh, tokens, reps, fp8_ok, gemm, sgemm, stream);
        CUDA_CHECK(cudaStreamDestroy(stream));
    } catch (const std::exception& e) {
        std::fprintf(stderr, "fp8_gemm_bench: %s\n", e.what());
        return 1;
    }
    return 0;
}
