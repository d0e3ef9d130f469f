// libFuzzer target for the ECF8 blob: parse_blob + PreparedTensor::prepare + decode_range must turn every input
// into either a decoded tensor or an ecf8::Error, never a crash, hang or out-of-bounds access.
//
// The first input byte selects a mode (its low bit):
//   mode 0: the rest of the input is a blob. It is copied into an exactly sized 16-byte-aligned buffer (so ASan
//           sees any read past its end), prepared, and decoded whole (or, for headers that claim a lot of
//           elements, the first and last elements), each into an exactly sized output buffer, by the SIMD and
//           the scalar decoder, which must agree.
//   mode 1: the rest is an encode request, bytes [1] dtype, [2] lane_elems, [3] code length cap and
//           codebook granularity, then the VALUES. They are encoded, decoded (whole and a sub-range) and must
//           come back byte-identical; anything else is a real bug and traps.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include "codec/container.h"
#include "codec/decoder.h"
#include "codec/encoder.h"
#include "codec/format.h"
#include "common/error.h"
#include "fuzz/aligned_copy.h"

namespace {

// Decoding more than this many bytes per input (or per chunk) is skipped to bound memory and time.
constexpr uint64_t kMaxDecodeBytes = uint64_t{1} << 22;

// Decodes [begin, end) into an exactly sized buffer, once with the SIMD path (where the CPU has one) and once
// with the scalar loop. The two must agree, on damaged input too: the same bytes, or the same error. Returns
// the bytes or throws that ecf8::Error.
std::vector<uint8_t> decode_window(const ecf8::PreparedTensor& t, uint64_t begin, uint64_t end) {
    const size_t bytes = static_cast<size_t>((end - begin) * t.view().value_bytes());
    std::vector<uint8_t> out[2] = {std::vector<uint8_t>(bytes), std::vector<uint8_t>(bytes)};
    std::string error[2];
    bool ok[2] = {true, true};
    for (int scalar = 0; scalar < 2; ++scalar) {
        ecf8::force_scalar_decode(scalar == 1);
        try {
            ecf8::decode_range(t, begin, end, out[scalar].data(), nullptr);
        } catch (const ecf8::Error& e) {
            ok[scalar] = false;
            error[scalar] = e.what();
        }
    }
    ecf8::force_scalar_decode(false);
    if (ok[0] != ok[1] || error[0] != error[1] || (ok[0] && out[0] != out[1])) __builtin_trap();
    if (!ok[0]) throw ecf8::Error(error[0]);
    return std::move(out[0]);
}

void fuzz_raw_blob(const uint8_t* data, size_t size) {
    AlignedCopy blob(data, size);
    try {
        ecf8::PreparedTensor t = ecf8::PreparedTensor::prepare({blob.data(), blob.size()}, "fuzz");
        const uint64_t numel = t.numel();
        if (numel == 0) {
            decode_window(t, 0, 0);
            return;
        }
        const uint64_t vb = t.view().value_bytes();
        const bool huffman = t.view().header.mode == static_cast<uint8_t>(ecf8::BlobMode::Huffman);
        // A valid blob decodes to at most ~8x its size (1 bit per 1-byte value); decoding far more than that
        // only repeats the same failing work, so the budget scales with the input.
        const uint64_t budget = std::min<uint64_t>(kMaxDecodeBytes, 16 * uint64_t{size} + 4096);
        if (numel <= budget / vb) {
            std::vector<uint8_t> all = decode_window(t, 0, numel);
            if (numel >= 3) {  // an interior window exercises the edge-chunk path
                std::vector<uint8_t> mid = decode_window(t, numel / 3, numel - numel / 3);
                if (std::memcmp(mid.data(), all.data() + numel / 3 * vb, mid.size()) != 0) __builtin_trap();
            }
            return;
        }
        // Too large to decode whole: decode the first and the last element when their chunks fit the budget.
        const uint64_t chunk_bytes = huffman ? t.view().chunk_elems() * vb : vb;
        if (chunk_bytes > budget) return;
        try {
            decode_window(t, 0, 1);
        } catch (const ecf8::Error&) {
        }
        decode_window(t, numel - 1, numel);
    } catch (const ecf8::Error&) {
    }
}

constexpr ecf8::DType kDTypes[] = {ecf8::DType::F8_E4M3, ecf8::DType::F8_E5M2, ecf8::DType::BF16, ecf8::DType::F16};

void fuzz_round_trip(const uint8_t* data, size_t size) {
    if (size < 3) return;
    const ecf8::DType dt = kDTypes[data[0] & 3];
    ecf8::EncodeOptions opt;
    opt.lane_elems = (data[1] % 17) * 2u;  // 0 (the default) or 2..32: small chunks, so short inputs have several
    const uint8_t knobs = data[2];
    opt.max_code_len = (knobs & 0x0F) == 0 ? ecf8::kMaxCodeLen : 1 + (knobs & 0x0F) % ecf8::kMaxCodeLen;
    opt.group_elems = uint64_t{static_cast<uint8_t>(knobs >> 4) & 7u} * 256;  // 0: one codebook per tensor
    opt.allow_raw = (knobs & 0x80) != 0;
    const size_t vb = ecf8::dtype_size(dt);
    const uint64_t numel = (size - 3) / vb;
    AlignedCopy values(data + 3, numel * vb);

    std::vector<uint8_t> blob;
    try {
        blob = ecf8::encode_tensor(dt, values.data(), numel, opt);
    } catch (const ecf8::Error&) {
        // The only legitimate refusal: more distinct symbols than a short code length cap can hold.
        if (opt.max_code_len >= 8) __builtin_trap();
        return;
    }
    AlignedCopy blob_copy(blob.data(), blob.size());
    try {
        ecf8::PreparedTensor t = ecf8::PreparedTensor::prepare({blob_copy.data(), blob_copy.size()}, "fuzz");
        if (t.numel() != numel || t.dtype() != dt) __builtin_trap();
        if (t.view().header.content_xxh64 != ecf8::xxh64_of(values.data(), numel * vb)) __builtin_trap();
        std::vector<uint8_t> out = decode_window(t, 0, numel);
        if (numel && std::memcmp(out.data(), values.data(), out.size()) != 0) __builtin_trap();
        if (numel >= 2) {
            const uint64_t begin = (data[1] * uint64_t{7919}) % numel;
            const uint64_t end = begin + 1 + (knobs * uint64_t{104729}) % (numel - begin);
            std::vector<uint8_t> part = decode_window(t, begin, end);
            if (std::memcmp(part.data(), values.data() + begin * vb, part.size()) != 0) __builtin_trap();
        }
    } catch (const ecf8::Error&) {
        __builtin_trap();  // a blob the encoder wrote must decode
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    if (data[0] & 1)
        fuzz_round_trip(data + 1, size - 1);
    else
        fuzz_raw_blob(data + 1, size - 1);
    return 0;
}
