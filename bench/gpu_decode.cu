// bench/gpu_decode: ECF8 decode throughput on the GPU against a device-to-device copy of the same bytes,
// for FP8 tensors of 16 MB to 4 GB (Student-t weights with 128x128 block scales, tiled from a 64 Mi-weight
// draw). Per size, one run: decoded GB/s, effective GB/s (compressed bytes read + decoded bytes written),
// cudaMemcpy D2D and a plain 16-byte-wide FP8 copy kernel (both counted as bytes read + written), and
// effective / D2D. Every decode is checked against the original bytes first. Exits 0 with a message when
// there is no CUDA device. --latency instead times single launches of expert-sized matrices at several
// lane_elems (see latency()). Usage: gpu_decode [--max-gb G] [--repeat R] [--json] [--latency]
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

// `bytes` values: `base` repeated.
std::vector<uint8_t> tiled(const std::vector<uint8_t>& base, uint64_t bytes) {
    std::vector<uint8_t> values(bytes);
    for (uint64_t off = 0; off < bytes; off += base.size())
        std::memcpy(values.data() + off, base.data(), std::min<uint64_t>(base.size(), bytes - off));
    return values;
}

// FP8 values encoded with `options` and uploaded, with an output buffer and an error flag; the first decode
// is checked against the values, so nothing is timed that decodes wrongly.
struct Decodable {
    std::vector<uint8_t> blob;
    DeviceTensor dt;
    uint8_t* out = nullptr;
    int* flag = nullptr;
    ~Decodable() {
        cudaFree(out);
        cudaFree(flag);
    }
};

void prepare(Decodable& d, const std::vector<uint8_t>& values, const EncodeOptions& options, ThreadPool& pool,
             cudaStream_t stream) {
    const uint64_t n = values.size();
    d.blob = encode_tensor(DType::F8_E4M3, values.data(), n, options, &pool);
    d.dt = DeviceTensor::upload(PreparedTensor::prepare(d.blob, "bench"), stream);
    CUDA_CHECK(cudaMalloc(&d.out, n));
    CUDA_CHECK(cudaMalloc(&d.flag, sizeof(int)));
    CUDA_CHECK(cudaMemsetAsync(d.flag, 0, sizeof(int), stream));
    CUDA_CHECK(cudaMemsetAsync(d.out, 0xA5, n, stream));
    ecf8_decode_cuda(d.dt, 0, n, d.out, d.flag, stream);
    ecf8_decode_check_error(d.flag, stream, "gpu_decode");
    std::vector<uint8_t> back(n);
    CUDA_CHECK(cudaMemcpy(back.data(), d.out, n, cudaMemcpyDeviceToHost));
    ECF8_CHECK(back == values, "GPU decode of " << n << " bytes differs from the original: refusing to report");
}

Row measure(const std::vector<uint8_t>& values, int repeat, ThreadPool& pool, cudaStream_t stream) {
    const uint64_t n = values.size();
    Decodable d;
    prepare(d, values, EncodeOptions{}, pool, stream);
    uint8_t* src = nullptr;
    CUDA_CHECK(cudaMalloc(&src, n));
    CUDA_CHECK(cudaMemcpyAsync(src, values.data(), n, cudaMemcpyHostToDevice, stream));

    const float dec = median_ms(repeat, stream, [&] { ecf8_decode_cuda(d.dt, 0, n, d.out, d.flag, stream); });
    const float d2d = median_ms(repeat, stream,
                                [&] { CUDA_CHECK(cudaMemcpyAsync(d.out, src, n, cudaMemcpyDeviceToDevice, stream)); });
    const float cpy = median_ms(repeat, stream, [&] {
        copy16_kernel<<<1024, 256, 0, stream>>>(reinterpret_cast<const uint4*>(src), reinterpret_cast<uint4*>(d.out),
                                                n / 16);
        CUDA_CHECK(cudaGetLastError());
    });
    ecf8_decode_check_error(d.flag, stream, "gpu_decode");
    CUDA_CHECK(cudaFree(src));
    const double gb = static_cast<double>(n) / 1e9, cgb = static_cast<double>(d.blob.size()) / 1e9;
    return {n, cgb / gb, gb / (dec / 1e3), (gb + cgb) / (dec / 1e3), 2 * gb / (d2d / 1e3), 2 * gb / (cpy / 1e3)};
}

// --latency: one decode launch of an expert-sized FP8 matrix (2048 x 7168, DeepSeek-V3's) and of eight of
// them as one tensor (a decode step's picked experts in one launch), at several lane_elems. One warp decodes
// a chunk (32 x lane_elems elements) serially, so a launch of few chunks lasts about one chunk's decode: a
// step at batch 1 waits for it after routing. Smaller chunks cost padding bits (docs/FORMAT.md).
void latency(const std::vector<uint8_t>& base, int repeat, ThreadPool& pool, cudaStream_t stream) {
    std::printf("%9s %10s %8s %13s %10s %12s\n", "matrices", "lane_elems", "chunks", "bits/weight", "decode us",
                "decode GB/s");
    for (uint64_t matrices : {1, 8}) {
        const std::vector<uint8_t> values = tiled(base, matrices * 2048 * 7168);
        for (uint32_t lane : {256u, 512u, 1024u, 2048u, 4096u}) {
            EncodeOptions options;
            options.lane_elems = lane;
            Decodable d;
            prepare(d, values, options, pool, stream);
            const uint64_t n = values.size();
            const float ms = median_ms(repeat, stream, [&] { ecf8_decode_cuda(d.dt, 0, n, d.out, d.flag, stream); });
            ecf8_decode_check_error(d.flag, stream, "gpu_decode");
            std::printf("%9llu %10u %8llu %13.4f %10.1f %12.1f\n", static_cast<unsigned long long>(matrices), lane,
                        static_cast<unsigned long long>((n + 32ull * lane - 1) / (32ull * lane)),
                        8.0 * double(d.blob.size()) / double(n), ms * 1e3, double(n) / (ms * 1e6));
        }
    }
}

}  // namespace

int main(int argc, char** argv) {
    double max_gb = 4;
    int repeat = 11;
    bool json = false, latency_only = false;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--max-gb" && i + 1 < argc)
            max_gb = std::stod(argv[++i]);
        else if (a == "--repeat" && i + 1 < argc)
            repeat = std::max(5, std::stoi(argv[++i]));
        else if (a == "--json")
            json = true;
        else if (a == "--latency")
            latency_only = true;
        else {
            std::fprintf(stderr, "usage: gpu_decode [--max-gb G] [--repeat R] [--json] [--latency]\n");
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
        if (latency_only) {
            std::printf("device: %s\n", prop.name);
            latency(base.weight, repeat, pool, stream);
            CUDA_CHECK(cudaStreamDestroy(stream));
            return 0;
        }
        nlohmann::json rows = nlohmann::json::array();
        if (!json)
            std::printf("device: %s\n%10s %8s %12s %15s %12s %13s %10s\n", prop.name, "size", "ratio", "decode GB/s",
                        "effective GB/s", "D2D GB/s", "copy16 GB/s", "eff/D2D");
        for (uint64_t bytes = 16ull << 20; bytes <= static_cast<uint64_t>(max_gb * (1ull << 30)); bytes *= 2) {
            Row r = measure(tiled(base.weight, bytes), repeat, pool, stream);
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
