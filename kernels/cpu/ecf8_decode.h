// ECF8 decode on the CPU: the twin of kernels/cuda/ecf8_decode.cuh. Both run the same decode core
// (codec/decode_core.h), so CPU and GPU output are byte-identical by construction.
#pragma once

#include <cstdint>
#include <vector>

namespace ecf8 {

class PreparedTensor;
class ThreadPool;

// Decodes elements [begin, end) of one tensor into out ((end - begin) * value bytes). pool may be null.
// Throws ecf8::Error naming the tensor if the range is bad or the stream is corrupt.
void ecf8_decode_cpu(const PreparedTensor& t, uint64_t begin, uint64_t end, void* out, ThreadPool* pool);

// One element range of one tensor to decode into a caller's buffer.
struct DecodeJob {
    const PreparedTensor* tensor;  // must outlive the call
    uint64_t begin, end;           // element range [begin, end)
    void* out;                     // (end - begin) * value bytes of space
};

// Decodes many ranges at once (a layer, or the routed experts), spreading every chunk of every job over
// the pool, so small tensors do not serialize the way one decode_range call per tensor would.
void ecf8_decode_batch_cpu(const std::vector<DecodeJob>& jobs, ThreadPool* pool);

}  // namespace ecf8
