// The memory plan: per rank, what the weights cost in FP8 and in ECF8, which of them stay on the GPU and
// which overflow to pinned host memory, the decode scratch, the activation workspace and the KV cache that
// is left. Works from config.json and the deployment YAML alone; a checkpoint, when present, only refines
// the compression ratio. docs/CONFIG.md explains each term.
//
// Terms, per rank:
//   weights      the rank's tensor parts (shard_plan.h): stored dtype bytes (FP8) or ECF8 bytes; in ECF8 the
//                model-level tensors (embedding, final norm, lm_head) count decoded, as the runtime holds them
//   tiers        weights stay on the GPU until the budget runs out; then routed experts, last layer first,
//                then the other layer weights, last layer first, move to pinned host memory (cpu_offload_gb)
//   decoded      ECF8 with memory.decoded_experts_gb: device-tier routed experts kept decoded (FP8 bytes in
//                the device tier instead of ECF8 ones), up to that cap and while min_kv_tokens of KV still fit,
//                taken one of every layer in turn; they never decode and leave the expert area. With auto,
//                no cap, while the KV pool keeps max_num_seqs sequences of max_model_len
//   scratch      ECF8: kDecodeSlots decoded copies of the largest layer's non-expert weights, plus the expert
//                area: a layer's local routed experts that decode just in time, each at a fixed place (the
//                GPU decides after routing which of them to decode), or with memory.expert_area: half two
//                places that four groups of them take in turn (sharding/expert_area.h). FP8: an area for a
//                layer's host-tier routed experts, laid out the same way.
//                Both formats: staging for host-tier weights, kDecodeSlots x a layer's non-expert part, as
//                runtime/weight_store.h lays it out (host-tier routed experts are read where they lie).
//   workspace    the buffers of one forward step of max_num_batched_tokens tokens (prefill chunks and decode
//                tokens) and max_num_seqs sequences, as the runtime allocates them (workspace_plan.h), plus
//                the linear's and wkv_b's dequantization scratch and the rope table; attention is computed
//                in tiles, so no score matrix
//   KV cache     the pool of whole blocks (block_size tokens) in the room left. MLA caches one latent
//                (kv_lora_rank) and one rope key (qk_rope_head_dim) per token and layer, shared by all
//                heads, so tensor parallelism does not split it: every rank holds it all
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "sharding/deploy_config.h"
#include "sharding/shard_plan.h"
#include "sharding/workspace_plan.h"

namespace ecf8 {

constexpr int kDecodeSlots = 2;  // ring of decoded layers: compute L while decoding L+1

// ECF8 bytes / stored bytes, per coded dtype. Defaults: ECF8 paper figures (DeepSeek-R1 FP8: 14.8% saved;
// BF16 exponent coding, DFloat11: about 11 bits of 16).
struct CompressionRatios {
    double fp8 = 0.852;
    double bf16 = 0.69;
    bool measured = false;
    uint64_t sampled_bytes = 0;  // when measured
    std::string source = "default (ECF8 paper: DeepSeek-R1 FP8 -14.8%, BF16 ~11 of 16 bits)";

    double ratio_of(DType dt) const;  // 1 for dtypes ECF8 stores raw
};

// Compresses evenly spaced FP8 and BF16 tensors of the checkpoint in `model_dir`, up to about
// max_sample_bytes in all, and returns the measured ratios. When the directory holds no safetensors
// files the defaults are returned unchanged.
CompressionRatios measure_ratios(const std::string& model_dir, uint64_t max_sample_bytes, int threads);

enum class WeightFormat { Fp8, Ecf8 };  // Fp8: the checkpoint's own bytes (the "raw" baseline)
const char* weight_format_name(WeightFormat f);

struct RankMemory {
    int rank = 0;
    uint64_t params = 0;        // parameters held (block scales excluded)
    uint64_t weight_bytes = 0;  // all weights in this format
    uint64_t device_weight_bytes = 0;
    uint64_t host_weight_bytes = 0;     // pinned host tier
    uint64_t host_tensors = 0;          // how many tensors are in the host tier
    std::string host_summary;           // which ones, in words: "routed experts of layers 41-60 (1920 tensors)"
    int64_t routed_experts = 0;         // (layer, routed expert) pairs held
    int64_t decoded_experts = 0;        // of them, kept decoded (ECF8, memory.decoded_experts_gb)
    uint64_t decoded_expert_bytes = 0;  // their decoded bytes (in device_weight_bytes)
    uint64_t scratch_bytes = 0;
    ExpertArea expert_area = ExpertArea::Full;  // how the expert area is laid out (memory.expert_area resolved)
    uint64_t workspace_bytes = 0;
    int64_t kv_blocks = 0;  // the KV pool: whole blocks of kv_cache.block_size tokens in the room left
    uint64_t kv_bytes = 0;  // the pool's bytes (0 when no room is left)
    int64_t kv_tokens = 0;  // kv_blocks * block_size
    int64_t max_batch = 0;  // sequences of max_model_len that fit at once: kv_blocks / blocks per sequence
    bool fits = false;      // weights fit (GPU + host budget) and kv_tokens >= min_kv_tokens
    std::string why_not;    // when !fits: what is short, in words
};

struct FormatPlan {
    WeightFormat format = WeightFormat::Ecf8;
    std::vector<RankMemory> ranks;
    bool fits = false;  // every rank fits
    uint64_t total_weight_bytes() const;
    int64_t min_kv_tokens() const;  // over ranks
    int64_t min_max_batch() const;
};

struct MemoryPlan {
    double gpu_budget_bytes = 0, host_budget_bytes = 0;
    uint64_t kv_bytes_per_token = 0;
    ParamCounts params;
    CompressionRatios ratios;
    FormatPlan fp8, ecf8;
    // Fewest GPUs (of this size and utilization, tp = ep = n, no host tier) that fit with min_kv_tokens;
    // 0 when none up to 1024 does.
    int min_gpus_fp8 = 0, min_gpus_ecf8 = 0;
};

// Bytes of one rank's part of a tensor in a format (ECF8: ratio applied to coded dtypes).
uint64_t planned_bytes(const ShardTensor& t, WeightFormat format, const CompressionRatios& ratios);

// KV cache bytes per token: num_hidden_layers x (kv_lora_rank + qk_rope_head_dim) x element bytes.
uint64_t kv_bytes_per_token(const ModelConfig& model, const KvCacheConfig& kv);

// A step's limits as the YAML's kv_cache section sets them (sharding/workspace_plan.h).
StepLimits step_limits(const KvCacheConfig& kv);
// Activation workspace of one rank, device part (see the terms above).
uint64_t workspace_bytes(const ModelConfig& model, const WorldConfig& world, const KvCacheConfig& kv,
                         GemmMode gemm = GemmMode::Fp32);

// Decides the tier of every tensor of plan.ranks[rank] given its bytes in `format` (bytes[i] for
// tensors[i]), which routed experts stay decoded, and fills in the rank's memory. tiers (optional) receives
// one Tier per tensor, decoded (optional) whether each is kept decoded. placed (optional) fixes the tiers
// instead: the memory of shards already placed, for example the original FP8 bytes in the tiers `ecf8
// shard` chose for ECF8. Used with planned bytes by `ecf8 plan`, with the real compressed sizes by `ecf8
// shard` (tiers) and by `ecf8 run` (the KV pool, decoded experts).
RankMemory plan_rank(const ShardPlan& plan, int rank, const std::vector<uint64_t>& bytes, WeightFormat format,
                     const DeployConfig& deploy, std::vector<Tier>* tiers = nullptr,
                     std::vector<bool>* decoded = nullptr, const std::vector<Tier>* placed = nullptr);

// The whole plan: both formats for every rank of the deployment, and the fewest-GPU search.
MemoryPlan plan_memory(const DeployConfig& deploy, const ModelConfig& model, const CompressionRatios& ratios);

}  // namespace ecf8
