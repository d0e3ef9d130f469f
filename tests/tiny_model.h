// Helpers shared by the tests that need a model: the tiny synthetic checkpoint and quiet sharding.
#pragma once

#include <string>

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

inline ShardOptions quiet_shard_options() {
    ShardOptions so;
    so.threads = 2;
    so.progress = false;
    return so;
}

}  // namespace ecf8::test
