// WeightStore: load a rank's shard into its tiers; copy and decode layers into the slot ring.
#include "runtime/weight_store.h"

#include <array>
#include <chrono>
#include <cstring>

#include "codec/container.h"
#include "common/error.h"
#include "common/progress.h"
#include "runtime/ops.h"

namespace ecf8 {
namespace {

// Every tensor starts on a 256-byte boundary: cache lines on the CPU, and the alignment the CUDA decoder
// wants for a device blob.
constexpr uint64_t kAlign = 256;

uint64_t aligned(uint64_t bytes) { return (bytes + kAlign - 1) / kAlign * kAlign; }

// Host-tier non-expert tensors are copied to a staging area before their decode; host-tier routed experts
// are read where they lie (only the picked ones are read at all).
bool staged(const ManifestTensor& t) { return t.tier == Tier::Host && t.expert < 0; }

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

WeightStore::WeightStore(Backend& backend, WeightMode mode, size_t tensors)
    : backend_(backend), mode_(mode), decoder_(backend.ops().make_blob_decoder(tensors)) {}

WeightStore::~WeightStore() = default;

std::unique_ptr<WeightStore> WeightStore::load(const ShardManifest& manifest, int rank, Backend& backend,
                                               WeightMode mode, ThreadPool* pool, const std::vector<bool>& keep_decoded,
                                               ExpertArea expert_area) {
    ECF8_CHECK(rank >= 0 && rank < manifest.world_size(),
               manifest.dir << ": rank " << rank << " is outside the shards' world of " << manifest.world_size());
    const CompressedFile file = manifest.open_rank(rank);
    std::unique_ptr<WeightStore> store(new WeightStore(backend, mode, manifest.ranks[rank].tensors.size()));
    store->layers_.resize(manifest.model.num_hidden_layers);
    ECF8_CHECK(expert_area != ExpertArea::Auto,
               "WeightStore::load: memory.expert_area auto is resolved by the memory plan (RankMemory::expert_area)");
    store->expert_area_mode_ = expert_area;
    if (manifest.model.n_routed_experts > 0) {
        const ExpertRange mine =
            manifest.world(rank).experts_for_rank(static_cast<int>(manifest.model.n_routed_experts));
        store->first_expert_ = mine.begin;
        store->local_experts_ = mine.end - mine.begin;
    }
    const std::vector<uint64_t> tier_offset = store->lay_out(manifest, rank, file, keep_decoded);
    store->fill(manifest, rank, file, tier_offset, pool);
    return store;
}

// Pass 1: verify and parse every blob; where each tensor lives in its tier, its slot and its staging area;
// the tiers, slots and staging allocated. Returns each tensor's offset in its tier, in manifest order.
std::vector<uint64_t> WeightStore::lay_out(const ShardManifest& manifest, int rank, const CompressedFile& file,
                                           const std::vector<bool>& keep_decoded) {
    const std::string path = manifest.dir + "/" + manifest.ranks[rank].file;
    ECF8_CHECK(keep_decoded.empty() || keep_decoded.size() == manifest.ranks[rank].tensors.size(),
               path << ": " << keep_decoded.size() << " keep-decoded flags for " << manifest.ranks[rank].tensors.size()
                    << " tensors");
    BlobDecoder& decoder = *decoder_;
    uint64_t device = 0, host = 0, resident = 0;
    std::vector<uint64_t> dense(layers_.size()), dense_staging(layers_.size());
    std::vector<std::array<uint64_t, kExpertAreaGroups>> expert(layers_.size());  // per layer and group
    std::vector<uint64_t> tier_offset;                                            // per tensor, in manifest order
    for (const ManifestTensor& t : manifest.ranks[rank].tensors) {
        const TensorRecord& rec = file.record(t.name);
        Entry& e = tensors_[t.name];
        e.meta = t;
        e.index = tier_offset.size();
        sizes_.raw_bytes += rec.raw_bytes();
        if (t.layer < 0) {
            tier_offset.push_back(resident);
            resident += aligned(rec.raw_bytes());
            continue;
        }
        ECF8_CHECK(t.layer < static_cast<int>(layers_.size()), path << ": tensor " << t.name << " names layer "
                                                                    << t.layer << " of a " << layers_.size()
                                                                    << "-layer model");
        const bool on_host = t.tier == Tier::Host, is_expert = t.expert >= 0;
        e.kept_decoded = !keep_decoded.empty() && keep_decoded[e.index];
        ECF8_CHECK(!e.kept_decoded || mode_ == WeightMode::Ecf8,
                   path << ": tensor " << t.name << " is to be kept decoded, but --weights " << weight_mode_name(mode_)
                        << " holds every tensor decoded already");
        ECF8_CHECK(!e.kept_decoded || (is_expert && !on_host),
                   path << ": tensor " << t.name
                        << " is to be kept decoded, but only device-tier routed experts can "
                           "be (the shards' tiers differ from the memory plan's; re-shard "
                           "with this YAML, or run with --decoded-experts-gb 0)");
        if (mode_ != WeightMode::Ecf8 || e.kept_decoded) {
            e.stored_bytes = e.staging_bytes = rec.raw_bytes();
        } else {
            // Header, codebooks and chunk offsets only: the blob is read, and its checksum checked, once, in
            // pass 2, so a shard larger than the page cache is not read from disk twice.
            e.prepared = file.parse(rec);
            // The CPU decodes the blob as stored; the CUDA decoder reads a device layout of it (with tables).
            // Every tier holds that layout, so a staged tensor goes to its staging area in one plain copy.
            e.stored_bytes = e.staging_bytes = decoder.placed_bytes(*e.prepared, file.stored_bytes(rec));
        }
        uint64_t& tier = on_host ? host : device;
        tier_offset.push_back(tier);
        tier += aligned(e.stored_bytes);
        Layer& layer = layers_[t.layer];
        // An expert's offset within its group for now; its group's place in the area is added below.
        uint64_t& slot =
            is_expert ? expert[t.layer][expert_area_group(t.expert - first_expert_, local_experts_)] : dense[t.layer];
        e.slot_offset = slot;
        if (!in_place(e)) slot += aligned(rec.raw_bytes());
        if (staged(t)) {
            e.staging_offset = dense_staging[t.layer];
            dense_staging[t.layer] += aligned(e.staging_bytes);
        }
        if (is_expert) {
            ECF8_CHECK(t.expert >= first_expert_ && t.expert < first_expert_ + local_experts_,
                       path << ": tensor " << t.name << " is routed expert " << t.expert << ", outside this rank's ["
                            << first_expert_ << ", " << first_expert_ + local_experts_ << ")");
            layer.experts[t.expert].push_back(&e);
        } else {
            layer.dense.push_back(&e);
            layer.dense_host |= on_host;
        }
    }
    for (size_t l = 0; l < layers_.size(); ++l) {
        dense_area_ = std::max(dense_area_, dense[l]);
        const ExpertAreaLayout area = expert_area_layout(expert[l], expert_area_mode_);
        expert_area_ = std::max(expert_area_, area.bytes);
        for (auto& [id, entries] : layers_[l].experts)
            for (Entry* e : entries)
                if (!in_place(*e))
                    e->slot_offset += area.group_offset[expert_area_group(id - first_expert_, local_experts_)];
        dense_staging_area_ = std::max(dense_staging_area_, dense_staging[l]);
    }
    device_tier_ = backend_.buffer(device, MemoryKind::Device, "weights");
    host_tier_ = backend_.buffer(host, MemoryKind::PinnedHost, "weights_host_tier");
    resident_ = backend_.buffer(resident, MemoryKind::Device, "weights_resident");
    slots_ = backend_.buffer(kDecodeSlots * dense_area_ + expert_area_, MemoryKind::Device, "decode_slots");
    staging_ = backend_.buffer(kDecodeSlots * dense_staging_area_, MemoryKind::Device, "staging");
    sizes_.device_bytes = device;
    sizes_.host_bytes = host;
    sizes_.resident_bytes = resident;
    sizes_.slot_bytes = slots_.size();
    sizes_.staging_bytes = staging_.size();

    return tier_offset;
}

// Pass 2: fill the tiers, one tensor at a time, releasing its file pages after. Decoding at load (resident
// tensors, raw modes) checks both checksums; a stored blob is checked as it was copied.
void WeightStore::fill(const ShardManifest& manifest, int rank, const CompressedFile& file,
                       const std::vector<uint64_t>& tier_offset, ThreadPool* pool) {
    BlobDecoder& decoder = *decoder_;
    ProgressBar bar("load rank " + std::to_string(rank), manifest.ranks[rank].file_bytes, "B",
                    rank == 0 && ProgressBar::enabled_for_stderr());
    std::vector<uint8_t> host_copy;  // decoded bytes on their way to device memory (CUDA)
    const bool host_visible = decoder.device_memory_is_host();
    for (const ManifestTensor& t : manifest.ranks[rank].tensors) {
        Entry& e = tensors_.at(t.name);
        const TensorRecord& rec = file.record(t.name);
        const TensorInfo& info = file.file().get(t.name);
        const uint64_t offset = tier_offset[e.index];
        const bool on_host = t.tier == Tier::Host;
        uint8_t* target = nullptr;
        if (t.layer < 0) {
            target = resident_.as<uint8_t>() + offset;
            e.resident = target;
        } else {
            target = (on_host ? host_tier_ : device_tier_).as<uint8_t>() + offset;
            e.stored = target;
        }
        const bool decode_now = t.layer < 0 || mode_ != WeightMode::Ecf8 || e.kept_decoded;
        if (decode_now && (host_visible || (t.layer >= 0 && on_host))) {
            file.decode(rec, target, pool);  // host-visible memory
        } else if (decode_now) {
            host_copy.resize(rec.raw_bytes());
            file.decode(rec, host_copy.data(), pool);
            decoder.upload(target, host_copy.data(), host_copy.size());
        } else if (staged(t)) {
            // Pinned host tier: the placed layout, copied as it is to the staging area before each decode (no
            // pageable source, so the copy stays asynchronous); the decoder's view points at the staging area.
            const uint8_t* blob = file.file().tensor_data(info);
            file.check_stored(rec, blob);
            decoder.place(static_cast<uint32_t>(e.index), *e.prepared, blob, target, e.stored_bytes);
            decoder.bind(static_cast<uint32_t>(e.index), *e.prepared, blob, staging_base(t.layer) + e.staging_offset,
                         e.staging_bytes);
        } else {  // the device tier, and host-tier experts: placed where the decoder reads them
            const uint8_t* blob = file.file().tensor_data(info);
            file.check_stored(rec, blob);  // the placed copy is made from these mapped bytes
            decoder.place(static_cast<uint32_t>(e.index), *e.prepared, blob, target, e.stored_bytes);
        }
        file.file().release(info);
        bar.advance(info.nbytes());
    }
    bar.finish();
}

// Layer tensors alternate between kDecodeSlots dense areas; all layers share one expert area, since layer
// L+1's experts are decoded only after its routing, which the compute stream runs after layer L's experts.
uint8_t* WeightStore::slot_base(int layer, bool expert_area) const {
    if (expert_area) return slots_.as<uint8_t>() + kDecodeSlots * dense_area_;
    return slots_.as<uint8_t>() + (layer % kDecodeSlots) * dense_area_;
}

uint8_t* WeightStore::staging_base(int layer) const {
    return staging_.as<uint8_t>() + (layer % kDecodeSlots) * dense_staging_area_;
}

bool WeightStore::in_place(const Entry& e) const {
    return e.kept_decoded || (mode_ == WeightMode::Raw && !(e.meta.expert >= 0 && e.meta.tier == Tier::Host));
}

WeightView WeightStore::get(const std::string& name) const {
    auto it = tensors_.find(name);
    ECF8_CHECK(it != tensors_.end(), "this rank holds no part of tensor " << name);
    const Entry& e = it->second;
    const bool expert = e.meta.expert >= 0, on_host = e.meta.tier == Tier::Host;
    // Raw mode's host-tier non-expert tensors are read from staging, where copy_layer puts them.
    const uint8_t* data = e.meta.layer < 0 ? e.resident
                          : !in_place(e)   ? slot_base(e.meta.layer, expert) + e.slot_offset
                          : on_host        ? staging_base(e.meta.layer) + e.staging_offset
                                           : e.stored;
    return WeightView{data, e.meta.dtype, e.meta.shape, e.meta.split_dim, e.meta.begin};
}

BlobJob WeightStore::job_for(const Entry& e, uint8_t* slot, const int32_t* picks) {
    ECF8_CHECK(!in_place(e), "tensor " << e.meta.name << " is used in place: it has no decode job");
    BlobJob job;
    job.blob = static_cast<uint32_t>(e.index);
    job.tensor = mode_ == WeightMode::Ecf8 ? &*e.prepared : nullptr;
    job.src = staged(e.meta) ? staging_base(e.meta.layer) + e.staging_offset : e.stored;
    job.bytes = e.prepared ? e.prepared->decoded_bytes() : e.stored_bytes;
    job.out = slot + e.slot_offset;
    job.picks = picks;
    return job;
}

void WeightStore::copy_layer(int layer, Stream& stream) {
    const Layer& l = layers_.at(layer);
    if (!l.dense_host) return;
    ScopedTimer timer(copy_ns_);
    uint8_t* staging = staging_base(layer);
    for (Entry* e : l.dense) {
        if (e->meta.tier != Tier::Host) continue;
        // The host tier holds what the decoder reads (ECF8: the placed blob, on CUDA with its decode tables).
        backend_.ops().copy(staging + e->staging_offset, e->stored, e->stored_bytes, stream);
        bytes_copied_ += e->stored_bytes;
    }
}

void WeightStore::decode_layer(int layer, Stream& stream) {
    ++layers_decoded_;
    if (mode_ == WeightMode::Raw) return;  // used in place (host tier: from staging, copied by copy_layer)
    ScopedTimer timer(decode_ns_);
    uint8_t* slot = slot_base(layer, false);
    std::vector<BlobJob> jobs;  // CUDA: all of them in one launch; RawCopy's copies ride along
    for (const Entry* e : layers_.at(layer).dense) {
        jobs.push_back(job_for(*e, slot, nullptr));
        bytes_decoded_ += jobs.back().bytes;
    }
    decoder_->decode(jobs, stream);
}

void WeightStore::decode_experts(int layer, int first, int last, const int32_t* pick_offsets, Stream& stream) {
    ECF8_CHECK(first >= 0 && first <= last && last <= local_experts_,
               "decode_experts: local experts [" << first << ", " << last << ") of " << local_experts_);
    const Layer& l = layers_.at(layer);
    ScopedTimer timer(decode_ns_);
    uint8_t* slot = slot_base(layer, true);
    std::vector<BlobJob> jobs;  // one launch on CUDA; unpicked experts' jobs return at once there
    for (int i = first; i < last; ++i) {
        auto it = l.experts.find(first_expert_ + i);
        if (it == l.experts.end()) continue;  // a dense layer, or a shard without this expert: nothing to read
        for (const Entry* e : it->second)
            if (!in_place(*e)) jobs.push_back(job_for(*e, slot, pick_offsets + i));
    }
    decoder_->decode(jobs, stream);
}

bool WeightStore::experts_decode(int layer, int first, int last) const {
    const Layer& l = layers_.at(layer);
    for (int i = first; i < last; ++i) {
        auto it = l.experts.find(first_expert_ + i);
        if (it == l.experts.end()) continue;
        for (const Entry* e : it->second)
            if (!in_place(*e)) return true;
    }
    return false;
}

void WeightStore::check_decode_errors() { decoder_->check_now(); }

void WeightStore::queue_decode_check(Stream& stream) {
    if (mode_ == WeightMode::Ecf8) decoder_->queue_error_check(stream);
}

void WeightStore::throw_if_decode_failed() { decoder_->throw_if_failed(); }

bool WeightStore::layer_has_host_tensors(int layer) const { return layers_.at(layer).dense_host; }

WeightStoreStats WeightStore::stats() const {
    WeightStoreStats s = sizes_;
    s.layers_decoded = layers_decoded_;
    s.bytes_decoded = bytes_decoded_;
    s.bytes_copied = bytes_copied_;
    s.decode_seconds = decode_ns_ * 1e-9;
    s.copy_seconds = copy_ns_ * 1e-9;
    return s;
}

void WeightStore::reset_counters() {
    layers_decoded_ = bytes_decoded_ = bytes_copied_ = 0;
    decode_ns_ = copy_ns_ = 0;
}

}  // namespace ecf8
