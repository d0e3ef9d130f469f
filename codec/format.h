// The ECF8 blob: one encoded tensor as a self-describing, 16-byte-aligned byte array.
//   [header 64 B][codebooks: count x 128 B][chunk word offsets: (chunks + 1) x u32][pad to 16]
//   [stream: u32 words + kStreamPadWords zero words][pad to 16][raw bytes][pad to 16]
// docs/FORMAT.md specifies every field; this header is the code form of that text.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "codec/decode_core.h"
#include "codec/dtype.h"

namespace ecf8 {

constexpr uint32_t kBlobMagic = 0x38464345;  // "ECF8" in little-endian byte order
constexpr uint16_t kFormatVersion = 1;
constexpr size_t kBlobHeaderBytes = 64;
constexpr size_t kCodebookBytes = 128;   // 256 code lengths, one nibble each
constexpr uint32_t kStreamPadWords = 4;  // lets the branch-free refill read past the last word
constexpr size_t kBlobAlign = 16;

enum class BlobMode : uint8_t {
    Raw = 0,      // the original bytes follow in the stream area (incompressible data)
    Huffman = 1,  // chunked, lane-interleaved Huffman stream
};

// Field order and widths are the on-disk layout (little-endian, no implicit padding).
struct BlobHeader {
    uint32_t magic = kBlobMagic;
    uint16_t version = kFormatVersion;
    uint8_t dtype = 0;        // DType of the original elements
    uint8_t mode = 0;         // BlobMode
    uint64_t numel = 0;       // elements
    uint32_t lane_elems = 0;  // elements per lane per chunk; a chunk holds 32 * lane_elems elements
    uint32_t chunk_count = 0;
    uint32_t group_chunks = 0;  // consecutive chunks sharing one codebook
    uint32_t codebook_count = 0;
    uint8_t symbol_kind = 0;   // SymbolKind
    uint8_t max_code_len = 0;  // longest code in any codebook (1..12)
    uint16_t reserved0 = 0;
    uint32_t reserved1 = 0;
    uint64_t stream_words = 0;   // u32 words of the coded stream, without the padding words
    uint64_t raw_bytes = 0;      // bytes of the raw part (numel for 16-bit dtypes, else 0; Raw mode: 0)
    uint64_t content_xxh64 = 0;  // xxHash64 (seed 0) of the original tensor bytes
};
static_assert(sizeof(BlobHeader) == kBlobHeaderBytes, "BlobHeader must be 64 bytes");

// Byte offsets of each part of a blob, computed from its header.
struct BlobLayout {
    size_t codebooks = 0, chunk_offsets = 0, stream = 0, raw = 0, total = 0;
};

// The parts of a validated blob. Pointers refer into the caller's bytes.
struct BlobView {
    BlobHeader header;
    BlobLayout layout;
    const uint8_t* codebooks = nullptr;  // codebook_count x 128 bytes of packed lengths
    const uint32_t* chunk_offsets = nullptr;
    const uint32_t* stream = nullptr;  // Huffman: stream words; Raw: the original bytes
    const uint8_t* raw = nullptr;
    DType dtype() const { return static_cast<DType>(header.dtype); }
    SymbolKind kind() const { return static_cast<SymbolKind>(header.symbol_kind); }
    uint64_t chunk_elems() const { return uint64_t{kLanes} * header.lane_elems; }
    size_t value_bytes() const { return dtype_size(dtype()); }
};

inline size_t align_up(size_t v, size_t a) { return (v + a - 1) / a * a; }

// Computes the layout; throws when the sizes overflow.
BlobLayout blob_layout(const BlobHeader& h);

// Whether a dtype is Huffman-coded, and how its values split into symbol + raw.
bool dtype_is_codable(DType dt);
SymbolKind symbol_kind_for(DType dt);

// Parses and fully validates a blob: magic, version, dtype, sizes, every codebook (complete prefix code
// within max_code_len) and monotone chunk offsets. Errors name `label` (the tensor).
BlobView parse_blob(std::span<const uint8_t> bytes, const std::string& label);

// Unpacks codebook `index` of a parsed blob into 256 code lengths.
void unpack_codebook(const BlobView& view, uint32_t index, uint8_t lengths[256]);
void pack_codebook(const uint8_t lengths[256], uint8_t packed[kCodebookBytes]);

}  // namespace ecf8
