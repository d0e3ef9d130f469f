// bench/gpu_decode: ECF8 decode throughput on the GPU against a device-to-device copy of the same bytes,
// for FP8 tensors of 16 MB to 4 GB (Student-t weights with 128x128 block scales, tiled from a 64 Mi-weight
// draw). Per size, one run: decoded GB/s, effective GB/s (compressed bytes read + decoded bytes written),
// cudaMemcpy D2D and a plain 16-byte-wide FP8 copy kernel (both counted as bytes read + written), and
// effective / D2D. Every decode is checked against the original bytes first. Exits 0 with a message when
// there is no CUDA device. Usage: gpu_decode [--max-gb G] [--repeat R] [--json]
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench/gpu_bench_util.cuh"
#include "codec/decoder.h"
#include "codec/encoder.h"
#include "common/error.h"
#include "common/thread_pool.h"
#include "kernels/cuda/ecf8_decode.cuh"
#include "sharding/synth_weights.h"

namespace {

using namespace ecf8;

// ---------------------------------------------------------------------------------------------------------
// kernels

__global__ void copy16_kernel(const uint4* __restrict in, uint4* __restrict out, size_t n16) {
    for (size_t i = blockIdx.x * size_t{blockDim.x} + threadIdx.x; i < n16; i += size_t{gridDim.x} * blockDim.x)
        out[i] = in[i];
}

// ---------------------------------------------------------------------------------------------------------
// timing

// gpu_decode times each launch after one untimed warm-up.
template <class F>
float median_ms(int repeat, cudaStream_t stream, F&& launch) {
    return static_cast<float>(bench::median_ms(repeat, stream, launch, 1));
}

struct Row {
    uint64_t bytes;
    double ratio, decode_gbs, effective_gbs, d2d_gbs, copy_kernel_gbs;
};

Row measure(const std::vector<uint8_t>& values, int repeat, ThreadPool& pool, cudaStream_t stream) {
    const uint64_t n = values.size();
    std::vector<uint8_t> blob = encode_tensor(DType::F8_E4M3, values.data(), n, EncodeOptions{}, &pool);
    PreparedTensor t = PreparedTensor::prepare(blob, "bench");
    DeviceTensor dt = DeviceTensor::upload(t, stream);
    uint8_t *out = nullptr, *src = nullptr;
    int* flag = nullptr;
    CUDA_CHECK(cudaMalloc(&out, n));
    CUDA_CHECK(cudaMalloc(&src, n));
    CUDA_CHECK(cudaMalloc(&flag, sizeof(int)));
    CUDA_CHECK(cudaMemsetAsync(flag, 0, sizeof(int), stream));
    CUDA_CHECK(cudaMemcpyAsync(src, values.data(), n, cudaMemcpyHostToDevice, stream));
    CUDA_CHECK(cudaMemsetAsync(out, 0xA5, n, stream));
    ecf8_decode_cuda(dt, 0, n, out, flag, stream);
    ecf8_decode_check_error(flag, stream, "gpu_decode");
    std::vector<uint8_t> back(n);
    CUDA_CHECK(cudaMemcpy(back.data(), out, n, cudaMemcpyDeviceToHost));
    ECF8_CHECK(back == values, "GPU decode of " << n << " bytes differs from the original: refusing to report");

    const float dec = median_ms(repeat, stream, [&] { ecf8_decode_cuda(dt, 0, n, out, flag, stream); });
    const float d2d =
        median_ms(repeat, stream, [&] { CUDA_CHECK(cudaMemcpyAsync(out, src, n, cudaMemcpyDeviceToDevice, stream)); });
    const float cpy = median_ms(repeat, stream, [&] {
        copy16_kernel<<<1024, 256, 0, stream>>>(reinterpret_cast<const uint4*>(src), reinterpret_cast<uint4*>(out),
                                                n / 16);
        CUDA_CHECK(cudaGetLastError());
    });
    ecf8_decode_check_error(flag, stream, "gpu_decode");
    CUDA_CHECK(cudaFree(out));
    CUDA_CHECK(cudaFree(src));
    CUDA_CHECK(cudaFree(flag));
    const double gb = static_cast<double>(n) / 1e9, cgb = static_cast<double>(blob.size()) / 1e9;
    return {n, cgb / gb, gb / (dec / 1e3), (gb + cgb) / (dec / 1e3), 2 * gb / (d2d / 1e3), 2 * gb / (cpy / 1e3)};
}

}  // namespace

int main(int argc, char** argv) {
    double max_gb = 4;
    int repeat = 11;
    bool json = false;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--max-gb" && i + 1 < argc)
            max_gb = std::stod(argv[++i]);
        else if (a == "--repeat" && i + 1 < argc)
            repeat = std::max(5, std::stoi(argv[++i]));
        else if (a == "--json")
            json = true;
        else {
            std::fprintf(stderr, "usage: gpu_decode [--max-gb G] [--repeat R] [--json]\n");
            return 2;
        }
    }
    int devices = 0;
    if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
        std::printf("gpu_decode: no CUDA device; nothing measured\n");
        return 0;
    }
    try {
        cudaDeviceProp prop{};
        CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
        cudaStream_t stream;
        CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
        ThreadPool pool(0);
        SynthSpec spec;
        Fp8BlockQuantized base = synth_fp8_block_quantized(8192, 8192, spec);  // 64 Mi weights
        nlohmann::json rows = nlohmann::json::array();
        if (!json)
            std::printf("device: %s\n%10s %8s %12s %15s %12s %13s %10s\n", prop.name, "size", "ratio", "decode GB/s",
                        "effective GB/s", "D2D GB/s", "copy16 GB/s", "eff/D2D");
        for (uint64_t bytes = 16ull << 20; bytes <= static_cast<uint64_t>(max_gb * (1ull << 30)); bytes *= 2) {
            std::vector<uint8_t> values(bytes);
            for (uint64_t off = 0; off < bytes; off += base.weight.size())
                std::memcpy(values.data() + off, base.weight.data(),
                            std::min<uint64_t>(base.weight.size(), bytes - off));
            Row r = measure(values, repeat, pool, stream);
            rows.push_back({{"bytes", r.bytes},
                            {"ratio", r.ratio},
                            {"decode_gbs", r.decode_gbs},
                            {"effective_gbs", r.effective_gbs},
                            {"d2d_gbs", r.d2d_gbs},
                            {"copy_kernel_gbs", r.copy_kernel_gbs}});
            if (!json)
                std::printf("%8.0f MB %8.4f %12.1f %15.1f %12.1f %13.1f %9.1f%%\n", r.bytes / 1048576.0, r.ratio,
                            r.decode_gbs, r.effective_gbs, r.d2d_gbs, r.copy_kernel_gbs,
                            100 * r.effective_gbs / r.d2d_gbs);
        }
        if (json) std::printf("%s\n", nlohmann::json{{"device", prop.name}, {"rows", rows}}.dump(2).c_str());
        CUDA_CHECK(cudaStreamDestroy(stream));
    } catch (const Error& e) {
        std::fprintf(stderr, "gpu_decode: %s\n", e.what());
        return 1;
    }
    return 0;
}
