// CudaBlobDecoder: the BlobDecoder (runtime/ops.h) of the CUDA backend. Blobs are placed as device layouts
// with their decode tables (place_device_blob); a batch of jobs decodes in one launch, with its task list
// uploaded through a ring of pinned buffers guarded by events; a corrupt chunk sets a device flag, read back
// behind each step's decodes. Its buffers are the backend's memory, tagged "decode_tasks".
#include <cuda_runtime.h>

#include <cstring>
#include <vector>

#include "common/error.h"
#include "kernels/cuda/ecf8_decode.cuh"
#include "runtime/backend.h"
#include "runtime/cuda_ops.h"

namespace ecf8 {
namespace {

cudaStream_t native(Stream& s) { return static_cast<cudaStream_t>(s.native_handle()); }

class CudaBlobDecoder final : public BlobDecoder {
public:
    CudaBlobDecoder(Backend& backend, size_t blobs) : backend_(backend), blobs_(blobs) {
        flag_ = backend_.buffer(sizeof(int), MemoryKind::Device, "decode_tasks");
        flag_host_ = backend_.buffer(sizeof(int), MemoryKind::PinnedHost, "decode_tasks");
        CUDA_CHECK(cudaMemset(flag_.data(), 0, sizeof(int)));
        *flag_host_.as<int>() = 0;
        CUDA_CHECK(cudaStreamCreateWithFlags(&load_stream_, cudaStreamNonBlocking));
        for (TaskBuffer& b : ring_) CUDA_CHECK(cudaEventCreateWithFlags(&b.uploaded, cudaEventDisableTiming));
    }
    ~CudaBlobDecoder() override {
        for (TaskBuffer& b : ring_) {
            cudaEventSynchronize(b.uploaded);
            cudaEventDestroy(b.uploaded);
        }
        cudaStreamSynchronize(load_stream_);
        cudaStreamDestroy(load_stream_);
    }

    bool device_memory_is_host() const override { return false; }
    uint64_t placed_bytes(const PreparedTensor& t, uint64_t) const override { return device_blob_bytes(t); }
    void place(uint32_t id, PreparedTensor& t, const uint8_t* blob, uint8_t* target, uint64_t target_bytes,
               Stream* stream) override {
        ECF8_CHECK(id < blobs_.size(), "blob id " << id << " is outside the decoder's " << blobs_.size());
        blobs_[id] = place_device_blob(t, blob, target, target_bytes, stream ? native(*stream) : load_stream_);
        if (stream == nullptr) CUDA_CHECK(cudaStreamSynchronize(load_stream_));  // `blob` may go after this
    }
    void bind(uint32_t id, PreparedTensor& t, const uint8_t* blob, uint8_t* target, uint64_t target_bytes) override {
        place(id, t, blob, target, target_bytes, nullptr);
    }
    void upload(void* dst, const void* host, size_t bytes) override {
        if (bytes > 0) CUDA_CHECK(cudaMemcpy(dst, host, bytes, cudaMemcpyHostToDevice));
    }

    void decode(const std::vector<BlobJob>& jobs, Stream& stream) override {
        std::vector<DecodeTask> tasks;  // raw copies ride along as raw blobs
        for (const BlobJob& j : jobs) {
            DeviceBlob blob{};
            if (j.tensor != nullptr) {
                ECF8_CHECK(j.blob < blobs_.size(), "blob id " << j.blob << " was never placed");
                blob = blobs_[j.blob];
            } else {  // j.src may be pinned host memory: the kernel reads it in place
                blob.stream = reinterpret_cast<const uint32_t*>(j.src);
                blob.numel = j.bytes;
                blob.kind = SymbolKind::Byte;
                blob.mode = BlobMode::Raw;
                blob.value_bytes = 1;
            }
            tasks.push_back(DecodeTask{blob, 0, blob.numel, j.out, j.picks});
        }
        launch(tasks, native(stream));
    }

    void queue_error_check(Stream& stream) override {
        CUDA_CHECK(
            cudaMemcpyAsync(flag_host_.data(), flag_.data(), sizeof(int), cudaMemcpyDeviceToHost, native(stream)));
        CUDA_CHECK(cudaMemsetAsync(flag_.data(), 0, sizeof(int), native(stream)));
    }
    void throw_if_failed() override {
        int& flag = *flag_host_.as<int>();
        if (flag == 0) return;
        flag = 0;
        throw Error(
            "weight store decode: the GPU decoder found a corrupt ECF8 chunk in this step's weights (the blob in "
            "memory no longer matches its checksum; ecf8 verify-shards checks the files)");
    }
    void check_now() override {
        CUDA_CHECK(cudaDeviceSynchronize());
        ecf8_decode_check_error(flag_.as<int>(), load_stream_, "weight store decode");
    }

private:
    struct TaskBuffer {
        Buffer pinned, device;
        cudaEvent_t uploaded = nullptr;
    };
    static constexpr int kRing = 4;  // spans two layers' dense and expert decodes: long done when reused

    // Every task in one launch on `stream` (so small tensors decode side by side, not one after another).
    void launch(const std::vector<DecodeTask>& tasks, cudaStream_t stream) {
        if (tasks.empty()) return;
        const std::vector<uint32_t> prefix = decode_task_prefix(tasks);
        if (prefix.back() == 0) return;
        const size_t task_bytes = (tasks.size() * sizeof(DecodeTask) + 15) / 16 * 16;
        const size_t bytes = task_bytes + prefix.size() * sizeof(uint32_t);
        TaskBuffer& b = ring_[next_];
        next_ = (next_ + 1) % kRing;
        CUDA_CHECK(cudaEventSynchronize(b.uploaded));
        if (b.pinned.size() < bytes) {
            b.pinned.reset();
            b.device.reset();  // waits for the device, so no decode still reads it
            b.pinned = backend_.buffer(bytes, MemoryKind::PinnedHost, "decode_tasks");
            b.device = backend_.buffer(bytes, MemoryKind::Device, "decode_tasks");
        }
        std::memcpy(b.pinned.data(), tasks.data(), tasks.size() * sizeof(DecodeTask));
        std::memcpy(b.pinned.as<uint8_t>() + task_bytes, prefix.data(), prefix.size() * sizeof(uint32_t));
        CUDA_CHECK(cudaMemcpyAsync(b.device.data(), b.pinned.data(), bytes, cudaMemcpyHostToDevice, stream));
        CUDA_CHECK(cudaEventRecord(b.uploaded, stream));
        const auto* tasks_device = b.device.as<const DecodeTask>();
        const auto* prefix_device = reinterpret_cast<const uint32_t*>(b.device.as<uint8_t>() + task_bytes);
        ecf8_decode_batch_cuda(tasks_device, prefix_device, static_cast<uint32_t>(tasks.size()), prefix.back(),
                               flag_.as<int>(), stream);
    }

    Backend& backend_;
    std::vector<DeviceBlob> blobs_;  // per id: the device view (device tier in place; host tier at its staging)
    Buffer flag_, flag_host_;        // set by the decoder when a chunk is corrupt; its read-back
    cudaStream_t load_stream_ = nullptr;
    TaskBuffer ring_[kRing];
    int next_ = 0;
};

}  // namespace

std::unique_ptr<BlobDecoder> make_cuda_blob_decoder(Backend& backend, size_t blobs) {
    return std::make_unique<CudaBlobDecoder>(backend, blobs);
}

}  // namespace ecf8
