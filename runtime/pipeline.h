// Pipeline: one forward step of the model with just-in-time weights, spread over four backend streams.
//
//   copy     host-tier blobs of layer L+1 -> staging               (only where the plan put some on the host)
//   decode   layer L+1 -> decode slot (L+1) % kDecodeSlots         (waits until the slot's last reader is done)
//   compute  layer L's stages (runtime/model.h)                    (waits for layer L's decode event)
//   comm     the all-reduce after attention and after the FFN, the logits' all-gather
//
// Routing stays on the device. The compute stream records an event after routing (which also groups the
// picks by this rank's experts, in backend memory); the decode stream then decodes the layer's routed
// experts, every local one in kExpertGroups groups (one in small steps; with a half expert area, always four, groups 2
// and 3 decoding into the places of groups 0 and 1 once those have run), each job reading its expert's pick count where
// it runs and skipping an expert nobody picked, while the compute stream runs the shared experts (a group whose experts
// are all used in place, kept decoded or raw, has no decode job and no wait). Host-tier experts are read where they lie
// (pinned memory), so no copy waits on the picks. The compute stream runs a group's experts (one grouped MLP call) as
// soon as that group is decoded. The host enqueues a whole step without waiting and synchronizes once, for the logits
// (or, with StepOutput::GreedyIds, the greedy token ids, picked where the logits are). On the CPU backend the streams
// are worker threads, so the same schedule runs here as on a GPU. The tracer draws each stream's work on its own lane,
// with span names "copy L3", "decode L3", "decode L3 experts", "compute L3 attention", "all-reduce L3 ffn" and so on.
#pragma once

#include <array>
#include <memory>
#include <vector>

#include "runtime/backend.h"
#include "runtime/model.h"
#include "runtime/weight_store.h"

namespace ecf8 {

// A layer's local routed experts are decoded and computed in this many groups (the last ones may be empty):
// group g's GEMMs run while group g + 1 decodes, so only the first group's decode waits on routing.
inline constexpr int kExpertGroups = kExpertAreaGroups;  // sharding/expert_area.h lays the groups out

// A step's expert groups: one when it picks at most as many (token, expert) pairs as this rank has experts
// (a decode step of a few tokens), kExpertGroups otherwise. A group's decode then handles a few picked
// experts, so its time is the decoder's latency (on an H200, 0.2 ms a launch on tiny: one warp decodes a
// chunk serially), not its bytes, and more groups would only queue those latencies one behind another
// where nothing is left to overlap them with. Both counts add each token's picks in expert order, so
// the logits do not depend on the count.
int step_expert_groups(int64_t n_tokens, int64_t topk, int local_experts);

class Pipeline {
public:
    // The model, store and backend must outlive the pipeline. Collectives go through the model's
    // communicator, from the comm stream (MPI must provide MPI_THREAD_SERIALIZED or more).
    Pipeline(Model& model, WeightStore& store, Backend& backend);
    ~Pipeline();

    // As Model::forward, with the weights decoded just in time. Returns the gathered logits.
    std::vector<float> forward(const std::vector<std::vector<int32_t>>& tokens, const std::vector<KvCache*>& caches,
                               bool all_positions = false);
    // The same step, bringing back what `output` asks for (StepOutput::GreedyIds: each sequence's greedy
    // token, computed where the logits are, and no logits).
    StepResult step(const std::vector<std::vector<int32_t>>& tokens, const std::vector<KvCache*>& caches,
                    StepOutput output, bool all_positions = false);

private:
    // Enqueues layer L's copy and decode into its slot, behind the slot's last reader.
    void fetch_layer(int layer);
    // After layer's routing: its routed experts' decodes, group by group as their places in the expert area
    // allow, around the shared experts (or the dense MLP), then each group's experts once it is decoded.
    void feed_forward(int layer, int groups, const std::shared_ptr<ForwardState>& state);
    // Runs fn on the comm stream between the compute stream's work before and after it.
    void on_comm(const std::string& label, std::function<void()> fn);

    Model& model_;
    WeightStore& store_;
    Backend& backend_;
    Stream &copy_, &decode_, &compute_, &comm_;
    struct SlotEvents {
        std::unique_ptr<Event> copied, decoded, routed, free;
        std::unique_ptr<Event> experts_decoded[kExpertGroups];
        std::unique_ptr<Event> experts_ran[kExpertGroups];  // half expert area: a group's place is free again
    };
    std::vector<SlotEvents> slots_;
    std::unique_ptr<Event> to_comm_, from_comm_, decode_checked_;
    // Per layer and expert group: whether the group has experts to decode (not all used in place: kept
    // decoded, or raw). Fixed at load, so worked out once here instead of every step.
    std::vector<std::array<bool, kExpertGroups>> group_decodes_;
};

}  // namespace ecf8
