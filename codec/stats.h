// Per-tensor compression statistics for `ecf8 inspect`: bits per weight against the exponent-entropy
// bound, and where the overhead goes (header, codebooks, sync metadata).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "codec/container.h"

namespace ecf8 {

// Exponent field of one value and the number of sign+mantissa bits kept raw by exponent coding.
int exponent_bits_of(DType dt);  // 4 for E4M3, 5 for E5M2 and F16, 8 for BF16, else 0
int raw_bits_of(DType dt);       // 4, 3, 8, 11
uint32_t exponent_of(DType dt, const uint8_t* value);

struct TensorStats {
    std::string name;
    DType dtype = DType::U8;
    std::vector<int64_t> shape;
    bool ecf8 = false;
    bool stored_raw = false;  // an ECF8 blob in Raw mode (incompressible)
    uint64_t numel = 0, raw_bytes = 0, stored_bytes = 0;
    double exponent_entropy = 0;  // bits
    double bound_bits = 0;        // raw_bits + H(exponent): the exponent-coding ideal per weight
    double bits_per_weight = 0;   // everything counted
    uint64_t header_bytes = 0, codebook_bytes = 0, sync_bytes = 0;  // sync: chunk offsets + stream padding
    uint64_t payload_bits = 0;                                      // Huffman code bits
    std::array<uint64_t, 256> exponent_histogram{};
};

TensorStats analyze_tensor(const CompressedFile& file, const TensorRecord& record, ThreadPool* pool);

}  // namespace ecf8
