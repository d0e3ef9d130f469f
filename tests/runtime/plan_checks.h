// The plan is what the runtime allocates (issue "One engine"): the check that test_pipeline (tiny) and
// test_plan_small (small's dimensions) run for every layout and weight mode they load.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "runtime/cpu_backend.h"
#include "runtime/mpi_communicator.h"
#include "runtime/pipeline.h"
#include "sharding/shard_io.h"

namespace ecf8::test {

inline uint64_t tag_bytes(const std::map<std::string, size_t>& live, const char* tag) {
    auto it = live.find(tag);
    return it == live.end() ? uint64_t{0} : uint64_t{it->second};
}

// Loads this rank's shard of m in `mode` on a CPU backend and checks, tag by tag, the backend's live bytes
// against m.rank_plan (the plan `ecf8 plan` prints and `ecf8 run` sizes the KV pool with):
//   - weights: "weights" + "weights_resident" (device tier, routed experts kept decoded included) and
//     "weights_host_tier" (pinned host) equal the plan's device and host weights, and "decode_slots" + "staging" its
//     scratch, up to the 256-byte alignment of each tensor in the runtime's layout (the slack);
//   - workspace: "activations", "dequant_scratch", "gemm_scratch" and "rope_table" equal the plan's
//     workspace exactly; "kv_cache" equals the plan's pool on the tightest rank;
//   - steps (a prefill of `prompt`, then a decode step) allocate nothing more.
// raw places the checkpoint's bytes in the manifest's tiers, as the plan of these shards does for FP8
// (ShardManifest::rank_plan): callers pass layouts where that leaves room for a sequence.
inline void expect_plan_equals_allocations(const ShardManifest& m, const DeployConfig& d, int rank, WeightMode mode,
                                           const std::vector<int32_t>& prompt) {
    SCOPED_TRACE(std::string("--weights ") + weight_mode_name(mode));
    std::vector<bool> keep_decoded;  // memory.decoded_experts_gb
    const RankMemory plan = m.rank_plan(d, rank, plan_format(mode), &keep_decoded);
    CpuBackend backend;
    auto store = WeightStore::load(m, rank, backend, mode, nullptr, keep_decoded, plan.expert_area);
    const auto device = backend.live_bytes_by_tag(MemoryKind::Device);
    const auto host = backend.live_bytes_by_tag(MemoryKind::PinnedHost);
    const double slack = 256.0 * static_cast<double>(m.ranks[rank].tensors.size());  // alignment, per tensor
    EXPECT_NEAR(double(tag_bytes(device, "weights") + tag_bytes(device, "weights_resident")),
                double(plan.device_weight_bytes), slack);
    EXPECT_NEAR(double(tag_bytes(host, "weights_host_tier")), double(plan.host_weight_bytes), slack);
    EXPECT_NEAR(double(tag_bytes(device, "decode_slots") + tag_bytes(device, "staging")), double(plan.scratch_bytes),
                slack);

    auto comm = MpiCommunicator::world();
    const ModelOptions options = ModelOptions::from_plan(d, m, plan_format(mode));
    Model model(m.model, m.world(rank), comm.get(), options, backend);
    const auto after = backend.live_bytes_by_tag(MemoryKind::Device);
    EXPECT_EQ(tag_bytes(after, "activations") + tag_bytes(after, "dequant_scratch") + tag_bytes(after, "gemm_scratch") +
                  tag_bytes(after, "rope_table"),
              plan.workspace_bytes);
    uint64_t pool = UINT64_MAX;
    for (int r = 0; r < m.world_size(); ++r) pool = std::min(pool, m.rank_plan(d, r, plan_format(mode)).kv_bytes);
    EXPECT_EQ(tag_bytes(after, "kv_cache"), pool);
    EXPECT_LE(pool, plan.kv_bytes);
    EXPECT_EQ(uint64_t(options.kv.blocks) * kv_block_bytes(m.model, options.kv), pool);
    // One sequence: the tightest layouts' pool holds a single block.
    Pipeline pipeline(model, *store, backend);
    KvCache cache = model.new_cache();
    pipeline.forward({prompt}, {&cache});
    pipeline.forward({{1}}, {&cache});
    EXPECT_EQ(backend.live_bytes_by_tag(MemoryKind::Device), after);
}

}  // namespace ecf8::test
