// The fixture of the CUDA op tests (gpu label): skips without a device, prints the seed, and moves vectors
// to and from device memory (freed after each test).
#pragma once

#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <random>
#include <vector>

namespace ecf8::test {

class CudaOpTest : public ::testing::Test {
protected:
    explicit CudaOpTest(uint64_t seed) : seed_(seed), rng_(seed) {}
    void SetUp() override {
        int n = 0;
        if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) GTEST_SKIP() << "no CUDA device";
        std::printf("seed %llu\n", static_cast<unsigned long long>(seed_));
    }
    void TearDown() override {
        for (void* p : buffers_) cudaFree(p);
    }
    template <class T>
    T* dev(const std::vector<T>& v) {
        T* d = nullptr;
        EXPECT_EQ(cudaMalloc(&d, std::max<size_t>(1, v.size()) * sizeof(T)), cudaSuccess);
        EXPECT_EQ(cudaMemcpy(d, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice), cudaSuccess);
        buffers_.push_back(d);
        return d;
    }
    template <class T>
    std::vector<T> host(const T* d, size_t n) {
        EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
        std::vector<T> v(n);
        EXPECT_EQ(cudaMemcpy(v.data(), d, n * sizeof(T), cudaMemcpyDeviceToHost), cudaSuccess);
        return v;
    }

    uint64_t seed_;
    std::mt19937_64 rng_;
    std::vector<void*> buffers_;
};

}  // namespace ecf8::test
