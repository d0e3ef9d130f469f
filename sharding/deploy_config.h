// DeployConfig: the deployment YAML read by `ecf8 plan`, `ecf8 shard` and `ecf8 run`: where the model is,
// how it is split over ranks, how much memory each GPU gives, codec options and the KV-cache target.
// Field names follow vLLM where one exists (tensor_parallel_size, gpu_memory_utilization, cpu_offload_gb,
// max_model_len, max_num_seqs). docs/CONFIG.md documents every field.
//
// Example:
//   model: out/tiny/model          # HF checkpoint directory (config.json [+ *.safetensors])
//   output: out/tiny/shards        # where `ecf8 shard` writes manifest.json and the rank files
//   parallel:
//     tensor_parallel_size: 2
//     expert_parallel_size: 2
//     nodes: 1
//     gpus_per_node: 2
//   memory:
//     gpu_memory_gb: 80
//     gpu_memory_utilization: 0.90
//     cpu_offload_gb: 0
//     decoded_experts_gb: 0
//   codec:
//     granularity: tensor
//   kv_cache:
//     max_model_len: 4096
//     max_num_seqs: 16
//     min_kv_tokens: 4096
//     dtype: bf16
//     block_size: 64
//     max_num_batched_tokens: 2048
#pragma once

#include <cstdint>
#include <string>

#include "sharding/expert_area.h"

namespace ecf8 {

struct ParallelConfig {
    int tensor_parallel_size = 1;
    int expert_parallel_size = 1;  // routed experts split over this many ranks; 1 = every expert TP-split
    int nodes = 1;
    int gpus_per_node = 0;  // 0: tensor_parallel_size / nodes

    int world_size() const { return tensor_parallel_size; }
    // gpus_per_node, or its default tensor_parallel_size / nodes when 0.
    int node_size() const { return gpus_per_node > 0 ? gpus_per_node : tensor_parallel_size / (nodes > 0 ? nodes : 1); }
};

struct MemoryConfig {
    double gpu_memory_gb = 80.0;           // GiB of one GPU (the whole device)
    double gpu_memory_utilization = 0.90;  // fraction of gpu_memory_gb that ecf8 may use, in (0, 1]
    double cpu_offload_gb = 0.0;           // GiB of pinned host memory per rank for weights that overflow
    // GiB per rank of routed experts kept decoded (ECF8): they hold their FP8 bytes instead of their ECF8
    // bytes and skip the just-in-time decoder, in memory the KV pool would otherwise get. 0 = none.
    double decoded_experts_gb = 0.0;
    // decoded_experts_gb: auto. No GiB cap: experts are kept decoded in the memory the KV pool cannot use,
    // the room beyond max_num_seqs sequences of max_model_len (the most the scheduler ever runs at once).
    bool decoded_experts_auto = false;
    // How a layer's routed experts share the expert area they decode into (sharding/expert_area.h): full
    // (every expert its own place), half (two places taken in turn by four groups: about half the decode
    // scratch for routed experts, more KV, every step in four expert groups) or auto (half where the KV pool
    // is smaller than the scheduler can use, resolved per rank by the plan).
    ExpertArea expert_area = ExpertArea::Auto;
};

struct CodecConfig {
    std::string granularity = "tensor";  // "tensor" or "group:N" (see codec/encoder.h parse_granularity)
    int threads = 0;                     // encoder threads for `ecf8 shard`; 0 = every core
};

struct KvCacheConfig {
    int64_t max_model_len = 4096;  // context length of one sequence (prompt + generated tokens)
    int64_t max_num_seqs = 16;     // sequences decoded together (the batch)
    int64_t min_kv_tokens = 0;     // KV tokens per rank a plan needs to count as fitting; 0 = max_model_len
    std::string dtype = "bf16";    // element type of the latent cache: "bf16" or "f32" ("fp32" reads as "f32")
    int64_t block_size = 64;       // tokens per KV block (the pool's page)
    // Tokens of one forward step, prefill chunks and decode tokens together (vLLM's name); a prompt longer
    // than this is prefilled in chunks. The plan sizes the activation workspace for it.
    int64_t max_num_batched_tokens = 2048;

    int64_t min_tokens() const { return min_kv_tokens > 0 ? min_kv_tokens : max_model_len; }
    int kv_elem_bytes() const { return dtype == "f32" ? 4 : 2; }
};

// How the GPU multiplies FP8 weights: FP32 GEMMs on weights dequantized into the workspace's "gemm_scratch"
// (fp32), or cuBLASLt's block-scaled FP8 GEMM on Hopper, as DeepSeek-V3 serves (fp8), whose activations,
// workspace and scratch (kernels/core/fp8_gemm_scratch.h) then live in the same planned buffer.
enum class GemmMode { Fp32, Fp8 };

// "fp32" or "fp8"; throws naming `what` (a YAML key or a flag) for anything else.
GemmMode parse_gemm_mode(const std::string& name, const std::string& what);
const char* gemm_mode_name(GemmMode m);

struct ComputeConfig {
    GemmMode gemm = GemmMode::Fp32;  // compute.gemm: fp32 | fp8; `ecf8 run|plan --gemm` override it
};

struct DeployConfig {
    std::string source = "<defaults>";  // the YAML file (or label); prefixes every error
    std::string model;                  // HF checkpoint directory; must hold config.json
    std::string output;                 // shard output directory
    ParallelConfig parallel;
    MemoryConfig memory;
    CodecConfig codec;
    KvCacheConfig kv_cache;
    ComputeConfig compute;

    int world_size() const { return parallel.world_size(); }
    int gpus_per_node() const { return parallel.node_size(); }
    double gpu_budget_bytes() const;              // gpu_memory_gb * utilization, in bytes
    double host_budget_bytes() const;             // cpu_offload_gb in bytes
    double decoded_experts_budget_bytes() const;  // decoded_experts_gb in bytes; infinite with auto
    bool keeps_decoded_experts() const { return memory.decoded_experts_auto || memory.decoded_experts_gb > 0; }
    std::string decoded_experts_text() const;  // "auto" or "G GiB"
    std::string config_json_path() const { return model + "/config.json"; }

    // Throws ecf8::Error naming the source and the field ("parallel.tensor_parallel_size") with what is
    // allowed. Does not touch the file system.
    void validate() const;

    // Parses YAML text. Unknown keys (at any level), wrong types and invalid values are errors that name
    // the key path and list the allowed keys or values. The result is validated.
    static DeployConfig parse(const std::string& yaml_text, const std::string& source);
    static DeployConfig load(const std::string& yaml_path);
};

}  // namespace ecf8
