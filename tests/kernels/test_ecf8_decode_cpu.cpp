// The batched CPU decode (kernels/cpu/ecf8_decode.h) against the codec's per-tensor decode_range: same
// bytes for every dtype, chunking, codebook grouping and slice, with or without a thread pool.
#include <gtest/gtest.h>

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
#include "kernels/cpu/ecf8_decode.h"

namespace {

using ecf8::DType;

using ecf8::test::test_seed;

// Float-like values with geometric exponents (a few bits of exponent entropy, as in real weights); other
// dtypes get uniform bytes.
std::vector<uint8_t> make_values(DType dt, uint64_t numel, uint64_t seed) {
    std::mt19937_64 rng(seed);
    const size_t vb = ecf8::dtype_size(dt);
    std::vector<uint8_t> out(numel * vb);
    for (uint64_t i = 0; i < numel; ++i) {
        const uint64_t r = rng();
        const uint32_t e = std::min(std::countr_one(r >> 40), 6);
        const uint32_t sign = (r >> 39) & 1;
        uint8_t* v = out.data() + i * vb;
        switch (dt) {
            case DType::F8_E4M3:
                v[0] = static_cast<uint8_t>(sign << 7 | (7 - e) << 3 | (r & 7));
                break;
            case DType::F8_E5M2:
                v[0] = static_cast<uint8_t>(sign << 7 | (15 - e) << 2 | (r & 3));
                break;
            case DType::BF16: {
                const uint16_t x = static_cast<uint16_t>(sign << 15 | (120 - e) << 7 | (r & 0x7F));
                v[0] = static_cast<uint8_t>(x), v[1] = static_cast<uint8_t>(x >> 8);
                break;
            }
            case DType::F16: {
                const uint16_t x = static_cast<uint16_t>(sign << 15 | (14 - e) << 10 | (r & 0x3FF));
                v[0] = static_cast<uint8_t>(x), v[1] = static_cast<uint8_t>(x >> 8);
                break;
            }
            default:
                for (size_t b = 0; b < vb; ++b) v[b] = static_cast<uint8_t>(r >> (8 * b));
        }
    }
    return out;
}

// An encoded tensor with its source values; heap-held so the PreparedTensor's view of the blob stays valid.
struct Encoded {
    DType dtype;
    std::vector<uint8_t> values;
    std::vector<uint8_t> blob;
    ecf8::PreparedTensor tensor;
};

std::unique_ptr<Encoded> encode(DType dt, uint64_t numel, const ecf8::EncodeOptions& opt, uint64_t seed,
                                const std::string& label) {
    auto e = std::make_unique<Encoded>();
    e->dtype = dt;
    e->values = make_values(dt, numel, seed);
    e->blob = ecf8::encode_tensor(dt, e->values.data(), numel, opt);
    e->tensor = ecf8::PreparedTensor::prepare(e->blob, label);
    return e;
}

struct Slice {
    const Encoded* enc;
    uint64_t begin, end;
};

// Random slices of each tensor: the whole tensor, an empty range, single elements and random windows.
std::vector<Slice> make_slices(const std::vector<std::unique_ptr<Encoded>>& tensors, std::mt19937_64& rng) {
    std::vector<Slice> slices;
    for (const auto& e : tensors) {
        const uint64_t n = e->tensor.numel();
        slices.push_back({e.get(), 0, n});
        slices.push_back({e.get(), n / 2, n / 2});
        if (n == 0) continue;
        slices.push_back({e.get(), n - 1, n});
        for (int i = 0; i < 4; ++i) {
            uint64_t a = rng() % (n + 1), b = rng() % (n + 1);
            if (a > b) std::swap(a, b);
            slices.push_back({e.get(), a, b});
        }
    }
    return slices;
}

std::vector<std::unique_ptr<Encoded>> make_tensors(uint64_t seed) {
    std::vector<std::unique_ptr<Encoded>> t;
    ecf8::EncodeOptions small_chunks;
    small_chunks.lane_elems = 64;  // 2048-element chunks: many chunks per tensor
    ecf8::EncodeOptions grouped = small_chunks;
    grouped.group_elems = 5000;  // three chunks per codebook
    ecf8::EncodeOptions huffman_only;
    huffman_only.allow_raw = false;
    t.push_back(encode(DType::F8_E4M3, 300'001, small_chunks, seed + 1, "e4m3"));
    t.push_back(encode(DType::F8_E5M2, 123'457, grouped, seed + 2, "e5m2-grouped"));
    t.push_back(encode(DType::BF16, 200'003, grouped, seed + 3, "bf16-grouped"));
    t.push_back(encode(DType::F16, 77'777, small_chunks, seed + 4, "f16"));
    t.push_back(encode(DType::BF16, 1'000'003, ecf8::EncodeOptions{}, seed + 5, "bf16-default"));
    t.push_back(encode(DType::F32, 50'001, ecf8::EncodeOptions{}, seed + 6, "f32-raw"));
    t.push_back(encode(DType::F8_E4M3, 0, huffman_only, seed + 7, "empty"));
    t.push_back(encode(DType::F8_E4M3, 1, huffman_only, seed + 8, "one"));
    return t;
}

size_t value_bytes(const Slice& s) { return ecf8::dtype_size(s.enc->dtype); }

TEST(Ecf8DecodeCpu, SingleTensorMatchesDecodeRange) {
    const uint64_t seed = test_seed();
    auto tensors = make_tensors(seed);
    for (const auto& e : tensors) {  // the coded tensors really are coded
        const bool raw = e->tensor.view().header.mode == static_cast<uint8_t>(ecf8::BlobMode::Raw);
        EXPECT_EQ(raw, e->tensor.label().ends_with("raw")) << e->tensor.label();
    }
    std::mt19937_64 rng(seed);
    ecf8::ThreadPool pool(3);
    for (const Slice& s : make_slices(tensors, rng)) {
        const size_t bytes = (s.end - s.begin) * value_bytes(s);
        std::vector<uint8_t> want(bytes + 1, 0xA5), got(bytes + 1, 0xA5);
        ecf8::decode_range(s.enc->tensor, s.begin, s.end, want.data(), nullptr);
        ecf8::ecf8_decode_cpu(s.enc->tensor, s.begin, s.end, got.data(), &pool);
        EXPECT_EQ(got, want) << s.enc->tensor.label() << " [" << s.begin << ", " << s.end << ")";
        EXPECT_TRUE(std::equal(want.begin(), want.end() - 1, s.enc->values.begin() + s.begin * value_bytes(s)));
    }
}

TEST(Ecf8DecodeCpu, BatchMatchesDecodeRange) {
    const uint64_t seed = test_seed();
    auto tensors = make_tensors(seed);
    std::mt19937_64 rng(seed ^ 0x9E3779B97F4A7C15ull);
    const std::vector<Slice> slices = make_slices(tensors, rng);
    ecf8::ThreadPool pool(3);
    for (ecf8::ThreadPool* p : {static_cast<ecf8::ThreadPool*>(nullptr), &pool}) {
        std::vector<std::vector<uint8_t>> outs(slices.size());
        std::vector<ecf8::DecodeJob> jobs;
        for (size_t i = 0; i < slices.size(); ++i) {
            outs[i].assign((slices[i].end - slices[i].begin) * value_bytes(slices[i]) + 1, 0xA5);
            jobs.push_back({&slices[i].enc->tensor, slices[i].begin, slices[i].end, outs[i].data()});
        }
        ecf8::ecf8_decode_batch_cpu(jobs, p);
        for (size_t i = 0; i < slices.size(); ++i) {
            const Slice& s = slices[i];
            std::vector<uint8_t> want(outs[i].size(), 0xA5);
            ecf8::decode_range(s.enc->tensor, s.begin, s.end, want.data(), nullptr);
            EXPECT_EQ(outs[i], want) << s.enc->tensor.label() << " [" << s.begin << ", " << s.end << ")"
                                     << (p ? " pool" : " no pool");
        }
    }
}

TEST(Ecf8DecodeCpu, EmptyBatchAndBadRanges) {
    ecf8::ecf8_decode_batch_cpu({}, nullptr);
    auto e = encode(DType::F8_E4M3, 1000, ecf8::EncodeOptions{}, test_seed(), "small");
    std::vector<uint8_t> out(2000);
    EXPECT_THROW(ecf8::ecf8_decode_batch_cpu({{&e->tensor, 10, 1001, out.data()}}, nullptr), ecf8::Error);
    EXPECT_THROW(ecf8::ecf8_decode_batch_cpu({{&e->tensor, 20, 10, out.data()}}, nullptr), ecf8::Error);
    EXPECT_THROW(ecf8::ecf8_decode_batch_cpu({{nullptr, 0, 0, out.data()}}, nullptr), ecf8::Error);
    EXPECT_THROW(ecf8::ecf8_decode_cpu(e->tensor, 0, 1001, out.data(), nullptr), ecf8::Error);
}

TEST(Ecf8DecodeCpu, CorruptStreamThrowsFromBatch) {
    ecf8::EncodeOptions opt;
    opt.lane_elems = 64;
    opt.allow_raw = false;
    auto e = encode(DType::F8_E4M3, 100'000, opt, test_seed(), "corrupt");
    // Move the boundary between chunks 0 and 1 by one word: still a valid blob, but chunk 0 no longer
    // ends where its offsets say.
    const ecf8::BlobView& v = e->tensor.view();
    ASSERT_GE(v.header.chunk_count, 2u);
    uint32_t* offsets = reinterpret_cast<uint32_t*>(e->blob.data() + v.layout.chunk_offsets);
    ASSERT_LT(offsets[0], offsets[1]);
    offsets[1] -= 1;
    auto corrupt = ecf8::PreparedTensor::prepare(e->blob, "corrupt");
    std::vector<uint8_t> out(100'000);
    ecf8::ThreadPool pool(2);
    EXPECT_THROW(ecf8::ecf8_decode_batch_cpu({{&corrupt, 0, 100'000, out.data()}}, &pool), ecf8::Error);
}

}  // namespace
