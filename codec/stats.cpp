// Statistics come from decoding each tensor once: exponent histogram and per-codebook symbol counts.
#include "codec/stats.h"

#include <cmath>

#include "codec/huffman.h"
#include "common/thread_pool.h"

namespace ecf8 {

namespace {

struct FieldRow {
    int exponent_bits, raw_bits, shift;
};

FieldRow field_row(DType dt) {
    switch (dt) {
        case DType::F8_E4M3:
            return {4, 4, 3};
        case DType::F8_E5M2:
            return {5, 3, 2};
        case DType::BF16:
            return {8, 8, 7};
        case DType::F16:
            return {5, 11, 10};
        default:
            return {0, 0, 0};
    }
}

}  // namespace

int exponent_bits_of(DType dt) { return field_row(dt).exponent_bits; }
int raw_bits_of(DType dt) { return field_row(dt).raw_bits; }

uint32_t exponent_of(DType dt, const uint8_t* value) {
    FieldRow f = field_row(dt);
    uint32_t v = dtype_size(dt) == 1 ? value[0] : uint32_t{value[0]} | (uint32_t{value[1]} << 8);
    return (v >> f.shift) & ((1u << f.exponent_bits) - 1);
}

TensorStats analyze_tensor(const CompressedFile& file, const TensorRecord& r, ThreadPool* pool) {
    TensorStats s;
    s.name = r.name;
    s.dtype = r.dtype;
    s.shape = r.shape;
    s.ecf8 = r.ecf8;
    s.numel = r.numel();
    s.raw_bytes = r.raw_bytes();
    s.stored_bytes = file.stored_bytes(r);
    s.bits_per_weight = s.numel ? 8.0 * static_cast<double>(s.stored_bytes) / static_cast<double>(s.numel) : 0;
    if (exponent_bits_of(r.dtype) == 0) return s;

    std::vector<uint8_t> values(s.raw_bytes);
    file.decode(r, values.data(), pool);
    const size_t vb = dtype_size(r.dtype);
    for (uint64_t i = 0; i < s.numel; ++i) ++s.exponent_histogram[exponent_of(r.dtype, values.data() + i * vb)];
    s.exponent_entropy = histogram_entropy(s.exponent_histogram.data());
    s.bound_bits = raw_bits_of(r.dtype) + s.exponent_entropy;
    if (!r.ecf8) return s;

    PreparedTensor t = file.prepare(r);
    const BlobView& v = t.view();
    s.header_bytes = kBlobHeaderBytes;
    if (v.header.mode == static_cast<uint8_t>(BlobMode::Raw)) {
        s.stored_raw = true;
        s.sync_bytes = s.stored_bytes - s.header_bytes - s.raw_bytes;
        return s;
    }
    s.codebook_bytes = uint64_t{v.header.codebook_count} * kCodebookBytes;
    const uint64_t group_elems = v.chunk_elems() * v.header.group_chunks;
    for (uint32_t g = 0; g < v.header.codebook_count; ++g) {
        uint64_t freq[256] = {};
        uint64_t begin = g * group_elems, end = std::min<uint64_t>(s.numel, begin + group_elems);
        for (uint64_t i = begin; i < end; ++i) {
            uint16_t value = vb == 1 ? values[i] : static_cast<uint16_t>(values[2 * i] | (values[2 * i + 1] << 8));
            ++freq[split_symbol(v.kind(), value)];
        }
        uint8_t lengths[256];
        unpack_codebook(v, g, lengths);
        s.payload_bits += coded_bits(freq, lengths);
    }
    const uint64_t accounted = s.header_bytes + s.codebook_bytes + v.header.raw_bytes;
    s.sync_bytes = s.stored_bytes - accounted - (s.payload_bits + 7) / 8;
    return s;
}

}  // namespace ecf8
