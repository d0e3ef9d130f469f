// The ECF8 encoder: tensor bytes -> one blob (codec/format.h).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "codec/dtype.h"

namespace ecf8 {

class ThreadPool;

struct EncodeOptions {
    uint32_t lane_elems = 0;   // elements per lane per chunk (chunk = 32 lanes); even, <= 2^24; 0 = auto
    uint64_t group_elems = 0;  // elements per codebook, rounded up to whole chunks; 0 = one per tensor
    int max_code_len = 12;     // code length cap, 1..12
    bool allow_raw = true;     // store raw when coding would not save space
    void validate() const;
};

// The default chunking: 2048 elements per lane for 1-byte dtypes, 4096 for 2-byte ones. Measured in
// docs/FORMAT.md: lane tail padding costs about 35 bits per lane, which these sizes keep under 0.02 bits
// per weight while leaving thousands of chunks (GPU warps) per layer.
uint32_t default_lane_elems(DType dt);
uint32_t effective_lane_elems(DType dt, const EncodeOptions& options);

// Parses "tensor" or "group:N" (N elements) into options.group_elems; throws naming the flag.
void parse_granularity(const std::string& text, EncodeOptions* options);

// Encodes `numel` values of dtype `dt`. Non-codable dtypes become Raw blobs. pool may be null.
std::vector<uint8_t> encode_tensor(DType dt, const void* data, uint64_t numel, const EncodeOptions& options,
                                   ThreadPool* pool = nullptr);

}  // namespace ecf8
