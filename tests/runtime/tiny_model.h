// Helpers shared by the runtime tests: the tiny synthetic checkpoint and quiet single-threaded sharding.
#pragma once

#include <string>

#include "sharding/shard_io.h"
#include "sharding/synth_checkpoint.h"

namespace ecf8::test {

// Writes the `tiny` preset (with `layers` decoder layers when > 0) to dir, quietly, on one thread.
inline void write_tiny_model(const std::string& dir, uint64_t seed, int layers = 0) {
    SynthCheckpointOptions o = synth_preset("tiny");
    if (layers > 0) o.model.num_hidden_layers = layers;
    o.seed = seed;
    o.progress = false;
    o.threads = 1;
    write_synth_checkpoint(dir, o);
}

inline ShardOptions quiet_shard_options() {
    ShardOptions so;
    so.threads = 1;
    so.progress = false;
    return so;
}

}  // namespace ecf8::test
