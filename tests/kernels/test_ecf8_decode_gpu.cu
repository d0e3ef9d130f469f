// The CUDA decoder (kernels/cuda/ecf8_decode.cuh) against the CPU decoder: byte-for-byte equal output for
// every dtype, size, chunking, codebook grouping, slice and output alignment; nothing written outside the
// requested range; batched and concurrent launches; corrupt streams raise the error flag. Skips without a GPU.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "codec/decoder.h"
#include "codec/encoder.h"
#include "codec_test_util.h"
#include "common/error.h"
#include "common/thread_pool.h"
#include "kernels/cuda/ecf8_decode.cuh"

namespace {

using ecf8::DType;

constexpr size_t kGuard = 64;  // poisoned bytes before and after every output range
constexpr uint8_t kPoison = 0xA5;

using ecf8::test::test_seed;

ecf8::ThreadPool& pool() {
    static ecf8::ThreadPool p(0);
    return p;
}

// Float-like values with geometric exponents (skewed, like real weights); other dtypes get uniform bytes.
std::vector<uint8_t> make_values(DType dt, uint64_t numel, uint64_t seed) {
    const size_t vb = ecf8::dtype_size(dt);
    std::vector<uint8_t> out(numel * vb);
    const uint64_t block = 1 << 16;
    pool().parallel_for((numel + block - 1) / block, [&](size_t blk) {
        std::mt19937_64 rng(seed + blk * 0x9E3779B97F4A7C15ull);
        for (uint64_t i = blk * block; i < std::min(numel, (blk + 1) * block); ++i) {
            const uint64_t r = rng();
            const uint32_t e = std::min(std::countr_one(r >> 40), 6);
            const uint32_t sign = (r >> 39) & 1;
            uint8_t* v = out.data() + i * vb;
            uint16_t x = 0;
            switch (dt) {
                case DType::F8_E4M3:
                    v[0] = static_cast<uint8_t>(sign << 7 | (7 - e) << 3 | (r & 7));
                    break;
                case DType::F8_E5M2:
                    v[0] = static_cast<uint8_t>(sign << 7 | (15 - e) << 2 | (r & 3));
                    break;
                case DType::BF16:
                    x = static_cast<uint16_t>(sign << 15 | (120 - e) << 7 | (r & 0x7F));
                    break;
                case DType::F16:
                    x = static_cast<uint16_t>(sign << 15 | (14 - e) << 10 | (r & 0x3FF));
                    break;
                default:
                    for (size_t b = 0; b < vb; ++b) v[b] = static_cast<uint8_t>(r >> (8 * b));
            }
            if (dt == DType::BF16 || dt == DType::F16) {
                v[0] = static_cast<uint8_t>(x);
                v[1] = static_cast<uint8_t>(x >> 8);
            }
        }
    });
    return out;
}

// An encoded tensor, its source values and its device copy; heap-held so the views into the blob stay valid.
struct Encoded {
    DType dtype;
    std::vector<uint8_t> values;
    std::vector<uint8_t> blob;
    ecf8::PreparedTensor tensor;
    ecf8::DeviceTensor device;
    size_t value_bytes() const { return ecf8::dtype_size(dtype); }
    bool huffman() const { return tensor.view().header.mode == static_cast<uint8_t>(ecf8::BlobMode::Huffman); }
};

std::unique_ptr<Encoded> encode(DType dt, uint64_t numel, const ecf8::EncodeOptions& opt, uint64_t seed,
                                cudaStream_t stream) {
    auto e = std::make_unique<Encoded>();
    e->dtype = dt;
    e->values = make_values(dt, numel, seed);
    e->blob = ecf8::encode_tensor(dt, e->values.data(), numel, opt, &pool());
    e->tensor =
        ecf8::PreparedTensor::prepare(e->blob, std::string(ecf8::dtype_name(dt)) + "[" + std::to_string(numel) + "]");
    e->device = ecf8::DeviceTensor::upload(e->tensor, stream);
    return e;
}

std::string describe(const Encoded& e, uint64_t begin, uint64_t end) {
    return e.tensor.label() + (e.huffman() ? " huffman" : " raw") +
           " lane_elems=" + std::to_string(e.tensor.view().header.lane_elems) +
           " group_chunks=" + std::to_string(e.tensor.view().header.group_chunks) + " range [" + std::to_string(begin) +
           ", " + std::to_string(end) + ")";
}

// Index of the first differing byte, or -1.
long long first_difference(const uint8_t* a, const uint8_t* b, size_t n) {
    const auto m = std::mismatch(a, a + n, b);
    return m.first == a + n ? -1 : static_cast<long long>(m.first - a);
}

// A poisoned device output buffer: kGuard bytes, the range (shifted by `misalign` bytes), kGuard bytes.
struct DeviceOutput {
    uint8_t* base = nullptr;
    size_t bytes = 0, misalign = 0, total = 0;
    DeviceOutput(size_t range_bytes, size_t misalign_bytes, cudaStream_t stream)
        : bytes(range_bytes), misalign(misalign_bytes), total(2 * kGuard + range_bytes + misalign_bytes) {
        CUDA_CHECK(cudaMalloc(&base, total));
        CUDA_CHECK(cudaMemsetAsync(base, kPoison, total, stream));
    }
    ~DeviceOutput() { cudaFree(base); }
    DeviceOutput(const DeviceOutput&) = delete;
    DeviceOutput& operator=(const DeviceOutput&) = delete;
    uint8_t* out() const { return base + kGuard + misalign; }
    // Copies the buffer back; checks the guards; returns the range.
    std::vector<uint8_t> fetch(cudaStream_t stream, const std::string& what) const {
        std::vector<uint8_t> host(total);
        CUDA_CHECK(cudaMemcpyAsync(host.data(), base, total, cudaMemcpyDeviceToHost, stream));
        CUDA_CHECK(cudaStreamSynchronize(stream));
        const size_t head = kGuard + misalign;
        for (size_t i = 0; i < head; ++i) EXPECT_EQ(host[i], kPoison) << what << ": wrote " << head - i << " B before";
        for (size_t i = head + bytes; i < total; ++i)
            EXPECT_EQ(host[i], kPoison) << what << ": wrote byte " << i - head - bytes << " past the end";
        return std::vector<uint8_t>(host.begin() + head, host.begin() + head + bytes);
    }
};

class Ecf8DecodeGpu : public ::testing::Test {
protected:
    void SetUp() override {
        int devices = 0;
        if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) GTEST_SKIP() << "no CUDA device";
        CUDA_CHECK(cudaStreamCreate(&stream_));
        CUDA_CHECK(cudaMalloc(&flag_, sizeof(int)));
        clear_flag();
    }
    void TearDown() override {
        if (flag_) cudaFree(flag_);
        if (stream_) cudaStreamDestroy(stream_);
    }

    void clear_flag() { CUDA_CHECK(cudaMemsetAsync(flag_, 0, sizeof(int), stream_)); }
    int read_flag() {
        int h = -1;
        CUDA_CHECK(cudaMemcpyAsync(&h, flag_, sizeof(int), cudaMemcpyDeviceToHost, stream_));
        CUDA_CHECK(cudaStreamSynchronize(stream_));
        return h;
    }

    // GPU decode of [begin, end) into a poisoned buffer, compared with the CPU decode and the source bytes.
    void expect_slice_matches(const Encoded& e, uint64_t begin, uint64_t end, size_t misalign = 0) {
        const std::string what = describe(e, begin, end) + " misalign=" + std::to_string(misalign);
        const size_t vb = e.value_bytes(), bytes = (end - begin) * vb;
        DeviceOutput out(bytes, misalign, stream_);
        ecf8::ecf8_decode_cuda(e.device, begin, end, out.out(), flag_, stream_);
        const std::vector<uint8_t> gpu = out.fetch(stream_, what);
        std::vector<uint8_t> cpu(bytes);
        ecf8::decode_range(e.tensor, begin, end, cpu.data(), &pool());
        EXPECT_EQ(first_difference(gpu.data(), cpu.data(), bytes), -1) << what << ": GPU differs from CPU";
        EXPECT_EQ(first_difference(cpu.data(), e.values.data() + begin * vb, bytes), -1) << what << ": not lossless";
        EXPECT_EQ(read_flag(), 0) << what;
    }

    cudaStream_t stream_ = nullptr;
    int* flag_ = nullptr;
};

constexpr DType kCodedTypes[] = {DType::F8_E4M3, DType::F8_E5M2, DType::BF16, DType::F16};

TEST_F(Ecf8DecodeGpu, WholeTensorsMatchCpuForEveryDtypeAndSize) {
    const uint64_t seed = test_seed();
    for (DType dt : kCodedTypes) {
        for (uint64_t n : {uint64_t{0}, uint64_t{1}, uint64_t{4095}, uint64_t{1'000'007}}) {
            for (bool allow_raw : {true, false}) {
                ecf8::EncodeOptions opt;
                opt.allow_raw = allow_raw;
                auto e = encode(dt, n, opt, seed + n, stream_);
                if (!allow_raw) EXPECT_TRUE(e->huffman());
                expect_slice_matches(*e, 0, n);
            }
        }
    }
}

TEST_F(Ecf8DecodeGpu, TensorsOver64MElements) {
    const uint64_t seed = test_seed();
    const uint64_t n = (uint64_t{64} << 20) + 4099;
    for (DType dt : kCodedTypes) {
        auto e = encode(dt, n, ecf8::EncodeOptions{}, seed ^ 64, stream_);
        EXPECT_TRUE(e->huffman());
        expect_slice_matches(*e, 0, n);
        expect_slice_matches(*e, n / 3, n - 12345);
    }
}

TEST_F(Ecf8DecodeGpu, SlicesGroupsAndMisalignedOutputs) {
    const uint64_t seed = test_seed();
    std::mt19937_64 rng(seed);
    for (DType dt : kCodedTypes) {
        for (int variant = 0; variant < 4; ++variant) {
            ecf8::EncodeOptions opt;
            opt.allow_raw = false;
            opt.lane_elems = variant == 0 ? 2 : 64 * variant;  // chunks of 64 .. 6144 elements
            opt.group_elems = variant >= 2 ? 5000 : 0;         // several codebooks: blocks straddle groups
            opt.max_code_len = variant == 3 ? 9 : 12;
            const uint64_t n = 300'000 + rng() % 1000;
            auto e = encode(dt, n, opt, seed + variant, stream_);
            const uint64_t ce = e->tensor.view().chunk_elems();
            expect_slice_matches(*e, 0, n, 1);
            expect_slice_matches(*e, ce, 3 * ce);      // whole chunks
            expect_slice_matches(*e, ce - 1, ce + 1);  // two elements across a chunk boundary
            expect_slice_matches(*e, n - 1, n);        // the last element
            expect_slice_matches(*e, 5, 5);            // empty
            for (int i = 0; i < 6; ++i) {
                uint64_t a = rng() % (n + 1), b = rng() % (n + 1);
                if (a > b) std::swap(a, b);
                expect_slice_matches(*e, a, b, i % 2 == 0 ? 0 : 1 + rng() % 15);
                expect_slice_matches(*e, a & ~uint64_t{15}, b);  // 16-byte aligned starts take the wide path
            }
        }
    }
}

TEST_F(Ecf8DecodeGpu, RawBlobsAreCopied) {
    const uint64_t seed = test_seed();
    auto f32 = encode(DType::F32, 100'003, ecf8::EncodeOptions{}, seed, stream_);
    EXPECT_FALSE(f32->huffman());
    expect_slice_matches(*f32, 0, 100'003);
    expect_slice_matches(*f32, 17, 99'999, 3);
    auto tiny = encode(DType::BF16, 3, ecf8::EncodeOptions{}, seed, stream_);  // too small to code
    EXPECT_FALSE(tiny->huffman());
    expect_slice_matches(*tiny, 1, 3);
}

TEST_F(Ecf8DecodeGpu, UploadFromPinnedMatchesUpload) {
    const uint64_t seed = test_seed();
    ecf8::EncodeOptions opt;
    opt.lane_elems = 128;
    opt.group_elems = 20'000;
    auto e = encode(DType::BF16, 500'000, opt, seed, stream_);
    uint8_t* pinned = nullptr;
    CUDA_CHECK(cudaMallocHost(&pinned, e->blob.size()));
    std::copy(e->blob.begin(), e->blob.end(), pinned);
    e->device = ecf8::DeviceTensor::upload_from_pinned(e->tensor, pinned, stream_);
    expect_slice_matches(*e, 0, 500'000);
    expect_slice_matches(*e, 1234, 456'789);
    CUDA_CHECK(cudaFreeHost(pinned));
    ecf8::DeviceTensor moved = std::move(e->device);
    EXPECT_EQ(e->device.device_bytes(), 0u);
    EXPECT_EQ(moved.device_bytes(), ecf8::device_blob_bytes(e->tensor));
}

TEST_F(Ecf8DecodeGpu, BatchedLaunchOfManyTensors) {
    const uint64_t seed = test_seed();
    std::mt19937_64 rng(seed);
    std::vector<std::unique_ptr<Encoded>> tensors;
    ecf8::EncodeOptions small;
    small.lane_elems = 32;  // 1024-element chunks
    small.allow_raw = false;
    ecf8::EncodeOptions grouped = small;
    grouped.group_elems = 3000;
    tensors.push_back(encode(DType::F8_E4M3, 250'001, small, seed + 1, stream_));
    tensors.push_back(encode(DType::BF16, 100'003, grouped, seed + 2, stream_));
    tensors.push_back(encode(DType::F8_E5M2, 700, small, seed + 3, stream_));  // one partial chunk
    tensors.push_back(encode(DType::F16, 1500, small, seed + 4, stream_));
    tensors.push_back(encode(DType::F32, 40'000, ecf8::EncodeOptions{}, seed + 5, stream_));  // raw
    tensors.push_back(encode(DType::BF16, 2'000'003, ecf8::EncodeOptions{}, seed + 6, stream_));
    struct Want {
        const Encoded* e;
        uint64_t begin, end;
    };
    std::vector<Want> wants;
    for (const auto& t : tensors) {
        const uint64_t n = t->tensor.numel();
        wants.push_back({t.get(), 0, n});
        wants.push_back({t.get(), n / 2, n / 2});  // empty task
        uint64_t a = rng() % n, b = rng() % n;
        wants.push_back({t.get(), std::min(a, b), std::max(a, b) + 1});
    }
    std::vector<std::unique_ptr<DeviceOutput>> outs;
    std::vector<ecf8::DecodeTask> tasks;
    for (size_t i = 0; i < wants.size(); ++i) {
        const Want& w = wants[i];
        outs.push_back(std::make_unique<DeviceOutput>((w.end - w.begin) * w.e->value_bytes(), i % 3, stream_));
        tasks.push_back({w.e->device.blob(), w.begin, w.end, outs.back()->out()});
    }
    const std::vector<uint32_t> prefix = ecf8::decode_task_prefix(tasks);
    ecf8::DecodeTask* tasks_device = nullptr;
    uint32_t* prefix_device = nullptr;
    CUDA_CHECK(cudaMalloc(&tasks_device, tasks.size() * sizeof(ecf8::DecodeTask)));
    CUDA_CHECK(cudaMalloc(&prefix_device, prefix.size() * sizeof(uint32_t)));
    CUDA_CHECK(cudaMemcpyAsync(tasks_device, tasks.data(), tasks.size() * sizeof(ecf8::DecodeTask),
                               cudaMemcpyHostToDevice, stream_));
    CUDA_CHECK(cudaMemcpyAsync(prefix_device, prefix.data(), prefix.size() * sizeof(uint32_t), cudaMemcpyHostToDevice,
                               stream_));
    ecf8::ecf8_decode_batch_cuda(tasks_device, prefix_device, static_cast<uint32_t>(tasks.size()), prefix.back(), flag_,
                                 stream_);
    for (size_t i = 0; i < wants.size(); ++i) {
        const Want& w = wants[i];
        const std::string what = "batched task " + std::to_string(i) + ": " + describe(*w.e, w.begin, w.end);
        const std::vector<uint8_t> gpu = outs[i]->fetch(stream_, what);
        std::vector<uint8_t> cpu(gpu.size());
        ecf8::decode_range(w.e->tensor, w.begin, w.end, cpu.data(), nullptr);
        EXPECT_EQ(first_difference(gpu.data(), cpu.data(), gpu.size()), -1) << what;
    }
    EXPECT_EQ(read_flag(), 0);
    CUDA_CHECK(cudaFree(tasks_device));
    CUDA_CHECK(cudaFree(prefix_device));
}

TEST_F(Ecf8DecodeGpu, ConcurrentDecodesOnTwoStreams) {
    const uint64_t seed = test_seed();
    cudaStream_t other = nullptr;
    CUDA_CHECK(cudaStreamCreate(&other));
    auto a = encode(DType::F8_E4M3, 8'000'011, ecf8::EncodeOptions{}, seed + 1, stream_);
    auto b = encode(DType::BF16, 4'000'037, ecf8::EncodeOptions{}, seed + 2, stream_);
    CUDA_CHECK(cudaStreamSynchronize(stream_));
    for (int round = 0; round < 3; ++round) {
        DeviceOutput out_a(a->values.size(), 0, stream_), out_b(b->values.size(), 0, other);
        CUDA_CHECK(cudaStreamSynchronize(stream_));
        CUDA_CHECK(cudaStreamSynchronize(other));
        // Both decodes are in flight at once; each stream decodes both tensors, in opposite orders.
        DeviceOutput out_a2(a->values.size(), 0, other), out_b2(b->values.size(), 0, stream_);
        ecf8::ecf8_decode_cuda(a->device, 0, a->tensor.numel(), out_a.out(), flag_, stream_);
        ecf8::ecf8_decode_cuda(b->device, 0, b->tensor.numel(), out_b.out(), flag_, other);
        ecf8::ecf8_decode_cuda(b->device, 0, b->tensor.numel(), out_b2.out(), flag_, stream_);
        ecf8::ecf8_decode_cuda(a->device, 0, a->tensor.numel(), out_a2.out(), flag_, other);
        CUDA_CHECK(cudaStreamSynchronize(other));
        for (auto [out, e, s] : {std::tuple{&out_a, a.get(), stream_}, std::tuple{&out_b, b.get(), other},
                                 std::tuple{&out_b2, b.get(), stream_}, std::tuple{&out_a2, a.get(), other}}) {
            const std::vector<uint8_t> gpu = out->fetch(s, describe(*e, 0, e->tensor.numel()));
            EXPECT_EQ(first_difference(gpu.data(), e->values.data(), gpu.size()), -1) << "round " << round;
        }
        EXPECT_EQ(read_flag(), 0);
    }
    CUDA_CHECK(cudaStreamDestroy(other));
}

TEST_F(Ecf8DecodeGpu, MovedChunkBoundarySetsErrorFlag) {
    ecf8::EncodeOptions opt;
    opt.lane_elems = 64;
    opt.allow_raw = false;
    auto e = encode(DType::F8_E4M3, 200'000, opt, test_seed(), stream_);
    // Move the boundary between chunks 0 and 1 by one word: the blob stays valid, but chunk 0 no longer ends
    // where its offsets say.
    const ecf8::BlobView& v = e->tensor.view();
    ASSERT_GE(v.header.chunk_count, 2u);
    uint32_t* offsets = reinterpret_cast<uint32_t*>(e->blob.data() + v.layout.chunk_offsets);
    ASSERT_LT(offsets[0], offsets[1]);
    offsets[1] -= 1;
    e->tensor = ecf8::PreparedTensor::prepare(e->blob, "corrupt");
    e->device = ecf8::DeviceTensor::upload(e->tensor, stream_);
    std::vector<uint8_t> cpu(200'000);
    EXPECT_THROW(ecf8::decode_range(e->tensor, 0, 200'000, cpu.data(), nullptr), ecf8::Error);
    DeviceOutput out(200'000, 0, stream_);
    ecf8::ecf8_decode_cuda(e->device, 0, 200'000, out.out(), flag_, stream_);
    out.fetch(stream_, "corrupt");
    EXPECT_EQ(read_flag(), 1);
    EXPECT_THROW(ecf8::ecf8_decode_check_error(flag_, stream_, "corrupt"), ecf8::Error);
    EXPECT_EQ(read_flag(), 0);  // the check cleared it: a later check reports only new corruption
    // A slice that avoids the two damaged chunks decodes cleanly.
    const uint64_t ce = v.chunk_elems();
    DeviceOutput clean((200'000 - 2 * ce), 0, stream_);
    ecf8::ecf8_decode_cuda(e->device, 2 * ce, 200'000, clean.out(), flag_, stream_);
    clean.fetch(stream_, "clean part");
    EXPECT_EQ(read_flag(), 0);
    EXPECT_NO_THROW(ecf8::ecf8_decode_check_error(flag_, stream_, "clean part"));
}

TEST_F(Ecf8DecodeGpu, FlippedStreamBitsDecodeLikeTheCpu) {
    const uint64_t seed = test_seed();
    std::mt19937_64 rng(seed);
    for (DType dt : {DType::F8_E4M3, DType::BF16}) {
        ecf8::EncodeOptions opt;
        opt.lane_elems = 32;
        opt.allow_raw = false;
        auto e = encode(dt, 100'000, opt, seed + 9, stream_);
        const ecf8::BlobView& v = e->tensor.view();
        uint32_t* stream = reinterpret_cast<uint32_t*>(e->blob.data() + v.layout.stream);
        for (int i = 0; i < 20; ++i) stream[rng() % v.header.stream_words] ^= 1u << (rng() % 32);
        e->tensor = ecf8::PreparedTensor::prepare(e->blob, "flipped");
        e->device = ecf8::DeviceTensor::upload(e->tensor, stream_);
        // The CPU decodes every chunk (writing it even when corrupt) and reports which ones are bad.
        const size_t vb = e->value_bytes();
        const uint64_t ce = v.chunk_elems();
        std::vector<uint8_t> cpu(e->values.size());
        bool any_bad = false;
        for (uint32_t c = 0; c < v.header.chunk_count; ++c) {
            std::vector<uint8_t> chunk(ce * vb);
            try {
                ecf8::decode_chunk(e->tensor, c, chunk.data());
            } catch (const ecf8::Error&) {
                any_bad = true;
            }
            const uint64_t n = std::min(ce, e->tensor.numel() - c * ce);
            std::copy(chunk.begin(), chunk.begin() + n * vb, cpu.begin() + c * ce * vb);
        }
        clear_flag();
        DeviceOutput out(cpu.size(), 0, stream_);
        ecf8::ecf8_decode_cuda(e->device, 0, e->tensor.numel(), out.out(), flag_, stream_);
        const std::vector<uint8_t> gpu = out.fetch(stream_, "flipped");
        EXPECT_EQ(first_difference(gpu.data(), cpu.data(), cpu.size()), -1) << ecf8::dtype_name(dt);
        EXPECT_EQ(read_flag(), any_bad ? 1 : 0) << ecf8::dtype_name(dt);
    }
}

TEST_F(Ecf8DecodeGpu, BadRangesThrow) {
    auto e = encode(DType::F8_E4M3, 1000, ecf8::EncodeOptions{}, test_seed(), stream_);
    DeviceOutput out(1000, 0, stream_);
    EXPECT_THROW(ecf8::ecf8_decode_cuda(e->device, 0, 1001, out.out(), flag_, stream_), ecf8::Error);
    EXPECT_THROW(ecf8::ecf8_decode_cuda(e->device, 10, 5, out.out(), flag_, stream_), ecf8::Error);
    std::vector<ecf8::DecodeTask> tasks{{e->device.blob(), 0, 1001, out.out()}};
    EXPECT_THROW(ecf8::decode_task_prefix(tasks), ecf8::Error);
}

}  // namespace
