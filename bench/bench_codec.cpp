// Codec micro-benchmarks on block-quantized Student-t FP8 weights and BF16 weights: encode, whole-tensor
// decode on 1 and 2 threads, and a row-slice decode. Bytes processed are decoded (raw) bytes.
#include <benchmark/benchmark.h>

#include <cstring>

#include "codec/decoder.h"
#include "codec/encoder.h"
#include "common/thread_pool.h"
#include "sharding/synth_weights.h"

namespace {

struct Fixture {
    ecf8::DType dtype;
    std::vector<uint8_t> raw, blob;
    uint64_t numel;
};

const Fixture& fixture(ecf8::DType dt) {
    static Fixture fp8 = [] {
        ecf8::SynthSpec spec;
        auto q = ecf8::synth_fp8_block_quantized(4096, 4096, spec);
        Fixture f{ecf8::DType::F8_E4M3, std::move(q.weight), {}, 4096ull * 4096};
        f.blob = ecf8::encode_tensor(f.dtype, f.raw.data(), f.numel, {});
        return f;
    }();
    static Fixture bf16 = [] {
        ecf8::SynthSpec spec;
        auto v = ecf8::synth_bf16(8u << 20, spec);
        Fixture f{ecf8::DType::BF16, std::vector<uint8_t>(v.size() * 2), {}, v.size()};
        std::memcpy(f.raw.data(), v.data(), f.raw.size());
        f.blob = ecf8::encode_tensor(f.dtype, f.raw.data(), f.numel, {});
        return f;
    }();
    return dt == ecf8::DType::BF16 ? bf16 : fp8;
}

void BM_Decode(benchmark::State& state, ecf8::DType dt) {
    const Fixture& f = fixture(dt);
    auto t = ecf8::PreparedTensor::prepare(f.blob, "bench");
    ecf8::ThreadPool pool(static_cast<int>(state.range(0)));
    std::vector<uint8_t> out(f.raw.size());
    for (auto _ : state) ecf8::decode_all(t, out.data(), &pool);
    if (out != f.raw) state.SkipWithError("decode mismatch");
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * f.raw.size()));
}

void BM_Encode(benchmark::State& state, ecf8::DType dt) {
    const Fixture& f = fixture(dt);
    for (auto _ : state) benchmark::DoNotOptimize(ecf8::encode_tensor(dt, f.raw.data(), f.numel, {}));
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * f.raw.size()));
}

void BM_DecodeRowSlice(benchmark::State& state) {
    const Fixture& f = fixture(ecf8::DType::F8_E4M3);
    auto t = ecf8::PreparedTensor::prepare(f.blob, "bench");
    const uint64_t cols = 4096, rows = 128;  // one 128-row block, as a tensor-parallel slice would be
    std::vector<uint8_t> out(rows * cols);
    for (auto _ : state) ecf8::decode_range(t, 1000 * cols, (1000 + rows) * cols, out.data(), nullptr);
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * out.size()));
}

BENCHMARK_CAPTURE(BM_Decode, fp8, ecf8::DType::F8_E4M3)->Arg(1)->Arg(2)->UseRealTime();
BENCHMARK_CAPTURE(BM_Decode, bf16, ecf8::DType::BF16)->Arg(1)->Arg(2)->UseRealTime();
BENCHMARK_CAPTURE(BM_Encode, fp8, ecf8::DType::F8_E4M3);
BENCHMARK_CAPTURE(BM_Encode, bf16, ecf8::DType::BF16);
BENCHMARK(BM_DecodeRowSlice);

}  // namespace

BENCHMARK_MAIN();
