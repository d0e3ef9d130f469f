// WeightStore: load a rank's shard into its tiers; copy and decode layers into the slot ring.
#include "runtime/weight_store.h"

#include <chrono>
#include <cstring>

#include "codec/container.h"
#include "common/error.h"
#include "common/progress.h"

#ifdef ECF8_HAVE_CUDA
#include <cuda_runtime.h>

#include "kernels/cuda/ecf8_decode.cuh"
#endif

namespace ecf8 {
namespace {

// Every tensor starts on a 256-byte boundary: cache lines on the CPU, and the alignment the CUDA decoder
// wants for a device blob.
constexpr uint64_t kAlign = 256;

uint64_t aligned(uint64_t bytes) { return (bytes + kAlign - 1) / kAlign * kAlign; }

// Adds the wall time of a scope to a nanosecond counter (on CUDA: the time to enqueue the work).
class ScopedTimer {
public:
    explicit ScopedTimer(std::atomic<int64_t>& ns) : ns_(ns), start_(std::chrono::steady_clock::now()) {}
    ~ScopedTimer() {
        ns_ += std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start_).count();
    }

private:
    std::atomic<int64_t>& ns_;
    std::chrono::steady_clock::time_point start_;
};

}  // namespace

#ifdef ECF8_HAVE_CUDA
struct WeightStore::CudaParts {
    std::vector<DeviceBlob> blobs;  // per entry: the device blob (device tier in place; host tier at its staging)
    int* error_flag = nullptr;      // set by the decoder when a chunk is corrupt
    int* error_host = nullptr;      // pinned: the flag as queue_decode_check last copied it
    cudaStream_t load_stream = nullptr;
    // Task lists travel to the device through a ring of pinned buffers: a buffer is refilled only after the
    // event recorded behind its last upload has completed (long done in the steady state: a ring of 4 spans
    // two layers' dense and expert decodes).
    struct TaskBuffer {
        void* pinned = nullptr;
        void* device = nullptr;
        size_t bytes = 0;
        cudaEvent_t uploaded = nullptr;
    };
    static constexpr int kTaskBuffers = 4;
    TaskBuffer task_buffers[kTaskBuffers];
    int next_buffer = 0;

    CudaParts() {
        CUDA_CHECK(cudaMalloc(&error_flag, sizeof(int)));
        CUDA_CHECK(cudaMemset(error_flag, 0, sizeof(int)));
        CUDA_CHECK(cudaHostAlloc(&error_host, sizeof(int), cudaHostAllocDefault));
        *error_host = 0;
        CUDA_CHECK(cudaStreamCreateWithFlags(&load_stream, cudaStreamNonBlocking));
        for (TaskBuffer& b : task_buffers) CUDA_CHECK(cudaEventCreateWithFlags(&b.uploaded, cudaEventDisableTiming));
    }
    ~CudaParts() {
        for (TaskBuffer& b : task_buffers) {
            cudaEventSynchronize(b.uploaded);
            cudaEventDestroy(b.uploaded);
            cudaFreeHost(b.pinned);
            cudaFree(b.device);
        }
        cudaStreamDestroy(load_stream);
        cudaFree(error_flag);
        cudaFreeHost(error_host);
    }

    // Decodes every task in one launch on `stream` (so small tensors decode side by side, not one after another).
    void decode(const std::vector<DecodeTask>& tasks, cudaStream_t stream) {
        if (tasks.empty()) return;
        const std::vector<uint32_t> prefix = decode_task_prefix(tasks);
        if (prefix.back() == 0) return;
        const size_t task_bytes = (tasks.size() * sizeof(DecodeTask) + 15) / 16 * 16;
        const size_t bytes = task_bytes + prefix.size() * sizeof(uint32_t);
        TaskBuffer& b = task_buffers[next_buffer];
        next_buffer = (next_buffer + 1) % kTaskBuffers;
        CUDA_CHECK(cudaEventSynchronize(b.uploaded));
        if (b.bytes < bytes) {
            CUDA_CHECK(cudaFreeHost(b.pinned));
            CUDA_CHECK(cudaFree(b.device));  // waits for the device, so no decode still reads it
            b.pinned = b.device = nullptr;
            b.bytes = 0;
            CUDA_CHECK(cudaHostAlloc(&b.pinned, bytes, cudaHostAllocDefault));
            CUDA_CHECK(cudaMalloc(&b.device, bytes));
            b.bytes = bytes;
        }
        std::memcpy(b.pinned, tasks.data(), tasks.size() * sizeof(DecodeTask));
        std::memcpy(static_cast<uint8_t*>(b.pinned) + task_bytes, prefix.data(), prefix.size() * sizeof(uint32_t));
        CUDA_CHECK(cudaMemcpyAsync(b.device, b.pinned, bytes, cudaMemcpyHostToDevice, stream));
        CUDA_CHECK(cudaEventRecord(b.uploaded, stream));
        const auto* tasks_device = static_cast<const DecodeTask*>(b.device);
        const auto* prefix_device = reinterpret_cast<const uint32_t*>(static_cast<uint8_t*>(b.device) + task_bytes);
        ecf8_decode_batch_cuda(tasks_device, prefix_device, static_cast<uint32_t>(tasks.size()), prefix.back(),
                               error_flag, stream);
    }
};
#else
struct WeightStore::CudaParts {};
#endif

const char* weight_mode_name(WeightMode mode) {
    return mode == WeightMode::Ecf8 ? "ecf8" : mode == WeightMode::Raw ? "raw" : "raw-copy";
}

WeightMode parse_weight_mode(const std::string& name) {
    if (name == "ecf8") return WeightMode::Ecf8;
    if (name == "raw") return WeightMode::Raw;
    if (name == "raw-copy") return WeightMode::RawCopy;
    throw Error(
        "--weights must be ecf8 (decode just in time), raw (the original FP8 bytes, used in place) or "
        "raw-copy (the original bytes copied where ECF8 decodes), got '" +
        name + "'");
}

WeightStore::WeightStore(Backend& backend, WeightMode mode) : backend_(backend), mode_(mode) {
    if (on_cuda()) {
#ifdef ECF8_HAVE_CUDA
        cuda_ = std::make_unique<CudaParts>();
#else
        throw Error("this ecf8 was built without CUDA; the weight store cannot use a CUDA backend");
#endif
    }
}

WeightStore::~WeightStore() = default;

void WeightStore::copy_bytes(void* dst, const void* src, uint64_t bytes, Stream& stream) {
    if (!on_cuda()) {
        std::memcpy(dst, src, bytes);
        return;
    }
#ifdef ECF8_HAVE_CUDA
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, static_cast<cudaStream_t>(stream.native_handle())));
#endif
}

std::unique_ptr<WeightStore> WeightStore::load(const ShardManifest& manifest, int rank, Backend& backend,
                                               WeightMode mode, ThreadPool* pool) {
    ECF8_CHECK(rank >= 0 && rank < manifest.world_size(),
               manifest.dir << ": rank " << rank << " is outside the shards' world of " << manifest.world_size());
    const CompressedFile file = manifest.open_rank(rank);
    const std::string path = manifest.dir + "/" + manifest.ranks[rank].file;
    std::unique_ptr<WeightStore> store(new WeightStore(backend, mode));
    WeightStore& s = *store;
    const bool cuda = s.on_cuda();
    s.layers_.resize(manifest.model.num_hidden_layers);

    // Pass 1: verify and parse every blob; where each tensor lives in its tier, its slot and its staging area.
    uint64_t device = 0, host = 0, resident = 0;
    std::vector<uint64_t> dense(s.layers_.size()), expert(s.layers_.size());
    std::vector<uint64_t> dense_staging(s.layers_.size()), expert_staging(s.layers_.size());
    std::vector<uint64_t> tier_offset;  // per tensor, in manifest order
    for (const ManifestTensor& t : manifest.ranks[rank].tensors) {
        const TensorRecord& rec = file.record(t.name);
        Entry& e = s.tensors_[t.name];
        e.meta = t;
        e.index = tier_offset.size();
        s.sizes_.raw_bytes += rec.raw_bytes();
        if (t.layer < 0) {
            tier_offset.push_back(resident);
            resident += aligned(rec.raw_bytes());
            continue;
        }
        ECF8_CHECK(t.layer < static_cast<int>(s.layers_.size()), path << ": tensor " << t.name << " names layer "
                                                                      << t.layer << " of a " << s.layers_.size()
                                                                      << "-layer model");
        const bool on_host = t.tier == Tier::Host;
        if (mode != WeightMode::Ecf8) {
            e.stored_bytes = e.staging_bytes = rec.raw_bytes();
        } else {
            // Header, codebooks and chunk offsets only: the blob is read, and its checksum checked, once, in
            // pass 2, so a shard larger than the page cache is not read from disk twice.
            e.prepared = file.parse(rec);
            // The CPU decodes the blob as stored; the CUDA decoder reads a device layout of it (with tables).
            uint64_t device_blob = file.stored_bytes(rec);
#ifdef ECF8_HAVE_CUDA
            if (cuda) device_blob = device_blob_bytes(*e.prepared);
#endif
            e.stored_bytes = on_host ? file.stored_bytes(rec) : device_blob;
            e.staging_bytes = device_blob;
        }
        uint64_t& tier = on_host ? host : device;
        tier_offset.push_back(tier);
        tier += aligned(e.stored_bytes);
        Layer& layer = s.layers_[t.layer];
        const bool is_expert = t.expert >= 0;
        uint64_t& slot = is_expert ? expert[t.layer] : dense[t.layer];
        e.slot_offset = slot;
        if (mode != WeightMode::Raw) slot += aligned(rec.raw_bytes());  // Raw: used where it is stored
        if (on_host) {
            uint64_t& staging = is_expert ? expert_staging[t.layer] : dense_staging[t.layer];
            e.staging_offset = staging;
            staging += aligned(e.staging_bytes);
        }
        if (is_expert) {
            layer.experts[t.expert].push_back(&e);
            layer.experts_host |= on_host;
        } else {
            layer.dense.push_back(&e);
            layer.dense_host |= on_host;
        }
    }
    for (size_t l = 0; l < s.layers_.size(); ++l) {
        s.dense_area_ = std::max(s.dense_area_, dense[l]);
        s.expert_area_ = std::max(s.expert_area_, expert[l]);
        s.dense_staging_area_ = std::max(s.dense_staging_area_, dense_staging[l]);
        s.expert_staging_area_ = std::max(s.expert_staging_area_, expert_staging[l]);
    }
    s.device_tier_ = backend.buffer(device, MemoryKind::Device, "weights");
    s.host_tier_ = backend.buffer(host, MemoryKind::PinnedHost, "weights_host_tier");
    s.resident_ = backend.buffer(resident, MemoryKind::Device, "weights_resident");
    s.slots_ = backend.buffer(kDecodeSlots * s.dense_area_ + s.expert_area_, MemoryKind::Device, "decode_slots");
    s.staging_ =
        backend.buffer(kDecodeSlots * s.dense_staging_area_ + s.expert_staging_area_, MemoryKind::Device, "staging");
    s.sizes_.device_bytes = device;
    s.sizes_.host_bytes = host;
    s.sizes_.resident_bytes = resident;
    s.sizes_.slot_bytes = s.slots_.size();
    s.sizes_.staging_bytes = s.staging_.size();
#ifdef ECF8_HAVE_CUDA
    if (cuda) s.cuda_->blobs.resize(tier_offset.size());
#endif

    // Pass 2: fill the tiers, one tensor at a time, releasing its file pages after. Decoding at load
    // (resident tensors, raw modes) checks both checksums; a stored blob is checked as it was copied.
    ProgressBar bar("load rank " + std::to_string(rank), manifest.ranks[rank].file_bytes, "B",
                    rank == 0 && ProgressBar::enabled_for_stderr());
    std::vector<uint8_t> host_copy;  // CUDA: decoded bytes on their way to device memory
    for (const ManifestTensor& t : manifest.ranks[rank].tensors) {
        Entry& e = s.tensors_.at(t.name);
        const TensorRecord& rec = file.record(t.name);
        const TensorInfo& info = file.file().get(t.name);
        const uint64_t offset = tier_offset[e.index];
        const bool on_host = t.tier == Tier::Host;
        uint8_t* target = nullptr;
        if (t.layer < 0) {
            target = s.resident_.as<uint8_t>() + offset;
            e.resident = target;
        } else {
            target = (on_host ? s.host_tier_ : s.device_tier_).as<uint8_t>() + offset;
            e.stored = target;
        }
        const bool decode_now = t.layer < 0 || mode != WeightMode::Ecf8;
        if (decode_now && (!cuda || (t.layer >= 0 && on_host))) {
            file.decode(rec, target, pool);  // host-visible memory
        } else if (decode_now) {
#ifdef ECF8_HAVE_CUDA
            host_copy.resize(rec.raw_bytes());
            file.decode(rec, host_copy.data(), pool);
            CUDA_CHECK(cudaMemcpy(target, host_copy.data(), host_copy.size(), cudaMemcpyHostToDevice));
#endif
        } else if (!cuda) {
            std::memcpy(target, file.file().tensor_data(info), e.stored_bytes);
            file.check_stored(rec, target);
            e.prepared->rebase(on_host ? s.staging_base(t.layer, t.expert >= 0) + e.staging_offset : target);
        } else {
#ifdef ECF8_HAVE_CUDA
            const uint8_t* blob = file.file().tensor_data(info);
            if (on_host) {
                std::memcpy(target, blob, e.stored_bytes);
                file.check_stored(rec, target);
                s.cuda_->blobs[e.index] =
                    place_device_blob(*e.prepared, target, s.staging_base(t.layer, t.expert >= 0) + e.staging_offset,
                                      e.staging_bytes, s.cuda_->load_stream);
            } else {
                file.check_stored(rec, blob);  // the device copy is made from these mapped bytes
                s.cuda_->blobs[e.index] =
                    place_device_blob(*e.prepared, blob, target, e.stored_bytes, s.cuda_->load_stream);
            }
            CUDA_CHECK(cudaStreamSynchronize(s.cuda_->load_stream));  // before the file's pages are released
#endif
        }
        file.file().release(info);
        bar.advance(info.nbytes());
    }
    bar.finish();
    return store;
}

// Layer tensors alternate between kDecodeSlots dense areas; all layers share one expert area (and one
// expert staging area), since layer L+1's experts are fetched only after its routing, which the compute
// stream runs after layer L's experts.
uint8_t* WeightStore::slot_base(int layer, bool expert_area) const {
    if (expert_area) return slots_.as<uint8_t>() + kDecodeSlots * dense_area_;
    return slots_.as<uint8_t>() + (layer % kDecodeSlots) * dense_area_;
}

uint8_t* WeightStore::staging_base(int layer, bool expert_area) const {
    if (expert_area) return staging_.as<uint8_t>() + kDecodeSlots * dense_staging_area_;
    return staging_.as<uint8_t>() + (layer % kDecodeSlots) * dense_staging_area_;
}

WeightView WeightStore::get(const std::string& name) const {
    auto it = tensors_.find(name);
    ECF8_CHECK(it != tensors_.end(), "this rank holds no part of tensor " << name);
    const Entry& e = it->second;
    const bool expert = e.meta.expert >= 0;
    const uint8_t* data = e.meta.layer < 0            ? e.resident
                          : mode_ != WeightMode::Raw  ? slot_base(e.meta.layer, expert) + e.slot_offset
                          : e.meta.tier == Tier::Host ? staging_base(e.meta.layer, expert) + e.staging_offset
                                                      : e.stored;
    return WeightView{data, e.meta.dtype, e.meta.shape, e.meta.split_dim, e.meta.begin};
}

void WeightStore::copy_entries(int layer, const std::vector<Entry*>& entries, bool expert_area, Stream& stream) {
    ScopedTimer timer(copy_ns_);
    uint8_t* staging = staging_base(layer, expert_area);
    for (const Entry* e : entries) {
        if (e->meta.tier != Tier::Host) continue;
        if (on_cuda() && mode_ == WeightMode::Ecf8) {
#ifdef ECF8_HAVE_CUDA
            // The blob and its decode tables, into the device layout the decoder reads.
            place_device_blob(*e->prepared, e->stored, staging + e->staging_offset, e->staging_bytes,
                              static_cast<cudaStream_t>(stream.native_handle()));
#endif
        } else {
            copy_bytes(staging + e->staging_offset, e->stored, e->stored_bytes, stream);
        }
        bytes_copied_ += e->stored_bytes;
    }
}

void WeightStore::decode_entries(int layer, const std::vector<Entry*>& entries, bool expert_area, Stream& stream) {
    if (mode_ == WeightMode::Raw) return;  // used in place (host tier: from staging, copied by copy_*)
    ScopedTimer timer(decode_ns_);
    uint8_t* slot = slot_base(layer, expert_area);
    const uint8_t* staging = staging_base(layer, expert_area);
#ifdef ECF8_HAVE_CUDA
    std::vector<DecodeTask> tasks;  // CUDA: all of them in one launch; RawCopy's copies ride along as raw blobs
#endif
    for (const Entry* e : entries) {
        uint8_t* out = slot + e->slot_offset;
        const uint64_t bytes = e->prepared ? e->prepared->decoded_bytes() : e->stored_bytes;
        const uint8_t* stored = e->meta.tier == Tier::Host ? staging + e->staging_offset : e->stored;
        if (!on_cuda()) {
            if (mode_ == WeightMode::RawCopy)
                std::memcpy(out, stored, bytes);
            else
                decode_all(*e->prepared, out, nullptr);  // one thread: the decode stream's
        } else {
#ifdef ECF8_HAVE_CUDA
            DeviceBlob blob{};
            if (mode_ == WeightMode::RawCopy) {
                blob.stream = reinterpret_cast<const uint32_t*>(stored);
                blob.numel = bytes;
                blob.kind = SymbolKind::Byte;
                blob.mode = BlobMode::Raw;
                blob.value_bytes = 1;
            } else {
                blob = cuda_->blobs[e->index];
            }
            tasks.push_back(DecodeTask{blob, 0, blob.numel, out});
#endif
        }
        bytes_decoded_ += bytes;
    }
#ifdef ECF8_HAVE_CUDA
    if (on_cuda()) cuda_->decode(tasks, static_cast<cudaStream_t>(stream.native_handle()));
#endif
}

void WeightStore::copy_layer(int layer, Stream& stream) {
    const Layer& l = layers_.at(layer);
    if (l.dense_host) copy_entries(layer, l.dense, false, stream);
}

void WeightStore::decode_layer(int layer, Stream& stream) {
    decode_entries(layer, layers_.at(layer).dense, false, stream);
    ++layers_decoded_;
}

void WeightStore::copy_experts(int layer, const std::vector<int>& experts, Stream& stream) {
    const Layer& l = layers_.at(layer);
    if (!l.experts_host) return;
    for (int x : experts) {
        auto it = l.experts.find(x);
        ECF8_CHECK(it != l.experts.end(), "this rank holds no routed expert " << x << " of layer " << layer);
        copy_entries(layer, it->second, true, stream);
    }
}

void WeightStore::decode_experts(int layer, const std::vector<int>& experts, Stream& stream) {
    const Layer& l = layers_.at(layer);
    std::vector<Entry*> entries;  // every picked expert's tensors: one decode launch on CUDA
    for (int x : experts) {
        auto it = l.experts.find(x);
        ECF8_CHECK(it != l.experts.end(), "this rank holds no routed expert " << x << " of layer " << layer);
        entries.insert(entries.end(), it->second.begin(), it->second.end());
    }
    decode_entries(layer, entries, true, stream);
    experts_decoded_ += experts.size();
    std::lock_guard<std::mutex> lock(log_mutex_);
    for (int x : experts) expert_log_.emplace_back(layer, x);
}

void WeightStore::check_decode_errors() {
#ifdef ECF8_HAVE_CUDA
    if (!on_cuda()) return;
    CUDA_CHECK(cudaDeviceSynchronize());
    ecf8_decode_check_error(cuda_->error_flag, cuda_->load_stream, "weight store decode");
#endif
}

void WeightStore::queue_decode_check([[maybe_unused]] Stream& stream) {
#ifdef ECF8_HAVE_CUDA
    if (!on_cuda() || mode_ != WeightMode::Ecf8) return;
    const auto s = static_cast<cudaStream_t>(stream.native_handle());
    CUDA_CHECK(cudaMemcpyAsync(cuda_->error_host, cuda_->error_flag, sizeof(int), cudaMemcpyDeviceToHost, s));
    CUDA_CHECK(cudaMemsetAsync(cuda_->error_flag, 0, sizeof(int), s));
#endif
}

void WeightStore::throw_if_decode_failed() {
#ifdef ECF8_HAVE_CUDA
    if (!on_cuda() || *cuda_->error_host == 0) return;
    *cuda_->error_host = 0;
    throw Error(
        "weight store decode: the GPU decoder found a corrupt ECF8 chunk in this step's weights "
        "(the blob in memory no longer matches its checksum; ecf8 verify-shards checks the files)");
#endif
}

bool WeightStore::layer_has_host_tensors(int layer) const { return layers_.at(layer).dense_host; }
bool WeightStore::experts_in_host_tier(int layer) const { return layers_.at(layer).experts_host; }

WeightStoreStats WeightStore::stats() const {
    WeightStoreStats s = sizes_;
    s.layers_decoded = layers_decoded_;
    s.experts_decoded = experts_decoded_;
    s.bytes_decoded = bytes_decoded_;
    s.bytes_copied = bytes_copied_;
    s.decode_seconds = decode_ns_ * 1e-9;
    s.copy_seconds = copy_ns_ * 1e-9;
    return s;
}

void WeightStore::reset_counters() {
    layers_decoded_ = experts_decoded_ = bytes_decoded_ = bytes_copied_ = 0;
    decode_ns_ = copy_ns_ = 0;
    std::lock_guard<std::mutex> lock(log_mutex_);
    expert_log_.clear();
}

std::vector<std::pair<int, int>> WeightStore::decoded_experts() const {
    std::lock_guard<std::mutex> lock(log_mutex_);
    return expert_log_;
}

}  // namespace ecf8
