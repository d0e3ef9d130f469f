// WeightStore: one rank's weights kept compressed in their planned tier, handed out decoded through a ring
// of decode slots.
//
// At load, every layer tensor's ECF8 blob is copied out of the rank file into backend memory: "device" tier
// blobs into Device memory, "host" tier blobs into PinnedHost memory (the manifest's tier, decided by the
// memory plan). The tensors outside the layers (embedding, final norm, lm_head) are decoded once at load
// and stay decoded. Layer L's weights are decoded into slot L % kDecodeSlots just before layer L runs (its
// routed experts into the one expert area, which the memory plan also counts once, laid out by
// sharding/expert_area.h):
//   copy_layer(L)      host-tier non-expert blobs of L -> the slot's staging area (the copy engine's job)
//   decode_layer(L)    L's non-expert tensors -> the slot
//   decode_experts(L)  every local routed expert of L whose pick count, read where the decode runs, is not
//                      zero; host-tier experts are read where they lie (pinned memory the GPU reads in place),
//                      so the host never needs the picks
// The pipeline (runtime/pipeline.h) runs these on its copy and decode streams and reuses a slot only after
// the event recorded behind the slot's last consumer has completed. get() returns views into the slot that
// holds the tensor's layer, so it is valid from that layer's decode until the slot is reused.
//
// Routed experts the plan keeps decoded (memory.decoded_experts_gb, device tier only) are decoded once at load
// and used in place: they take no part in decode_experts and no room in the expert area.
//
// Two baselines from the same shards, both decoding every blob once at load and keeping the original bytes
// in the tiers: WeightMode::Raw uses them in place (device tier: no slots, nothing to fetch; host tier:
// copied to staging ahead of use, or for routed experts to the expert area when picked, as for ECF8): plain
// FP8 inference, the speed baseline. WeightMode::RawCopy
// copies them into the slots where ECF8 decodes: the ECF8 schedule without the decode, which isolates the
// decode's cost. Every mode hands the model identical bytes, so logits are bit-identical.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "codec/decoder.h"
#include "runtime/backend.h"
#include "runtime/model.h"
#include "sharding/expert_area.h"
#include "sharding/shard_io.h"

namespace ecf8 {

class ThreadPool;

enum class WeightMode { Ecf8, Raw, RawCopy };
const char* weight_mode_name(WeightMode mode);
WeightMode parse_weight_mode(const std::string& name);  // "ecf8" | "raw" | "raw-copy"; throws naming the choices
// The memory plan's format for a mode: ECF8 for ecf8, the checkpoint's own bytes for raw and raw-copy.
inline WeightFormat plan_format(WeightMode mode) {
    return mode == WeightMode::Ecf8 ? WeightFormat::Ecf8 : WeightFormat::Fp8;
}

struct WeightStoreStats {
    uint64_t device_bytes = 0;    // stored layer weights in the device tier (blobs; raw bytes in Raw mode and
                                  // for routed experts kept decoded)
    uint64_t host_bytes = 0;      // the same in the pinned host tier
    uint64_t resident_bytes = 0;  // decoded tensors outside the layers
    uint64_t slot_bytes = 0;      // all decode slots
    uint64_t staging_bytes = 0;   // all staging areas for host-tier non-expert blobs
    uint64_t raw_bytes = 0;       // what the rank's tensors are when decoded
    // Since load (or reset_counters): work done by copy_layer and decode_*. The routed experts' bytes are
    // not counted: which of them decode is decided on the device.
    uint64_t layers_decoded = 0;
    uint64_t bytes_decoded = 0, bytes_copied = 0;
    double decode_seconds = 0, copy_seconds = 0;
};

class WeightStore : public WeightSource {
public:
    // Loads rank `rank`'s file (checked against the manifest by ShardManifest::open_rank) into `backend`'s
    // memory. Every blob's stored checksum is verified and every blob is parsed; Raw mode and the resident
    // tensors also check the decoded bytes' checksum. pool (may be null) parallelizes the load-time decode.
    // Errors name the file and the tensor.
    // keep_decoded (ECF8 only; empty: none): per tensor of the rank, in manifest order, whether it is kept
    // decoded (ShardManifest::rank_plan's `decoded`): only device-tier routed experts may be. Such a tensor
    // holds its decoded bytes in the device tier and is used in place, as in Raw mode.
    // expert_area: how a layer's routed experts share the expert area (full or half, sharding/expert_area.h):
    // the memory plan's RankMemory::expert_area, as it counts it.
    static std::unique_ptr<WeightStore> load(const ShardManifest& manifest, int rank, Backend& backend, WeightMode mode,
                                             ThreadPool* pool, const std::vector<bool>& keep_decoded = {},
                                             ExpertArea expert_area = ExpertArea::Full);
    ~WeightStore() override;

    WeightView get(const std::string& name) const override;

    // The work of the copy and decode streams, done on (CPU) or enqueued onto (CUDA) `stream`.
    void copy_layer(int layer, Stream& stream);
    void decode_layer(int layer, Stream& stream);
    // This rank's routed experts [first, last) of a layer, counted from its first expert (local expert i is
    // expert first_expert() + i), each decoded only if pick_offsets[i + 1] > pick_offsets[i]: moe_dispatch's
    // offsets, in backend memory, read in stream order where the decode runs. Raw mode copies picked
    // host-tier experts to the expert area and uses device-tier ones in place.
    void decode_experts(int layer, int first, int last, const int32_t* pick_offsets, Stream& stream);
    // Whether decode_experts(layer, first, last, ...) has anything to do: false when every one of those experts
    // is used in place (kept decoded, or Raw mode's device tier), so the pipeline need not wait for it.
    bool experts_decode(int layer, int first, int last) const;
    int first_expert() const { return first_expert_; }
    // Half: the pipeline runs every step's experts in kExpertAreaGroups groups and decodes group g + 2 only
    // once group g's experts have run, since they share their place.
    ExpertArea expert_area() const { return expert_area_mode_; }
    int local_experts() const { return local_experts_; }
    // CUDA: waits for the device and throws ecf8::Error if a decode met a corrupt chunk (the CPU decoder
    // throws at once instead). Nothing to do on the CPU.
    void check_decode_errors();
    // The pipeline's check of every step, with no host stop of its own: queue_decode_check enqueues on `stream`
    // (behind the step's decodes) a copy of the GPU decoder's error flag to pinned host memory and the flag's
    // reset; once the host has synchronized with that work, throw_if_decode_failed throws ecf8::Error when a
    // decode of that step met a corrupt chunk. Both do nothing on the CPU, whose decoder throws at once.
    void queue_decode_check(Stream& stream);
    void throw_if_decode_failed();
    // Whether a layer has host-tier non-expert tensors, which copy_layer stages.
    bool layer_has_host_tensors(int layer) const;

    WeightMode mode() const { return mode_; }
    int num_layers() const { return static_cast<int>(layers_.size()); }
    WeightStoreStats stats() const;
    void reset_counters();

private:
    struct Entry {
        ManifestTensor meta;
        size_t index = 0;                   // in manifest order
        uint8_t* stored = nullptr;          // the blob (or raw bytes) in its tier; CUDA device tier: the device blob
        uint64_t stored_bytes = 0;          // bytes at `stored`
        uint64_t staging_bytes = 0;         // bytes in the staging area (host-tier non-expert tensors)
        uint64_t slot_offset = 0;           // within the slot's dense or expert area (layer tensors)
        uint64_t staging_offset = 0;        // within the slot's staging area
        const uint8_t* resident = nullptr;  // decoded, for tensors outside the layers
        std::optional<PreparedTensor> prepared;  // Ecf8 mode (host tier: rebased onto its staging area)
        bool kept_decoded = false;               // Ecf8 mode: a routed expert decoded at load, used in place
    };
    struct Layer {
        std::vector<Entry*> dense;                   // non-expert tensors
        std::map<int, std::vector<Entry*>> experts;  // routed expert -> its tensors
        bool dense_host = false;                     // any non-expert tensor in the host tier
    };

    WeightStore(Backend& backend, WeightMode mode, size_t tensors);
    // load()'s two passes over the rank file.
    std::vector<uint64_t> lay_out(const ShardManifest& manifest, int rank, const CompressedFile& file,
                                  const std::vector<bool>& keep_decoded);
    // Whether e is read where it is stored (no slot): Raw mode's tensors but host-tier experts, kept experts.
    bool in_place(const Entry& e) const;
    void fill(const ShardManifest& manifest, int rank, const CompressedFile& file,
              const std::vector<uint64_t>& tier_offset, ThreadPool* pool);
    uint8_t* slot_base(int layer, bool expert_area) const;
    uint8_t* staging_base(int layer) const;
    // The job that decodes (or copies) e into its slot, skipped on the device when `picks` says so.
    BlobJob job_for(const Entry& e, uint8_t* slot, const int32_t* picks);

    Backend& backend_;
    WeightMode mode_;
    std::map<std::string, Entry> tensors_;
    std::vector<Layer> layers_;
    Buffer device_tier_, host_tier_, resident_, slots_, staging_;
    uint64_t dense_area_ = 0, expert_area_ = 0;  // per slot; one expert area for all layers
    uint64_t dense_staging_area_ = 0;            // per slot
    int first_expert_ = 0, local_experts_ = 0;   // this rank's routed experts
    ExpertArea expert_area_mode_ = ExpertArea::Full;
    WeightStoreStats sizes_;
    std::atomic<uint64_t> layers_decoded_{0}, bytes_decoded_{0}, bytes_copied_{0};
    std::atomic<int64_t> decode_ns_{0}, copy_ns_{0};
    std::unique_ptr<BlobDecoder> decoder_;  // the backend's decoder: placed blobs, batched decode, error flag
};

}  // namespace ecf8
