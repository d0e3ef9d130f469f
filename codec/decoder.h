// The CPU decoder. PreparedTensor validates a blob once and builds its decode tables; decoding then
// writes into a caller's buffer with no allocation, on any number of threads, for the whole tensor or
// for an element (row) range.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "codec/format.h"

namespace ecf8 {

class ThreadPool;

class PreparedTensor {
public:
    // `blob` must stay alive and unmoved while the PreparedTensor is used. Throws on a bad blob.
    static PreparedTensor prepare(std::span<const uint8_t> blob, const std::string& label);
    // Points the tensor at an identical copy of its blob at `blob` (a staging buffer the copy engine fills
    // before each decode), keeping the validated header and the decode tables.
    void rebase(const uint8_t* blob);

    const BlobView& view() const { return view_; }
    const std::string& label() const { return label_; }
    uint64_t numel() const { return view_.header.numel; }
    DType dtype() const { return view_.dtype(); }
    uint64_t decoded_bytes() const { return numel() * view_.value_bytes(); }
    const uint16_t* table(uint32_t codebook) const { return tables_.data() + (size_t{codebook} << table_log_); }
    uint32_t table_mask() const { return (1u << table_log_) - 1; }

private:
    BlobView view_;
    const uint8_t* base_ = nullptr;  // where the blob that view_ points into starts
    std::string label_;
    int table_log_ = 0;
    std::vector<uint16_t> tables_;
};

// Decodes elements [begin, end) into out ((end - begin) * value bytes). pool may be null (one thread).
// Throws ecf8::Error naming the tensor and chunk if the stream is corrupt.
void decode_range(const PreparedTensor& t, uint64_t begin, uint64_t end, void* out, ThreadPool* pool);
inline void decode_all(const PreparedTensor& t, void* out, ThreadPool* pool) {
    decode_range(t, 0, t.numel(), out, pool);
}

// Tests use this to run the portable scalar loop (the GPU kernel's twin) even where AVX2 is available.
void force_scalar_decode(bool scalar);

// Decodes one whole chunk into out_chunk (chunk_elems values of space). Exposed for tests and the GPU twin.
void decode_chunk(const PreparedTensor& t, uint32_t chunk, uint8_t* out_chunk);

}  // namespace ecf8
