// WeightStore: load a rank's shard into its tiers; copy and decode layers into the slot ring.
#include "runtime/weight_store.h"

#include <chrono>
#include <cstring>

#include "codec/container.h"
#include "common/error.h"
#include "common/progress.h"

namespace ecf8 {
namespace {

constexpr uint64_t kAlign = 64;  // every tensor starts on a cache line (and a GPU's 16-byte vector loads)

uint64_t aligned(uint64_t bytes) { return (bytes + kAlign - 1) / kAlign * kAlign; }

// Adds the wall time of a scope to a nanosecond counter.
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

const char* weight_mode_name(WeightMode mode) { return mode == WeightMode::Ecf8 ? "ecf8" : "raw"; }

WeightMode parse_weight_mode(const std::string& name) {
    if (name == "ecf8") return WeightMode::Ecf8;
    if (name == "raw") return WeightMode::Raw;
    throw Error("--weights must be ecf8 (decode just in time) or raw (copy the original bytes), got '" + name + "'");
}

WeightStore::~WeightStore() = default;

std::unique_ptr<WeightStore> WeightStore::load(const ShardManifest& manifest, int rank, Backend& backend,
                                               WeightMode mode, ThreadPool* pool) {
    ECF8_CHECK(rank >= 0 && rank < manifest.world_size(),
               manifest.dir << ": rank " << rank << " is outside the shards' world of " << manifest.world_size());
    const CompressedFile file = manifest.open_rank(rank);
    const std::string path = manifest.dir + "/" + manifest.ranks[rank].file;
    std::unique_ptr<WeightStore> store(new WeightStore(backend, mode));
    WeightStore& s = *store;
    s.layers_.resize(manifest.model.num_hidden_layers);

    // Pass 1: where each tensor lives in its tier, its slot and its staging area.
    uint64_t device = 0, host = 0, resident = 0;
    std::vector<uint64_t> dense(s.layers_.size()), expert(s.layers_.size());
    std::vector<uint64_t> dense_staging(s.layers_.size()), expert_staging(s.layers_.size());
    std::vector<uint64_t> tier_offset;  // per tensor, in manifest order
    for (const ManifestTensor& t : manifest.ranks[rank].tensors) {
        const TensorRecord& rec = file.record(t.name);
        Entry& e = s.tensors_[t.name];
        e.meta = t;
        s.sizes_.raw_bytes += rec.raw_bytes();
        if (t.layer < 0) {
            tier_offset.push_back(resident);
            resident += aligned(rec.raw_bytes());
            continue;
        }
        ECF8_CHECK(t.layer < static_cast<int>(s.layers_.size()), path << ": tensor " << t.name << " names layer "
                                                                      << t.layer << " of a " << s.layers_.size()
                                                                      << "-layer model");
        e.stored_bytes = mode == WeightMode::Raw ? rec.raw_bytes() : file.stored_bytes(rec);
        const bool on_host = t.tier == Tier::Host;
        uint64_t& tier = on_host ? host : device;
        tier_offset.push_back(tier);
        tier += aligned(e.stored_bytes);
        Layer& layer = s.layers_[t.layer];
        const bool is_expert = t.expert >= 0;
        uint64_t& slot = is_expert ? expert[t.layer] : dense[t.layer];
        e.slot_offset = slot;
        slot += aligned(rec.raw_bytes());
        if (on_host) {
            uint64_t& staging = is_expert ? expert_staging[t.layer] : dense_staging[t.layer];
            e.staging_offset = staging;
            staging += aligned(e.stored_bytes);
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

    // Pass 2: fill the tiers, verifying every blob on the way.
    ProgressBar bar("load rank " + std::to_string(rank), manifest.ranks[rank].file_bytes, "B",
                    rank == 0 && ProgressBar::enabled_for_stderr());
    size_t i = 0;
    for (const ManifestTensor& t : manifest.ranks[rank].tensors) {
        Entry& e = s.tensors_.at(t.name);
        const TensorRecord& rec = file.record(t.name);
        const TensorInfo& info = file.file().get(t.name);
        const uint64_t offset = tier_offset[i++];
        if (t.layer < 0) {
            uint8_t* out = s.resident_.as<uint8_t>() + offset;
            file.decode(rec, out, pool);  // checks the decoded bytes' checksum
            e.resident = out;
        } else {
            e.stored = (t.tier == Tier::Host ? s.host_tier_ : s.device_tier_).as<uint8_t>() + offset;
            if (mode == WeightMode::Raw) {
                file.decode(rec, e.stored, pool);
            } else {
                std::memcpy(e.stored, file.file().tensor_data(info), e.stored_bytes);
                ECF8_CHECK(
                    xxh64_of(e.stored, e.stored_bytes) == rec.stored_xxh64,
                    path << ": tensor " << t.name << ": stored bytes do not match their checksum (corrupt file)");
                e.prepared = PreparedTensor::prepare({e.stored, e.stored_bytes}, path + ": " + t.name);
                ECF8_CHECK(e.prepared->decoded_bytes() == rec.raw_bytes(),
                           path << ": tensor " << t.name << ": blob decodes to " << e.prepared->decoded_bytes()
                                << " bytes, the record says " << rec.raw_bytes());
                if (t.tier == Tier::Host) e.prepared->rebase(s.staging_base(t.layer, t.expert >= 0) + e.staging_offset);
            }
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
    const uint8_t* data = e.meta.layer < 0 ? e.resident : slot_base(e.meta.layer, e.meta.expert >= 0) + e.slot_offset;
    return WeightView{data, e.meta.dtype, e.meta.shape, e.meta.split_dim, e.meta.begin};
}

void WeightStore::copy_entries(int layer, const std::vector<Entry*>& entries, bool expert_area) {
    ScopedTimer timer(copy_ns_);
    uint8_t* staging = staging_base(layer, expert_area);
    for (const Entry* e : entries) {
        if (e->meta.tier != Tier::Host) continue;
        std::memcpy(staging + e->staging_offset, e->stored, e->stored_bytes);
        bytes_copied_ += e->stored_bytes;
    }
}

void WeightStore::decode_entries(int layer, const std::vector<Entry*>& entries, bool expert_area) {
    ScopedTimer timer(decode_ns_);
    uint8_t* slot = slot_base(layer, expert_area);
    const uint8_t* staging = staging_base(layer, expert_area);
    for (const Entry* e : entries) {
        uint8_t* out = slot + e->slot_offset;
        if (mode_ == WeightMode::Ecf8) {
            decode_all(*e->prepared, out, nullptr);  // one thread: the decode stream's
            bytes_decoded_ += e->prepared->decoded_bytes();
        } else {
            const uint8_t* src = e->meta.tier == Tier::Host ? staging + e->staging_offset : e->stored;
            std::memcpy(out, src, e->stored_bytes);
            bytes_decoded_ += e->stored_bytes;
        }
    }
}

void WeightStore::copy_layer(int layer) {
    const Layer& l = layers_.at(layer);
    if (l.dense_host) copy_entries(layer, l.dense, false);
}

void WeightStore::decode_layer(int layer) {
    decode_entries(layer, layers_.at(layer).dense, false);
    ++layers_decoded_;
}

void WeightStore::copy_experts(int layer, const std::vector<int>& experts) {
    const Layer& l = layers_.at(layer);
    if (!l.experts_host) return;
    for (int x : experts) {
        auto it = l.experts.find(x);
        ECF8_CHECK(it != l.experts.end(), "this rank holds no routed expert " << x << " of layer " << layer);
        copy_entries(layer, it->second, true);
    }
}

void WeightStore::decode_experts(int layer, const std::vector<int>& experts) {
    const Layer& l = layers_.at(layer);
    for (int x : experts) {
        auto it = l.experts.find(x);
        ECF8_CHECK(it != l.experts.end(), "this rank holds no routed expert " << x << " of layer " << layer);
        decode_entries(layer, it->second, true);
        ++experts_decoded_;
        std::lock_guard<std::mutex> lock(log_mutex_);
        expert_log_.emplace_back(layer, x);
    }
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
