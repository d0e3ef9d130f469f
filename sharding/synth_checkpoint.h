// Synthetic Hugging Face checkpoints with DeepSeek-V3's exact layout: config.json, sharded
// model-0000i-of-0000n.safetensors files and model.safetensors.index.json, with the real tensor names,
// dtypes and shapes (sharding/model_tensors.h). Linear weights are F8_E4M3 with F32 128x128
// weight_scale_inv blocks, drawn heavy-tailed so that their exponent entropy lands where real checkpoints
// sit (2.5-3 bits). Output is deterministic for a seed, whatever the thread count.
#pragma once

#include <cstdint>
#include <string>

#include "sharding/model_config.h"
#include "sharding/synth_weights.h"

namespace ecf8 {

struct SynthCheckpointOptions {
    ModelConfig model;                     // architecture to write (validated)
    bool include_mtp = true;               // write the num_nextn_predict_layers MTP layers, as HF does
    uint64_t seed = 0;                     // every tensor's draws derive from (seed, tensor name)
    uint64_t max_file_bytes = 4ull << 30;  // a new safetensors file starts when this would be exceeded
    double weight_std = 0.02;              // std of the unquantized linear weights before FP8 quantization
    double student_dof = 4.0;              // tail heaviness of the draws
    int threads = 0;                       // 0: every core
    bool progress = true;                  // progress bar on a terminal

    void validate() const;
};

// The named presets: "tiny" (a few MB; the embedded default model, splits on 128-row blocks for
// tensor_parallel_size 1, 2, 4 and 8) and "small" (a few GB; for streaming benchmarks).
// Throws ecf8::Error listing the presets for any other name.
SynthCheckpointOptions synth_preset(const std::string& name);

// Reads a YAML file of overrides: `base: tiny|small` (default tiny), then optional `config:` (config.json
// fields overriding the base model), `seed`, `max_file_mb`, `weight_std`, `student_dof`, `include_mtp`.
// Unknown keys are errors naming the key.
SynthCheckpointOptions synth_options_from_yaml(const std::string& yaml_path);

struct SynthCheckpointResult {
    uint64_t tensors = 0;
    uint64_t files = 0;
    uint64_t bytes = 0;  // sum of tensor bytes (the index's metadata.total_size)
};

// Writes the checkpoint into `dir` (created if missing). Files appear atomically (tmp + rename); the
// index and config.json are written last, so an interrupted run never looks complete.
SynthCheckpointResult write_synth_checkpoint(const std::string& dir, const SynthCheckpointOptions& options);

}  // namespace ecf8
