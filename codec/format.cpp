// Blob layout arithmetic and validation. Everything a decoder later trusts is checked here once.
#include "codec/format.h"

#include <cstring>

#include "codec/huffman.h"
#include "common/error.h"

namespace ecf8 {

bool dtype_is_codable(DType dt) {
    return dt == DType::F8_E4M3 || dt == DType::F8_E5M2 || dt == DType::BF16 || dt == DType::F16;
}

SymbolKind symbol_kind_for(DType dt) {
    if (dt == DType::BF16) return SymbolKind::Bf16Exp;
    if (dt == DType::F16) return SymbolKind::HighByte;
    return SymbolKind::Byte;
}

static size_t checked_add(size_t a, uint64_t b, const char* what) {
    ECF8_CHECK(b <= SIZE_MAX - a, "blob size overflows at " << what);
    return a + static_cast<size_t>(b);
}

static uint64_t checked_mul(uint64_t a, uint64_t b, const char* what) {
    ECF8_CHECK(b == 0 || a <= UINT64_MAX / b, "blob size overflows at " << what);
    return a * b;
}

BlobLayout blob_layout(const BlobHeader& h) {
    BlobLayout l;
    l.codebooks = kBlobHeaderBytes;
    l.chunk_offsets = checked_add(l.codebooks, checked_mul(h.codebook_count, kCodebookBytes, "codebooks"), "codebooks");
    uint64_t offsets_bytes = h.mode == static_cast<uint8_t>(BlobMode::Huffman)
                                 ? checked_mul(uint64_t{h.chunk_count} + 1, 4, "chunk offsets")
                                 : 0;
    l.stream = align_up(checked_add(l.chunk_offsets, offsets_bytes, "chunk offsets"), kBlobAlign);
    uint64_t stream_bytes = h.mode == static_cast<uint8_t>(BlobMode::Huffman)
                                ? checked_mul(h.stream_words + kStreamPadWords, 4, "stream")
                                : checked_mul(h.numel, dtype_size(static_cast<DType>(h.dtype)), "raw stream");
    l.raw = align_up(checked_add(l.stream, stream_bytes, "stream"), kBlobAlign);
    l.total = align_up(checked_add(l.raw, h.raw_bytes, "raw bytes"), kBlobAlign);
    return l;
}

void pack_codebook(const uint8_t lengths[256], uint8_t packed[kCodebookBytes]) {
    for (size_t i = 0; i < kCodebookBytes; ++i)
        packed[i] = static_cast<uint8_t>((lengths[2 * i] & 0xF) | ((lengths[2 * i + 1] & 0xF) << 4));
}

void unpack_codebook(const BlobView& view, uint32_t index, uint8_t lengths[256]) {
    const uint8_t* p = view.codebooks + size_t{index} * kCodebookBytes;
    for (size_t i = 0; i < kCodebookBytes; ++i) {
        lengths[2 * i] = p[i] & 0xF;
        lengths[2 * i + 1] = p[i] >> 4;
    }
}

static void validate_header(const BlobHeader& h, const std::string& label) {
    ECF8_CHECK(h.magic == kBlobMagic, "tensor '" << label << "': not an ECF8 blob (bad magic)");
    ECF8_CHECK(h.version == kFormatVersion, "tensor '" << label << "': ECF8 format version " << h.version
                                                       << ", this build reads " << kFormatVersion);
    ECF8_CHECK(h.dtype < kNumDTypes, "tensor '" << label << "': bad dtype code " << int{h.dtype});
    DType dt = static_cast<DType>(h.dtype);
    ECF8_CHECK(h.mode <= 1, "tensor '" << label << "': bad mode " << int{h.mode});
    ECF8_CHECK(h.reserved0 == 0 && h.reserved1 == 0, "tensor '" << label << "': reserved header fields are set");
    if (h.mode == static_cast<uint8_t>(BlobMode::Raw)) {
        ECF8_CHECK(h.chunk_count == 0 && h.codebook_count == 0 && h.stream_words == 0 && h.raw_bytes == 0,
                   "tensor '" << label << "': raw blob with coding fields set");
        return;
    }
    ECF8_CHECK(dtype_is_codable(dt), "tensor '" << label << "': dtype " << dtype_name(dt) << " cannot be coded");
    ECF8_CHECK(h.symbol_kind == static_cast<uint8_t>(symbol_kind_for(dt)),
               "tensor '" << label << "': symbol kind " << int{h.symbol_kind} << " does not match " << dtype_name(dt));
    ECF8_CHECK(h.lane_elems > 0 && h.lane_elems % kSymbolsPerStep == 0 && h.lane_elems <= (1u << 24),
               "tensor '" << label << "': bad lane_elems " << h.lane_elems);
    // 64-bit arithmetic that cannot wrap, whatever the header says.
    const uint64_t chunk_elems = uint64_t{kLanes} * h.lane_elems;
    const uint64_t chunks = h.numel / chunk_elems + (h.numel % chunk_elems != 0);
    ECF8_CHECK(h.chunk_count == chunks,
               "tensor '" << label << "': chunk_count " << h.chunk_count << " does not match numel " << h.numel);
    ECF8_CHECK(h.group_chunks > 0 && h.codebook_count == (uint64_t{h.chunk_count} + h.group_chunks - 1) / h.group_chunks,
               "tensor '" << label << "': codebook_count " << h.codebook_count << " does not match group_chunks "
                          << h.group_chunks);
    ECF8_CHECK(h.numel == 0 || h.codebook_count > 0, "tensor '" << label << "': coded elements but no codebook");
    // Every code is at least one bit long, so a stream shorter than numel bits cannot be valid.
    ECF8_CHECK(h.stream_words >= h.numel / 32,
               "tensor '" << label << "': stream of " << h.stream_words << " words is too short for " << h.numel
                          << " elements");
    ECF8_CHECK(h.max_code_len >= 1 && h.max_code_len <= kMaxCodeLen,
               "tensor '" << label << "': max_code_len " << int{h.max_code_len} << " outside 1.." << kMaxCodeLen);
    uint64_t want_raw = h.symbol_kind == static_cast<uint8_t>(SymbolKind::Byte) ? 0 : h.numel;
    ECF8_CHECK(h.raw_bytes == want_raw,
               "tensor '" << label << "': raw_bytes " << h.raw_bytes << " should be " << want_raw);
    ECF8_CHECK(h.stream_words <= UINT32_MAX - kStreamPadWords,
               "tensor '" << label << "': stream of " << h.stream_words << " words exceeds the 32-bit offsets");
}

BlobView parse_blob(std::span<const uint8_t> bytes, const std::string& label) {
    BlobView v;
    ECF8_CHECK(bytes.size() >= kBlobHeaderBytes,
               "tensor '" << label << "': ECF8 blob of " << bytes.size() << " bytes is shorter than its header");
    std::memcpy(&v.header, bytes.data(), kBlobHeaderBytes);
    const BlobHeader& h = v.header;
    validate_header(h, label);
    try {
        v.layout = blob_layout(h);
    } catch (const Error& e) {
        ECF8_FAIL("tensor '" << label << "': " << e.what());
    }
    ECF8_CHECK(bytes.size() == v.layout.total, "tensor '" << label << "': ECF8 blob is " << bytes.size()
                                                          << " bytes, its header implies " << v.layout.total);
    ECF8_CHECK(reinterpret_cast<uintptr_t>(bytes.data()) % 4 == 0,
               "tensor '" << label << "': ECF8 blob is not 4-byte aligned in memory");
    v.codebooks = bytes.data() + v.layout.codebooks;
    v.chunk_offsets = reinterpret_cast<const uint32_t*>(bytes.data() + v.layout.chunk_offsets);
    v.stream = reinterpret_cast<const uint32_t*>(bytes.data() + v.layout.stream);
    v.raw = bytes.data() + v.layout.raw;
    if (h.mode == static_cast<uint8_t>(BlobMode::Raw)) return v;
    for (uint32_t c = 0; c < h.codebook_count; ++c) {
        uint8_t lengths[256];
        unpack_codebook(v, c, lengths);
        bool used = false;
        for (int s = 0; s < 256; ++s) used |= lengths[s] != 0;
        ECF8_CHECK(used && is_complete_code(lengths, h.max_code_len),
                   "tensor '" << label << "': codebook " << c << " is not a complete prefix code");
    }
    ECF8_CHECK(v.chunk_offsets[0] == 0, "tensor '" << label << "': first chunk offset is not 0");
    for (uint32_t c = 0; c < h.chunk_count; ++c)
        ECF8_CHECK(v.chunk_offsets[c] <= v.chunk_offsets[c + 1],
                   "tensor '" << label << "': chunk offsets decrease at chunk " << c);
    ECF8_CHECK(v.chunk_offsets[h.chunk_count] == h.stream_words,
               "tensor '" << label << "': last chunk offset does not match stream_words");
    return v;
}

}  // namespace ecf8
