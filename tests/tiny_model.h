// Helpers shared by the tests that need a model: the tiny synthetic checkpoint and quiet sharding.
#pragma once

#include <algorithm>
#include <functional>
#include <string>

#include "common/error.h"
#include "sharding/shard_io.h"
#include "sharding/synth_checkpoint.h"

namespace ecf8::test {

// The `tiny` preset (with `layers` decoder layers when > 0), quiet, on two threads (the bytes do not
// depend on the thread count).
inline SynthCheckpointOptions tiny_model_options(uint64_t seed, int layers = 0) {
    SynthCheckpointOptions o = synth_preset("tiny");
    if (layers > 0) o.model.num_hidden_layers = layers;
    o.seed = seed;
    o.progress = false;
    o.threads = 2;
    return o;
}

inline void write_tiny_model(const std::string& dir, uint64_t seed, int layers = 0) {
    write_synth_checkpoint(dir, tiny_model_options(seed, layers));
}

// A deployment of the tiny model under root/model into root/name: tensor and expert parallel over `world`
// ranks on one node, gpu_gb per rank (below 1 GB the plan may move weights to a 1 GB pinned host tier).
inline DeployConfig tiny_layout(const std::string& root, const std::string& name, const char* source, int world,
                                double gpu_gb, int64_t max_model_len, int64_t max_num_seqs) {
    DeployConfig d;
    d.source = source;
    d.model = root + "/model";
    d.output = root + "/" + name;
    d.parallel.tensor_parallel_size = d.parallel.expert_parallel_size = world;
    d.parallel.nodes = 1;
    d.parallel.gpus_per_node = world;
    d.memory.gpu_memory_gb = gpu_gb;
    d.memory.cpu_offload_gb = gpu_gb < 1 ? 1.0 : 0.0;
    d.kv_cache.max_model_len = max_model_len;
    d.kv_cache.max_num_seqs = max_num_seqs;
    d.kv_cache.max_num_batched_tokens = std::max(max_model_len, max_num_seqs);  // a small workspace
    return d;
}

inline ShardOptions quiet_shard_options() {
    ShardOptions so;
    so.threads = 2;
    so.progress = false;
    return so;
}

// Shards `layout(gpu_gb)` at the largest GPU budget, in 1 MiB steps from 40 MiB down, whose plan puts
// weights of every rank on the host tier: at that budget only a few routed experts move there, so experts
// lie on both tiers. Returns the budget in MiB, or 0 when none does (the last budget tried stays written).
inline int shard_largest_budget_with_host_tier(const std::function<DeployConfig(double)>& layout) {
    for (int mib = 40; mib >= 4; --mib) {
        const DeployConfig d = layout(mib / 1024.0);
        try {
            shard_checkpoint(d, quiet_shard_options());
        } catch (const Error&) {
            continue;  // the plan does not fit at all
        }
        const ShardManifest m = ShardManifest::load(d.output);
        if (std::all_of(m.ranks.begin(), m.ranks.end(), [](const ManifestRank& r) { return r.host_bytes > 0; }))
            return mib;
    }
    return 0;
}

}  // namespace ecf8::test
