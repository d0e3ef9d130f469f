// The op harness's cases for the weight store's decoder (backend_ops_harness.h): BlobDecoder::decode of a
// batch of ECF8 blobs and raw copies, placed in Device memory or (as host-tier expert blobs are) PinnedHost
// memory, each job gated by routed-expert picks or not. The outputs start as a sentinel pattern with a guard
// after each; every output byte is compared exactly: a job's tensor where it ran, the sentinel where it was
// skipped and in the guards.
#include "codec/decoder.h"
#include "codec/encoder.h"
#include "tests/runtime/backend_ops_harness.h"

namespace ecf8::opstest {
namespace {

constexpr size_t kGuard = 64;  // sentinel bytes after each output: a decode writes its bytes and no more

uint8_t sentinel(size_t i) { return static_cast<uint8_t>(0xA5 ^ (i * 13)); }

std::vector<uint8_t> sentinel_bytes(size_t n) {
    std::vector<uint8_t> v(n);
    for (size_t i = 0; i < n; ++i) v[i] = sentinel(i);
    return v;
}

// Gaussian values cast, as trained weights are: few exponents, so the blobs code well below their raw size.
std::vector<uint8_t> gaussian_bytes(std::mt19937& rng, DType dtype, uint64_t numel) {
    std::vector<uint8_t> out;
    if (dtype == DType::F8_E4M3) {
        std::normal_distribution<float> g(0.0f, 0.5f);
        for (uint64_t i = 0; i < numel; ++i) out.push_back(float_to_fp8_e4m3(g(rng)));
    } else if (dtype == DType::BF16) {
        std::normal_distribution<float> g(0.0f, 0.02f);
        out.resize(numel * 2);
        for (uint64_t i = 0; i < numel; ++i) {
            const uint16_t b = float_to_bf16(g(rng));
            std::memcpy(out.data() + 2 * i, &b, 2);
        }
    } else {
        std::uniform_int_distribution<int> byte(0, 255);
        for (uint64_t i = 0; i < numel; ++i) out.push_back(static_cast<uint8_t>(byte(rng)));
    }
    return out;
}

struct DrawnJob {
    DecodeJobSpec spec;
    std::vector<uint8_t> bytes;  // the tensor's bytes (the raw copy's source)
    std::vector<uint8_t> blob;   // its ECF8 blob; empty for a raw copy
    int32_t pick_index = -1;     // picks = offsets + pick_index; -1: picks null
};

struct DrawnBatch {
    std::vector<DrawnJob> jobs;
    std::vector<int32_t> offsets;  // moe_dispatch-like pick offsets, each gated job's range at its index
};

bool runs(const DrawnJob& j) { return j.spec.picks != PickRange::Empty; }

}  // namespace

OpCase make_blob_decode(std::mt19937& rng, std::vector<DecodeJobSpec> specs) {
    auto in = std::make_shared<DrawnBatch>();
    in->offsets.push_back(0);
    std::uniform_int_distribution<int32_t> count(1, 3);
    for (const DecodeJobSpec& s : specs) {
        DrawnJob j{s, gaussian_bytes(rng, s.dtype, s.numel), {}, -1};
        if (s.dtype != DType::U8) {
            j.blob = encode_tensor(s.dtype, j.bytes.data(), s.numel, EncodeOptions{});
            // Big tensors must take the Huffman path, not the encoder's raw fallback.
            const auto mode = PreparedTensor::prepare(j.blob, "drawn").view().header.mode;
            if (s.numel >= 4096) {
                EXPECT_EQ(mode, static_cast<uint8_t>(BlobMode::Huffman)) << s.numel << " elements";
            }
        }
        if (s.picks != PickRange::None) {
            j.pick_index = static_cast<int32_t>(in->offsets.size()) - 1;
            in->offsets.push_back(in->offsets.back() + (s.picks == PickRange::Picked ? count(rng) : 0));
        }
        in->jobs.push_back(std::move(j));
    }
    return {"decode",
            [=](const Device& d) {
                Backend& b = *d.backend;
                const size_t n = in->jobs.size();
                std::unique_ptr<BlobDecoder> decoder = d.ops().make_blob_decoder(n);
                std::vector<PreparedTensor> prepared;
                prepared.reserve(n);  // jobs point at them
                std::vector<Buffer> keep, outs;
                const Buffer picks = d.up(in->offsets);
                std::vector<BlobJob> jobs;
                for (size_t k = 0; k < n; ++k) {
                    const DrawnJob& t = in->jobs[k];
                    const MemoryKind kind = t.spec.pinned ? MemoryKind::PinnedHost : MemoryKind::Device;
                    BlobJob j;
                    j.bytes = t.bytes.size();
                    if (t.blob.empty()) {  // a raw copy, as WeightMode::RawCopy's
                        keep.push_back(b.buffer(std::max<size_t>(j.bytes, 16), kind, "test"));
                        if (t.spec.pinned)
                            std::memcpy(keep.back().data(), t.bytes.data(), j.bytes);  // host-visible
                        else
                            d.ops().to_device(keep.back().data(), t.bytes.data(), j.bytes, d.s());
                        j.src = keep.back().as<uint8_t>();
                    } else {
                        prepared.push_back(PreparedTensor::prepare(t.blob, "blob_" + std::to_string(k)));
                        PreparedTensor& p = prepared.back();
                        const uint64_t placed = decoder->placed_bytes(p, t.blob.size());
                        keep.push_back(b.buffer(placed, kind, "test"));
                        j.blob = static_cast<uint32_t>(n - 1 - k);  // ids need not follow the jobs' order
                        // Synchronous (no stream): t.blob may be read until place() returns.
                        decoder->place(j.blob, p, t.blob.data(), keep.back().as<uint8_t>(), placed);
                        j.tensor = &p;
                    }
                    outs.push_back(d.up(sentinel_bytes(j.bytes + kGuard)));
                    j.out = outs.back().as<uint8_t>();
                    if (t.pick_index >= 0) j.picks = picks.as<int32_t>() + t.pick_index;
                    jobs.push_back(j);
                }
                decoder->decode(jobs, d.s());
                decoder->queue_error_check(d.s());
                Output o;
                for (size_t k = 0; k < n; ++k) {  // to_host synchronizes the stream
                    const std::vector<uint8_t> v = d.down<uint8_t>(outs[k], jobs[k].bytes + kGuard);
                    o.i.insert(o.i.end(), v.begin(), v.end());
                }
                decoder->throw_if_failed();
                return o;
            },
            [=] {
                Reference r;
                for (const DrawnJob& t : in->jobs) {
                    std::vector<uint8_t> want = runs(t) ? t.bytes : sentinel_bytes(t.bytes.size());
                    for (size_t i = t.bytes.size(); i < t.bytes.size() + kGuard; ++i) want.push_back(sentinel(i));
                    r.i.insert(r.i.end(), want.begin(), want.end());
                }
                return r;
            }};
}

}  // namespace ecf8::opstest
