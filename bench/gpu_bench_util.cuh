// Shared by the GPU benchmarks (fp8_gemm_bench, expert_gemm_bench, gpu_decode): a device copy of a host
// vector, the median time of a launch sequence by CUDA events, and their --reps / --tokens flags.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "common/error.h"

namespace ecf8::bench {

template <class T>
T* device_copy(const std::vector<T>& v) {
    T* d = nullptr;
    CUDA_CHECK(cudaMalloc(&d, v.size() * sizeof(T)));
    CUDA_CHECK(cudaMemcpy(d, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice));
    return d;
}

// Median milliseconds of `reps` timed runs of launch() on `stream`, after `warmups` untimed ones.
template <class F>
double median_ms(int reps, cudaStream_t stream, F&& launch, int warmups = 3) {
    for (int i = 0; i < warmups; ++i) launch();
    cudaEvent_t a, b;
    CUDA_CHECK(cudaEventCreate(&a));
    CUDA_CHECK(cudaEventCreate(&b));
    std::vector<float> ms(static_cast<size_t>(std::max(1, reps)));
    for (float& m : ms) {
        CUDA_CHECK(cudaEventRecord(a, stream));
        launch();
        CUDA_CHECK(cudaEventRecord(b, stream));
        CUDA_CHECK(cudaEventSynchronize(b));
        CUDA_CHECK(cudaEventElapsedTime(&m, a, b));
    }
    CUDA_CHECK(cudaEventDestroy(a));
    CUDA_CHECK(cudaEventDestroy(b));
    std::nth_element(ms.begin(), ms.begin() + ms.size() / 2, ms.end());
    return ms[ms.size() / 2];
}

// "1,16,64" -> {1, 16, 64}; values below 1 count as 1; reading stops at the first entry that is not a number.
inline std::vector<int64_t> parse_counts(const char* text) {
    std::vector<int64_t> out;
    for (const char* p = text; *p != '\0';) {
        char* end = nullptr;
        const long long v = std::strtoll(p, &end, 10);
        if (end == p) break;
        out.push_back(std::max<int64_t>(1, v));
        p = *end == ',' ? end + 1 : end;
    }
    return out;
}

// The flags the GEMM benchmarks share, --reps N and --tokens 1,16,...: false on anything else (the caller prints
// its usage). An empty token list becomes {1}.
inline bool parse_reps_and_tokens(int argc, char** argv, int* reps, std::vector<int64_t>* tokens) {
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
            *reps = std::max(1, std::atoi(argv[++i]));
        else if (std::strcmp(argv[i], "--tokens") == 0 && i + 1 < argc)
            *tokens = parse_counts(argv[++i]);
        else
            return false;
    }
    if (tokens->empty()) *tokens = {1};
    return true;
}

}  // namespace ecf8::bench
