// CudaBlobDecoder: the BlobDecoder (runtime/ops.h) of the CUDA backend. Blobs are placed as device layouts
// with their decode tables (place_device_blob), in device memory or in pinned host memory that the kernel
// reads in place; a batch of jobs decodes in one launch; a corrupt chunk sets a device flag, read back behind
// each step's decodes. A batch's task list is uploaded once and kept: the runtime decodes the same lists
// every step (a layer's non-expert tensors, a group of its experts, whose jobs carry the device's pick
// counts), so after the first step a decode is one launch with no upload and no host wait. Its buffers are
// the backend's memory, tagged "decode_tasks".
#include <cuda_runtime.h>

#include <cstring>
#include <unordered_map>
#include <vector>

#include "codec/container.h"
#include "common/error.h"
#include "kernels/cuda/ecf8_decode.cuh"
#include "runtime/backend.h"
#include "runtime/cuda_ops.h"

namespace ecf8 {
namespace {

cudaStream_t native(Stream& s) { return static_cast<cudaStream_t>(s.native_handle()); }

class CudaBlobDecoder final : public BlobDecoder {
public:
    CudaBlobDecoder(Backend& backend, size_t blobs) : backend_(backend), blobs_(blobs), generation_(blobs, 0) {
        flag_ = backend_.buffer(sizeof(int), MemoryKind::Device, "decode_tasks");
        flag_host_ = backend_.buffer(sizeof(int), MemoryKind::PinnedHost, "decode_tasks");
        CUDA_CHECK(cudaMemset(flag_.data(), 0, sizeof(int)));
        *flag_host_.as<int>() = 0;
        CUDA_CHECK(cudaStreamCreateWithFlags(&load_stream_, cudaStreamNonBlocking));
    }
    ~CudaBlobDecoder() override {
        cudaStreamSynchronize(load_stream_);
        cudaStreamDestroy(load_stream_);
    }

    bool device_memory_is_host() const override { return false; }
    uint64_t placed_bytes(const PreparedTensor& t, uint64_t) const override { return device_blob_bytes(t); }
    void place(uint32_t id, PreparedTensor& t, const uint8_t* blob, uint8_t* target, uint64_t target_bytes) override {
        ECF8_CHECK(id < blobs_.size(), "blob id " << id << " is outside the decoder's " << blobs_.size());
        const DeviceBlob view = place_device_blob(t, blob, target, target_bytes, load_stream_);
        // A view that moved makes the task lists holding the old one stale (a staged blob is placed in the host
        // tier, then bound to its staging area).
        const DeviceBlob& old = blobs_[id];
        if (view.stream != old.stream || view.tables != old.tables || view.chunk_offsets != old.chunk_offsets ||
            view.raw != old.raw || view.numel != old.numel)
            ++generation_[id];
        blobs_[id] = view;
        CUDA_CHECK(cudaStreamSynchronize(load_stream_));  // `blob` may go after this
    }
    void bind(uint32_t id, PreparedTensor& t, const uint8_t* blob, uint8_t* target, uint64_t target_bytes) override {
        place(id, t, blob, target, target_bytes);
    }
    void upload(void* dst, const void* host, size_t bytes) override {
        if (bytes > 0) CUDA_CHECK(cudaMemcpy(dst, host, bytes, cudaMemcpyHostToDevice));
    }

    void decode(const std::vector<BlobJob>& jobs, Stream& stream) override {
        std::vector<DecodeTask> tasks;  // raw copies ride along as raw blobs
        std::vector<uint64_t> key;      // what the tasks are made of, without struct padding
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
            key.insert(key.end(), {uint64_t{j.blob}, j.tensor ? generation_[j.blob] : ~uint64_t{0},
                                   reinterpret_cast<uint64_t>(j.src), j.bytes, reinterpret_cast<uint64_t>(j.out),
                                   reinterpret_cast<uint64_t>(j.picks)});
        }
        launch(key, tasks, native(stream));
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
    // One uploaded task list (tasks, then the unit prefix), found again by the jobs it was made from.
    struct TaskList {
        std::vector<uint64_t> key;
        Buffer pinned, device;  // the pinned copy stays: the upload reads it after the host has moved on
        uint32_t count = 0, total_units = 0;
    };
    static constexpr size_t kMaxLists = 1 << 14;  // far above a model's (2 + groups per layer); else cleared

    // Every task in one launch on `stream` (so small tensors decode side by side, not one after another).
    void launch(const std::vector<uint64_t>& key, const std::vector<DecodeTask>& tasks, cudaStream_t stream) {
        if (tasks.empty()) return;
        const std::vector<uint32_t> prefix = decode_task_prefix(tasks);
        if (prefix.back() == 0) return;
        const TaskList& list = uploaded(key, tasks, prefix, stream);
        const auto* tasks_device = list.device.as<const DecodeTask>();
        const auto* prefix_device =
            reinterpret_cast<const uint32_t*>(list.device.as<uint8_t>() + task_bytes(list.count));
        ecf8_decode_batch_cuda(tasks_device, prefix_device, list.count, list.total_units, flag_.as<int>(), stream);
    }

    static size_t task_bytes(size_t count) { return (count * sizeof(DecodeTask) + 15) / 16 * 16; }

    // The device copy of this task list: found by its jobs, or uploaded on `stream` the first time.
    const TaskList& uploaded(const std::vector<uint64_t>& key, const std::vector<DecodeTask>& tasks,
                             const std::vector<uint32_t>& prefix, cudaStream_t stream) {
        std::vector<TaskList>& same_hash = lists_[xxh64_of(key.data(), key.size() * sizeof(uint64_t))];
        for (const TaskList& l : same_hash)
            if (l.key == key) return l;
        if (++list_count_ > kMaxLists) {  // lists that change every call: start over (frees wait for the device)
            lists_.clear();
            list_count_ = 0;
            return uploaded(key, tasks, prefix, stream);
        }
        const size_t bytes = task_bytes(tasks.size()) + prefix.size() * sizeof(uint32_t);
        TaskList l;
        l.key = key;
        l.count = static_cast<uint32_t>(tasks.size());
        l.total_units = prefix.back();
        l.pinned = backend_.buffer(bytes, MemoryKind::PinnedHost, "decode_tasks");
        l.device = backend_.buffer(bytes, MemoryKind::Device, "decode_tasks");
        std::memcpy(l.pinned.data(), tasks.data(), tasks.size() * sizeof(DecodeTask));
        std::memcpy(l.pinned.as<uint8_t>() + task_bytes(tasks.size()), prefix.data(), prefix.size() * sizeof(uint32_t));
        CUDA_CHECK(cudaMemcpyAsync(l.device.data(), l.pinned.data(), bytes, cudaMemcpyHostToDevice, stream));
        same_hash.push_back(std::move(l));
        return same_hash.back();
    }

    Backend& backend_;
    std::vector<DeviceBlob> blobs_;     // per id: the device view (device tier in place; host tier at its staging)
    std::vector<uint64_t> generation_;  // per id: bumped when its view moves
    Buffer flag_, flag_host_;           // set by the decoder when a chunk is corrupt; its read-back
    cudaStream_t load_stream_ = nullptr;
    std::unordered_map<uint64_t, std::vector<TaskList>> lists_;  // by xxh64 of their keys
    size_t list_count_ = 0;
};

}  // namespace

std::unique_ptr<BlobDecoder> make_cuda_blob_decoder(Backend& backend, size_t blobs) {
    return std::make_unique<CudaBlobDecoder>(backend, blobs);
}

}  // namespace ecf8
