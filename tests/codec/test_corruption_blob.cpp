// Corrupt and truncated ECF8 blobs: each must give an ecf8::Error naming the tensor, or (inside the stream) decode
// without crashing, identically on the SIMD and scalar paths. Run under ASan/UBSan; randomized parts print their
// seed (ECF8_TEST_SEED reproduces them).
#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "codec/container.h"
#include "codec/decoder.h"
#include "codec/encoder.h"
#include "codec/format.h"
#include "codec/safetensors.h"
#include "codec_test_util.h"
#include "common/error.h"
#include "common/thread_pool.h"
#include "corruption_util.h"

namespace ecf8 {
namespace {

namespace fs = std::filesystem;
using test::Bytes;
using test::contains;
using test::expect_error;
using test::Shape;

// ---------------------------------------------------------------------------------------------------------------
// Blob level

struct BlobSpec {
    const char* name;
    DType dtype;
    size_t numel;
    uint32_t lane_elems;   // 0: the default
    uint64_t group_elems;  // 0: one codebook per tensor
    Shape shape;
    bool allow_raw;
};

// Huffman blobs: one partial chunk, many chunks with one codebook, many chunks with group codebooks, tiny tensors,
// for the 1-byte and the 2-byte symbol kinds. Raw blobs: an uncodable dtype and incompressible FP8.
const BlobSpec kHuffmanSpecs[] = {
    {"fp8_one_chunk", DType::F8_E4M3, 1000, 0, 0, Shape::Gaussian, false},
    {"fp8_chunks", DType::F8_E4M3, 20000, 64, 0, Shape::Gaussian, false},
    {"fp8_groups", DType::F8_E4M3, 20000, 64, 4096, Shape::Gaussian, false},
    {"e5m2_tiny", DType::F8_E5M2, 7, 2, 0, Shape::Gaussian, false},
    {"bf16_chunks", DType::BF16, 5000, 32, 0, Shape::Gaussian, false},
    {"bf16_groups", DType::BF16, 9000, 16, 2048, Shape::Gaussian, false},
    {"f16_groups", DType::F16, 3000, 16, 1024, Shape::Gaussian, false},
};
const BlobSpec kRawSpecs[] = {
    {"f32_raw", DType::F32, 300, 0, 0, Shape::Uniform, true},
    {"fp8_raw", DType::F8_E4M3, 1000, 0, 0, Shape::Uniform, true},
};

struct TestBlob {
    const BlobSpec* spec = nullptr;
    Bytes values;
    Bytes blob;
    BlobHeader header;
    BlobLayout layout;
    std::string label() const { return spec->name; }
};

TestBlob make_blob(const BlobSpec& spec, uint64_t seed) {
    TestBlob b;
    b.spec = &spec;
    b.values = test::make_values(spec.shape, spec.numel, dtype_size(spec.dtype), seed);
    EncodeOptions opt;
    opt.lane_elems = spec.lane_elems;
    opt.group_elems = spec.group_elems;
    opt.allow_raw = spec.allow_raw;
    b.blob = encode_tensor(spec.dtype, b.values.data(), spec.numel, opt);
    EXPECT_GE(b.blob.size(), kBlobHeaderBytes);
    std::memcpy(&b.header, b.blob.data(), kBlobHeaderBytes);
    b.layout = blob_layout(b.header);
    return b;
}

std::vector<TestBlob> make_blobs(bool huffman, bool raw) {
    std::vector<TestBlob> out;
    uint64_t seed = test::test_seed();
    if (huffman)
        for (const BlobSpec& s : kHuffmanSpecs) out.push_back(make_blob(s, seed++));
    if (raw)
        for (const BlobSpec& s : kRawSpecs) out.push_back(make_blob(s, seed++));
    return out;
}

uint32_t* chunk_offsets(Bytes& blob, const BlobLayout& l) {
    return reinterpret_cast<uint32_t*>(blob.data() + l.chunk_offsets);
}
uint32_t* stream_words(Bytes& blob, const BlobLayout& l) { return reinterpret_cast<uint32_t*>(blob.data() + l.stream); }

enum class Outcome { PrepareThrew, DecodeThrew, Decoded, Skipped };

struct DecodeResult {
    Outcome outcome = Outcome::Skipped;
    std::string message;
    Bytes output;
};

constexpr uint64_t kMaxDecodeBytes = 64ull << 20;
constexpr uint8_t kPoison = 0xA5;
constexpr size_t kGuardBytes = 64;

// Selects the decoder's portable scalar loop (the GPU kernel's twin) instead of the SIMD path while alive.
class ScalarDecode {
public:
    explicit ScalarDecode(bool scalar) { force_scalar_decode(scalar); }
    ~ScalarDecode() { force_scalar_decode(false); }
    ScalarDecode(const ScalarDecode&) = delete;
    ScalarDecode& operator=(const ScalarDecode&) = delete;
};

// Prepares a copy of `blob` held in an exactly sized heap buffer (so ASan sees any read past its end), then
// decodes elements [0, numel) (or [begin, end) when given) into a buffer with a poisoned guard tail.
// Only ecf8::Error is caught: anything else escapes and fails the test.
DecodeResult try_decode(const Bytes& blob, const std::string& label, ThreadPool* pool = nullptr,
                        std::optional<std::pair<uint64_t, uint64_t>> range = std::nullopt, bool scalar = false) {
    ScalarDecode path(scalar);
    DecodeResult r;
    Bytes copy(blob);  // new[] storage: 16-byte aligned, exactly blob.size() bytes
    std::optional<PreparedTensor> t;
    try {
        t.emplace(PreparedTensor::prepare(copy, label));
    } catch (const Error& e) {
        r.outcome = Outcome::PrepareThrew;
        r.message = e.what();
        return r;
    }
    uint64_t begin = 0, end = t->numel();
    if (range) {
        begin = std::min(range->first, t->numel());
        end = std::min(range->second, t->numel());
    }
    const uint64_t vb = t->view().value_bytes();
    if (end - begin > kMaxDecodeBytes / vb) return r;  // a damaged numel that claims too much: not decoded here
    if (t->view().header.mode == static_cast<uint8_t>(BlobMode::Huffman) &&
        t->view().chunk_elems() * vb > kMaxDecodeBytes)
        return r;
    const size_t bytes = static_cast<size_t>((end - begin) * vb);
    Bytes out(bytes + kGuardBytes, kPoison);
    try {
        decode_range(*t, begin, end, out.data(), pool);
        r.outcome = Outcome::Decoded;
    } catch (const Error& e) {
        r.outcome = Outcome::DecodeThrew;
        r.message = e.what();
    }
    for (size_t i = bytes; i < out.size(); ++i) {
        if (out[i] != kPoison) {
            ADD_FAILURE() << label << ": decode_range wrote past the end of its output (byte " << i - bytes << ")";
            break;
        }
    }
    out.resize(bytes);
    r.output = std::move(out);
    return r;
}

TEST(BlobCorruption, ValidBlobsRoundTrip) {
    for (const TestBlob& b : make_blobs(true, true)) {
        SCOPED_TRACE(b.label());
        const bool huffman = b.header.mode == static_cast<uint8_t>(BlobMode::Huffman);
        EXPECT_EQ(huffman, !b.spec->allow_raw) << "the test blobs must cover both modes";
        DecodeResult r = try_decode(b.blob, b.label());
        ASSERT_EQ(r.outcome, Outcome::Decoded) << r.message;
        EXPECT_EQ(r.output, b.values);
    }
    // The multi-chunk and group specs really have several chunks and codebooks.
    TestBlob groups = make_blob(kHuffmanSpecs[2], 1);
    EXPECT_GE(groups.header.chunk_count, 4u);
    EXPECT_GE(groups.header.codebook_count, 3u);
}

// (a) Every truncation, and every extension, of a blob is rejected by prepare, naming the tensor.
TEST(BlobCorruption, TruncatedBlobsAreRejected) {
    for (const TestBlob& b : make_blobs(true, true)) {
        SCOPED_TRACE(b.label());
        const size_t n = b.blob.size();
        std::vector<size_t> lengths;
        // Every length near the ends and around each part boundary, and a stride through the rest.
        for (size_t len = 0; len < n; len += (n > 4096 ? 61 : 1)) lengths.push_back(len);
        for (size_t boundary : {size_t{0}, kBlobHeaderBytes, b.layout.chunk_offsets, b.layout.stream, b.layout.raw, n})
            for (size_t d = 0; d < 20; ++d) {
                if (boundary >= d && boundary - d < n) lengths.push_back(boundary - d);
                if (boundary + d < n) lengths.push_back(boundary + d);
            }
        for (size_t len : lengths) {
            Bytes cut(b.blob.begin(), b.blob.begin() + static_cast<std::ptrdiff_t>(len));
            DecodeResult r = try_decode(cut, b.label());
            ASSERT_EQ(r.outcome, Outcome::PrepareThrew) << "length " << len << " of " << n;
            EXPECT_TRUE(contains(r.message, b.label())) << r.message;
        }
        for (size_t extra : {1u, 4u, 16u, 64u}) {
            Bytes longer(b.blob);
            longer.resize(n + extra, 0);
            DecodeResult r = try_decode(longer, b.label());
            EXPECT_EQ(r.outcome, Outcome::PrepareThrew) << "extended by " << extra;
            EXPECT_TRUE(contains(r.message, b.label())) << r.message;
        }
    }
}

// Header field names by byte offset, and which fields a bit flip must always be rejected in.
const char* header_field(size_t byte) {
    struct Field {
        size_t offset;
        const char* name;
    };
    static const Field fields[] = {
        {offsetof(BlobHeader, magic), "magic"},
        {offsetof(BlobHeader, version), "version"},
        {offsetof(BlobHeader, dtype), "dtype"},
        {offsetof(BlobHeader, mode), "mode"},
        {offsetof(BlobHeader, numel), "numel"},
        {offsetof(BlobHeader, lane_elems), "lane_elems"},
        {offsetof(BlobHeader, chunk_count), "chunk_count"},
        {offsetof(BlobHeader, group_chunks), "group_chunks"},
        {offsetof(BlobHeader, codebook_count), "codebook_count"},
        {offsetof(BlobHeader, symbol_kind), "symbol_kind"},
        {offsetof(BlobHeader, max_code_len), "max_code_len"},
        {offsetof(BlobHeader, reserved0), "reserved0"},
        {offsetof(BlobHeader, reserved1), "reserved1"},
        {offsetof(BlobHeader, stream_words), "stream_words"},
        {offsetof(BlobHeader, raw_bytes), "raw_bytes"},
        {offsetof(BlobHeader, content_xxh64), "content_xxh64"},
    };
    const char* name = fields[0].name;
    for (const Field& f : fields)
        if (byte >= f.offset) name = f.name;
    return name;
}

bool always_rejected(const std::string& field, bool huffman) {
    // Fields whose value the others determine (or that must be zero): any change is inconsistent. The rest
    // (numel, lane_elems, group_chunks, max_code_len, dtype within a symbol kind) can change into another
    // consistent header, and content_xxh64 is not checked by the decoder at all.
    static const char* huffman_fields[] = {"magic",       "version",   "mode",      "chunk_count",  "codebook_count",
                                           "symbol_kind", "reserved0", "reserved1", "stream_words", "raw_bytes"};
    static const char* raw_fields[] = {"magic",       "version",        "mode",         "reserved0", "reserved1",
                                       "chunk_count", "codebook_count", "stream_words", "raw_bytes"};
    if (huffman)
        return std::find(std::begin(huffman_fields), std::end(huffman_fields), field) != std::end(huffman_fields);
    return std::find(std::begin(raw_fields), std::end(raw_fields), field) != std::end(raw_fields);
}

// (b) Every single-bit flip in the header: rejected (always, for fields fixed by the others), or decoded
// without a crash; a flipped content_xxh64 (not read by the decoder) still decodes to the original bytes.
TEST(BlobCorruption, HeaderBitFlips) {
    ThreadPool pool(2);
    for (const TestBlob& b : make_blobs(true, true)) {
        SCOPED_TRACE(b.label());
        const bool huffman = b.header.mode == static_cast<uint8_t>(BlobMode::Huffman);
        int rejected = 0, decoded = 0, decode_errors = 0;
        for (size_t byte = 0; byte < kBlobHeaderBytes; ++byte) {
            const std::string field = header_field(byte);
            for (int bit = 0; bit < 8; ++bit) {
                Bytes bad(b.blob);
                bad[byte] ^= static_cast<uint8_t>(1u << bit);
                DecodeResult r = try_decode(bad, b.label(), (byte + bit) % 2 ? &pool : nullptr);
                SCOPED_TRACE("header byte " + std::to_string(byte) + " (" + field + ") bit " + std::to_string(bit));
                if (r.outcome != Outcome::Decoded && r.outcome != Outcome::Skipped) {
                    EXPECT_TRUE(contains(r.message, "'" + b.label() + "'")) << r.message;
                }
                if (always_rejected(field, huffman)) {
                    EXPECT_EQ(r.outcome, Outcome::PrepareThrew);
                }
                if (field == "content_xxh64") {
                    EXPECT_EQ(r.outcome, Outcome::Decoded) << r.message;
                    EXPECT_EQ(r.output, b.values);
                }
                rejected += r.outcome == Outcome::PrepareThrew;
                decoded += r.outcome == Outcome::Decoded;
                decode_errors += r.outcome == Outcome::DecodeThrew;
            }
        }
        std::printf("[ header flips ] %-14s rejected %d, decode errors %d, decoded %d of %zu\n", b.label().c_str(),
                    rejected, decode_errors, decoded, kBlobHeaderBytes * 8);
    }
}

enum class Region { Header, Codebooks, Offsets, Stream, Padding, Raw };

Region region_of(const TestBlob& b, size_t pos) {
    const BlobLayout& l = b.layout;
    if (pos < kBlobHeaderBytes) return Region::Header;
    if (b.header.mode == static_cast<uint8_t>(BlobMode::Raw)) {
        return pos < l.stream + b.header.numel * dtype_size(b.spec->dtype) ? Region::Raw : Region::Padding;
    }
    if (pos < l.chunk_offsets) return Region::Codebooks;
    if (pos < l.chunk_offsets + (size_t{b.header.chunk_count} + 1) * 4) return Region::Offsets;
    if (pos < l.stream) return Region::Padding;
    if (pos < l.stream + b.header.stream_words * 4) return Region::Stream;
    if (pos < l.raw) return Region::Padding;
    if (pos < l.raw + b.header.raw_bytes) return Region::Raw;
    return Region::Padding;
}

// (c) Thousands of random flips anywhere: prepare throws, or decode throws, or decode returns; never a crash.
// Single flips in particular regions also pin down what must happen there.
TEST(BlobCorruption, RandomBitFlips) {
    std::vector<TestBlob> blobs = make_blobs(true, true);
    std::mt19937_64 rng(test::test_seed() ^ 0xC0FFEE);
    ThreadPool pool(2);
    const int kTrials = 10000;
    int counts[4] = {};
    for (int trial = 0; trial < kTrials; ++trial) {
        const TestBlob& b = blobs[static_cast<size_t>(trial) % blobs.size()];
        Bytes bad(b.blob);
        const int flips = trial % 3 == 0 ? 1 + static_cast<int>(rng() % 4) : 1;
        size_t pos = 0;
        for (int f = 0; f < flips; ++f) {
            // Half of the flips land in the header and tables, where a flip has the most effect.
            const size_t limit = rng() % 2 ? std::min(bad.size(), b.layout.stream + 64) : bad.size();
            pos = static_cast<size_t>(rng() % limit);
            bad[pos] ^= static_cast<uint8_t>(1u << (rng() % 8));
        }
        std::optional<std::pair<uint64_t, uint64_t>> range;
        if (trial % 5 == 1) {
            uint64_t a = rng() % (b.spec->numel + 1), c = rng() % (b.spec->numel + 1);
            range = std::make_pair(std::min(a, c), std::max(a, c));
        }
        DecodeResult r = try_decode(bad, b.label(), trial % 2 ? &pool : nullptr, range);
        counts[static_cast<int>(r.outcome)]++;
        SCOPED_TRACE(b.label() + " trial " + std::to_string(trial) + " last flip at byte " + std::to_string(pos));
        // The SIMD and the scalar decoder agree on damaged input too: the same bytes, or the same error (what an
        // output buffer holds after an error is unspecified). On one thread the error is the first bad chunk's;
        // with a pool it is any bad chunk's, so there only the outcome is compared.
        DecodeResult simd = trial % 2 ? try_decode(bad, b.label(), nullptr, range) : r;
        DecodeResult scalar = try_decode(bad, b.label(), nullptr, range, true);
        EXPECT_EQ(simd.outcome, r.outcome);
        EXPECT_EQ(scalar.outcome, simd.outcome);
        EXPECT_EQ(scalar.message, simd.message);
        if (r.outcome == Outcome::Decoded) {
            EXPECT_TRUE(scalar.output == r.output && simd.output == r.output);
        }
        if (r.outcome == Outcome::PrepareThrew || r.outcome == Outcome::DecodeThrew) {
            EXPECT_TRUE(contains(r.message, "'" + b.label() + "'")) << r.message;
        }
        if (flips != 1) continue;
        const Region region = region_of(b, pos);
        if (region == Region::Stream) {
            // prepare never looks at the stream; a damaged stream either fails its chunk's word count or
            // decodes to other bytes (the container's checksums catch those).
            EXPECT_NE(r.outcome, Outcome::PrepareThrew) << r.message;
            if (r.outcome == Outcome::DecodeThrew) {
                EXPECT_TRUE(contains(r.message, "chunk")) << r.message;
            }
        } else if (region == Region::Raw && !range) {
            // Raw bytes are stored verbatim: exactly one decoded value changes.
            ASSERT_EQ(r.outcome, Outcome::Decoded) << r.message;
            ASSERT_EQ(r.output.size(), b.values.size());
            size_t diff = 0;
            for (size_t i = 0; i < b.values.size(); ++i) diff += r.output[i] != b.values[i];
            EXPECT_EQ(diff, 1u);
        } else if (region == Region::Padding && !range) {
            // Padding carries no information: rejected, or decoded to the original bytes.
            if (r.outcome != Outcome::PrepareThrew) {
                EXPECT_EQ(r.outcome, Outcome::Decoded) << r.message;
                EXPECT_EQ(r.output, b.values);
            }
        }
    }
    std::printf("[ random flips ] %d trials: prepare rejected %d, decode rejected %d, decoded %d, skipped %d\n",
                kTrials, counts[0], counts[1], counts[2], counts[3]);
    EXPECT_GT(counts[0], 0);
    EXPECT_GT(counts[1], 0);
    EXPECT_GT(counts[2], 0);
}

// (d) A codebook that is not a complete prefix code (under-full, over-full, empty, too long) is rejected with a
// message naming the tensor and the codebook.
TEST(BlobCorruption, IncompleteCodebooks) {
    for (const TestBlob& b : make_blobs(true, false)) {
        SCOPED_TRACE(b.label());
        for (uint32_t book : {0u, b.header.codebook_count - 1}) {
            const size_t at = b.layout.codebooks + size_t{book} * kCodebookBytes;
            auto nibble = [&](const Bytes& blob, int sym) -> int {
                return (blob[at + sym / 2] >> (sym % 2 ? 4 : 0)) & 0xF;
            };
            auto set_nibble = [&](Bytes& blob, int sym, int len) {
                uint8_t& byte = blob[at + sym / 2];
                byte = sym % 2 ? static_cast<uint8_t>((byte & 0x0F) | (len << 4))
                               : static_cast<uint8_t>((byte & 0xF0) | len);
            };
            int used = -1, unused = -1;
            for (int s = 0; s < 256; ++s) {
                if (nibble(b.blob, s) != 0 && used < 0) used = s;
                if (nibble(b.blob, s) == 0 && unused < 0) unused = s;
            }
            ASSERT_GE(used, 0);
            const std::vector<std::string> needles = {"'" + b.label() + "'", "codebook " + std::to_string(book)};
            {  // under-full: a used symbol loses its code
                Bytes bad(b.blob);
                set_nibble(bad, used, 0);
                expect_error([&] { PreparedTensor::prepare(bad, b.label()); }, needles);
            }
            {  // a code made one bit longer: under-full (or longer than max_code_len)
                Bytes bad(b.blob);
                set_nibble(bad, used, nibble(bad, used) + 1);
                expect_error([&] { PreparedTensor::prepare(bad, b.label()); }, needles);
            }
            if (unused >= 0) {  // over-full: an unused symbol gets a 1-bit code
                Bytes bad(b.blob);
                set_nibble(bad, unused, 1);
                expect_error([&] { PreparedTensor::prepare(bad, b.label()); }, needles);
            }
            {  // longer than the 12-bit limit
                Bytes bad(b.blob);
                set_nibble(bad, used, 15);
                expect_error([&] { PreparedTensor::prepare(bad, b.label()); }, needles);
            }
            {  // no symbol at all
                Bytes bad(b.blob);
                std::fill(bad.begin() + static_cast<std::ptrdiff_t>(at),
                          bad.begin() + static_cast<std::ptrdiff_t>(at + kCodebookBytes), 0);
                expect_error([&] { PreparedTensor::prepare(bad, b.label()); }, needles);
            }
        }
    }
}

// (e) Chunk offsets that do not start at 0, decrease, or do not end at stream_words are rejected by prepare;
// monotone offsets that move a chunk boundary make that chunk's word count fail in decode.
TEST(BlobCorruption, BadChunkOffsets) {
    for (const TestBlob& b : make_blobs(true, false)) {
        SCOPED_TRACE(b.label());
        const uint32_t chunks = b.header.chunk_count;
        const std::string name = "'" + b.label() + "'";
        auto prepare = [&](const Bytes& blob) { return [&blob, &b] { PreparedTensor::prepare(blob, b.label()); }; };
        {
            Bytes bad(b.blob);
            chunk_offsets(bad, b.layout)[0] = 1;
            expect_error(prepare(bad), {name, "first chunk offset"});
        }
        {
            Bytes bad(b.blob);
            chunk_offsets(bad, b.layout)[chunks] -= 1;
            expect_error(prepare(bad), {name, "chunk offset"});
        }
        {
            Bytes bad(b.blob);
            chunk_offsets(bad, b.layout)[chunks] += 1;
            expect_error(prepare(bad), {name, "chunk offset"});
        }
        {
            Bytes bad(b.blob);
            chunk_offsets(bad, b.layout)[chunks] = 0xFFFFFFFFu;
            expect_error(prepare(bad), {name, "chunk offset"});
        }
        if (chunks < 3) continue;
        {
            Bytes bad(b.blob);
            uint32_t* off = chunk_offsets(bad, b.layout);
            std::swap(off[1], off[2]);
            ASSERT_NE(off[1], off[2]);
            expect_error(prepare(bad), {name, "chunk offsets decrease at chunk 1"});
        }
        {
            Bytes bad(b.blob);
            chunk_offsets(bad, b.layout)[2] = b.header.stream_words + 1;
            expect_error(prepare(bad), {name, "chunk offsets decrease"});
        }
        for (int delta : {-1, 1}) {  // still monotone: prepare accepts it, chunk 1 or 2 fails its word count
            Bytes bad(b.blob);
            chunk_offsets(bad, b.layout)[2] += static_cast<uint32_t>(delta);
            DecodeResult r = try_decode(bad, b.label());
            ASSERT_EQ(r.outcome, Outcome::DecodeThrew) << "delta " << delta;
            EXPECT_TRUE(contains(r.message, name) && contains(r.message, "corrupt ECF8 stream in chunk")) << r.message;
            // The chunks before the moved boundary still decode correctly.
            const uint64_t ce = uint64_t{kLanes} * b.header.lane_elems;
            DecodeResult first = try_decode(bad, b.label(), nullptr, std::make_pair(uint64_t{0}, ce));
            ASSERT_EQ(first.outcome, Outcome::Decoded) << first.message;
            const size_t vb = dtype_size(b.spec->dtype);
            EXPECT_TRUE(std::equal(first.output.begin(), first.output.end(), b.values.begin()));
            EXPECT_EQ(first.output.size(), ce * vb);
        }
    }
}

// (f) A chunk whose stream words are overwritten consumes a different number of words: decode names the chunk,
// and the other chunks still decode to the original bytes.
TEST(BlobCorruption, StreamWordCountMismatch) {
    ThreadPool pool(2);
    for (const TestBlob& b : make_blobs(true, false)) {
        if (b.header.chunk_count < 3) continue;
        SCOPED_TRACE(b.label());
        const uint32_t bad_chunk = 1;
        const uint32_t* off = reinterpret_cast<const uint32_t*>(b.blob.data() + b.layout.chunk_offsets);
        for (uint32_t fill : {0x00000000u, 0xFFFFFFFFu}) {
            Bytes bad(b.blob);
            uint32_t* words = stream_words(bad, b.layout);
            std::fill(words + off[bad_chunk], words + off[bad_chunk + 1], fill);
            // A constant fill decodes to one repeated symbol; if that symbol's code length happens to use up
            // exactly the chunk's words, the word count cannot tell (the blob's checksum does). Otherwise the
            // error names the chunk. The three paths must agree either way.
            DecodeResult first;
            for (int variant = 0; variant < 3; ++variant) {  // one thread, a pool, the scalar loop
                DecodeResult r = try_decode(bad, b.label(), variant == 1 ? &pool : nullptr, std::nullopt, variant == 2);
                if (variant == 0) first = r;
                EXPECT_EQ(r.outcome, first.outcome) << "fill " << fill << " variant " << variant;
                if (r.outcome == Outcome::Decoded) {
                    EXPECT_FALSE(std::equal(r.output.begin(), r.output.end(), b.values.begin()));
                    EXPECT_TRUE(r.output == first.output);
                    continue;
                }
                ASSERT_EQ(r.outcome, Outcome::DecodeThrew) << "fill " << fill << " variant " << variant;
                EXPECT_TRUE(contains(r.message, "'" + b.label() + "'")) << r.message;
                EXPECT_TRUE(contains(r.message, "chunk " + std::to_string(bad_chunk))) << r.message;
            }
            // Ranges that avoid the damaged chunk decode exactly.
            const uint64_t ce = uint64_t{kLanes} * b.header.lane_elems;
            const size_t vb = dtype_size(b.spec->dtype);
            for (auto range : {std::make_pair(uint64_t{0}, ce), std::make_pair(2 * ce, uint64_t{b.spec->numel}),
                               std::make_pair(ce / 2, ce - 1)}) {
                DecodeResult r = try_decode(bad, b.label(), &pool, range);
                ASSERT_EQ(r.outcome, Outcome::Decoded) << r.message;
                ASSERT_EQ(r.output.size(), (range.second - range.first) * vb);
                EXPECT_TRUE(std::equal(r.output.begin(), r.output.end(),
                                       b.values.begin() + static_cast<std::ptrdiff_t>(range.first * vb)));
            }
            // A range touching the damaged chunk fails like the whole decode.
            DecodeResult r = try_decode(bad, b.label(), nullptr, std::make_pair(ce + 1, ce + 2));
            EXPECT_EQ(r.outcome, first.outcome);
        }
    }
}

// Header values whose consistency checks are computed in fixed-width integers: the sums inside the
// ceil-divisions must not wrap around and let a blob with too few chunks or codebooks through, and a size
// overflow in the layout arithmetic must still name the tensor.
TEST(BlobCorruption, HeaderArithmeticOverflows) {
    auto build = [](const BlobHeader& h, const std::vector<uint32_t>& offsets) {
        BlobLayout l = blob_layout(h);
        Bytes blob(l.total, 0);
        std::memcpy(blob.data(), &h, sizeof(h));
        std::memcpy(blob.data() + l.chunk_offsets, offsets.data(), offsets.size() * 4);
        return blob;
    };
    BlobHeader base;
    base.dtype = static_cast<uint8_t>(DType::F8_E4M3);
    base.mode = static_cast<uint8_t>(BlobMode::Huffman);
    base.lane_elems = 2;  // 64 elements per chunk
    base.symbol_kind = static_cast<uint8_t>(SymbolKind::Byte);
    base.max_code_len = 1;
    {  // numel + chunk_elems - 1 wraps in 64 bits: zero chunks would cover ~2^64 elements
        BlobHeader h = base;
        h.numel = ~uint64_t{0};
        h.group_chunks = 1;
        Bytes blob = build(h, {0});
        // Checked with prepare alone: decoding such a blob reads a codebook table that does not exist.
        std::string what = expect_error([&] { PreparedTensor::prepare(blob, "numel_wrap"); }, {"'numel_wrap'"});
        std::printf("numel_wrap: %s\n", what.c_str());
    }
    {  // chunk_count + group_chunks - 1 wraps in 32 bits: two chunks with zero codebooks
        BlobHeader h = base;
        h.numel = 65;
        h.chunk_count = 2;
        h.group_chunks = 0xFFFFFFFFu;
        Bytes blob = build(h, {0, 0, 0});
        std::string what = expect_error([&] { PreparedTensor::prepare(blob, "group_wrap"); }, {"'group_wrap'"});
        std::printf("group_wrap: %s\n", what.c_str());
    }
    {  // numel * value bytes overflows the layout arithmetic: the error must still name the tensor
        BlobHeader h;
        h.dtype = static_cast<uint8_t>(DType::F32);
        h.mode = static_cast<uint8_t>(BlobMode::Raw);
        h.numel = uint64_t{1} << 62;
        Bytes blob(kBlobHeaderBytes + 64, 0);
        std::memcpy(blob.data(), &h, sizeof(h));
        std::string what =
            expect_error([&] { PreparedTensor::prepare(blob, "layout_overflow"); }, {"'layout_overflow'"});
        std::printf("layout_overflow: %s\n", what.c_str());
    }
}

}  // namespace
}  // namespace ecf8
