// ECF8 decode on the GPU: compressed tensors resident in device memory, and the warp-per-chunk kernel
// that turns them back into FP8 / BF16 / F16 bytes. The CPU twin is kernels/cpu/ecf8_decode.h; both run
// the shared core in codec/decode_core.h, so their output is byte-identical.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "codec/decode_core.h"
#include "codec/format.h"

namespace ecf8 {

class PreparedTensor;

// A compressed tensor in device memory, as the kernel reads it. Plain data; it owns nothing.
struct DeviceBlob {
    const uint32_t* stream;  // Huffman: stream_words coded words + kStreamPadWords zero words; Raw: the original bytes
    const uint32_t* chunk_offsets;  // Huffman: chunk_count + 1 word offsets of each chunk into stream; Raw: null
    const uint16_t* tables;  // Huffman: codebook_count flat decode tables of 2^table_log entries each, back to back
    const uint8_t* raw;      // numel raw bytes (sign / mantissa / low byte) for 16-bit kinds; null otherwise
    uint64_t numel;          // elements of the whole tensor
    uint32_t chunk_count;    // chunks of 32 * lane_elems elements (the last may be partial)
    uint32_t lane_elems;     // elements each lane decodes per chunk
    uint32_t group_chunks;   // consecutive chunks sharing one codebook: chunk c uses table c / group_chunks
    uint32_t table_log;      // log2 of the entries per decode table (= max_code_len, <= kMaxCodeLen)
    uint64_t stream_words;   // coded words, without the padding; reads at or past it see zeros
    SymbolKind kind;         // how a symbol and a raw byte join into a value
    BlobMode mode;           // Huffman, or Raw (the decode is a plain copy)
    uint8_t value_bytes;     // bytes per decoded element
};

// Owns the device memory of one compressed tensor (one cudaMalloc: the blob bytes from the chunk offsets on,
// then the decode tables). Move-only; freed on destruction.
class DeviceTensor {
public:
    DeviceTensor() = default;
    ~DeviceTensor();
    DeviceTensor(DeviceTensor&& other) noexcept;
    DeviceTensor& operator=(DeviceTensor&& other) noexcept;
    DeviceTensor(const DeviceTensor&) = delete;
    DeviceTensor& operator=(const DeviceTensor&) = delete;

    // Copies t's blob (its memory, which may be pageable) and the decode tables PreparedTensor built on the
    // host. The copies are queued on copy_stream; the call returns once the host sources may be reused.
    static DeviceTensor upload(const PreparedTensor& t, cudaStream_t copy_stream);
    // Same, with the bulk of the blob taken from pinned_blob: a pinned host copy of the blob t was prepared
    // from (same bytes, same layout), so the copy is a true asynchronous DMA. pinned_blob must stay alive
    // until copy_stream passes the copy.
    static DeviceTensor upload_from_pinned(const PreparedTensor& t, const uint8_t* pinned_blob,
                                           cudaStream_t copy_stream);

    const DeviceBlob& blob() const { return blob_; }
    uint64_t numel() const { return blob_.numel; }
    size_t device_bytes() const { return bytes_; }

private:
    void release() noexcept;
    DeviceBlob blob_{};
    void* memory_ = nullptr;
    size_t bytes_ = 0;
};

// Device bytes t needs (for callers that place blobs in memory they manage, e.g. a ring of slots).
size_t device_blob_bytes(const PreparedTensor& t);
// Queues the copies of t into device_memory (device_blob_bytes(t) bytes, 256-byte aligned) on copy_stream and
// returns the view of it. host_blob: the blob bytes t was prepared from, or a pinned copy of them.
// device_memory may also be pinned host memory, which the decoder then reads in place (unified addressing):
// the copies say cudaMemcpyDefault.
DeviceBlob place_device_blob(const PreparedTensor& t, const uint8_t* host_blob, void* device_memory,
                             size_t device_bytes, cudaStream_t copy_stream);

// One range of one tensor to decode in a batched launch.
struct DecodeTask {
    DeviceBlob blob;      // the tensor
    uint64_t begin, end;  // element range [begin, end) of the tensor
    void* out;            // device memory for (end - begin) * value_bytes bytes
    // Non-null: the task runs only when picks[1] > picks[0] (a routed expert's range in the device's
    // moe_dispatch offsets); otherwise its warps return at once and `out` is left as it was.
    const int32_t* picks = nullptr;
};

// Work units (warps) a task takes: the chunks overlapping its range, or the 64 KiB pieces of a raw copy.
uint32_t decode_task_units(const DecodeTask& task);
// The unit prefix of a batch: tasks.size() + 1 entries, prefix[0] = 0, prefix[i + 1] = prefix[i] +
// decode_task_units(tasks[i]); prefix.back() is the total_chunks to launch. Checks each task's range.
std::vector<uint32_t> decode_task_prefix(const std::vector<DecodeTask>& tasks);

// Decodes every task in one launch on `stream`. tasks_device: task_count tasks in device memory;
// task_chunk_prefix_device: the task_count + 1 entries of decode_task_prefix. A corrupt chunk sets
// *error_flag_device to 1 (it is never cleared here); nothing is synchronized on the host.
void ecf8_decode_batch_cuda(const DecodeTask* tasks_device, const uint32_t* task_chunk_prefix_device,
                            uint32_t task_count, uint32_t total_chunks, int* error_flag_device, cudaStream_t stream);

// Decodes elements [begin, end) of one tensor into out_device. Raw blobs become one device-to-device copy.
void ecf8_decode_cuda(const DeviceTensor& t, uint64_t begin, uint64_t end, void* out_device, int* error_flag_device,
                      cudaStream_t stream);
void ecf8_decode_cuda(const DeviceBlob& blob, uint64_t begin, uint64_t end, void* out_device, int* error_flag_device,
                      cudaStream_t stream);

// Waits for `stream`, reads the flag and, if a decode on it found a corrupt chunk, clears the flag (so the
// next check reports only new corruption) and throws ecf8::Error.
void ecf8_decode_check_error(int* error_flag_device, cudaStream_t stream, const char* what);

}  // namespace ecf8
