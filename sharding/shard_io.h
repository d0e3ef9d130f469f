// Per-rank ECF8 shards: the streaming writer behind `ecf8 shard`, the manifest, and the reader behind
// `ecf8 verify-shards` / `ecf8 unshard` (and the runtime's loader).
//
// A shard directory holds:
//   manifest.json                     world layout, codec options, every rank's tensors with their part
//                                     (split dim and range), tier, sizes and checksums
//   config.json                       the model's config.json, copied
//   rank-RRRRR-of-WWWWW.safetensors   one per rank: an ECF8 container (codec/container.h) whose tensors
//                                     carry the source names and the part's shape; every tensor is a blob
//                                     (F32 scales as raw-mode blobs), so the data stays 16-byte aligned
// The writer streams: each rank file's header space is reserved up front, blobs are appended as they are
// encoded, and the header is written last. Files are written under a ".tmp" name; only when every rank file
// is complete are they renamed, and the manifest is written last of all, so an interrupted or failed run
// never leaves a directory that looks complete.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "codec/container.h"
#include "codec/encoder.h"
#include "sharding/deploy_config.h"
#include "sharding/memory_plan.h"
#include "sharding/shard_plan.h"

namespace ecf8 {

constexpr const char* kManifestName = "manifest.json";
constexpr int kManifestVersion = 1;

// ---------------------------------------------------------------------------------------------------
// Manifest

struct ManifestTensor {
    std::string name;  // the source tensor name (also the name in the rank file)
    DType dtype = DType::U8;
    std::vector<int64_t> shape;         // the part held by the rank
    std::vector<int64_t> source_shape;  // the whole tensor
    TensorRole role = TensorRole::Replicated;
    int layer = -1, expert = -1;
    int split_dim = -1;
    int64_t begin = 0, end = 0;
    int part = 0, parts = 1;
    Tier tier = Tier::Device;
    uint64_t raw_bytes = 0, stored_bytes = 0;
    uint64_t xxh64 = 0;  // of the part's original bytes
};

struct ManifestRank {
    int rank = 0;
    std::string file;  // relative to the shard directory
    uint64_t file_bytes = 0, raw_bytes = 0, stored_bytes = 0, device_bytes = 0, host_bytes = 0;
    std::vector<ManifestTensor> tensors;
};

struct ShardManifest {
    std::string dir;  // where it was loaded from
    ParallelConfig parallel;
    std::string granularity = "tensor";
    std::string source_model;  // the checkpoint directory it was made from
    ModelConfig model;         // from dir/config.json
    ShardPlan plan;            // what the layout implies; load() checks that ranks match it
    std::vector<ManifestRank> ranks;

    int world_size() const { return parallel.world_size(); }
    WorldConfig world(int rank) const;

    // Opens rank `rank`'s file and checks that it holds exactly the manifest's tensors (names, dtypes, shapes,
    // checksums). Errors name the directory, the rank and the file or tensor.
    CompressedFile open_rank(int rank) const;

    // Throws unless deploy.parallel describes this layout (tensor_parallel_size, expert_parallel_size,
    // nodes, gpus_per_node, 0 counting as derived): the shards, not the YAML, decide how the model is split.
    // The error names the YAML, the field, both values and the manifest.
    void check_matches(const DeployConfig& deploy) const;
    // The memory plan of rank `rank` with these shards' real sizes (stored bytes for ECF8, the original bytes
    // for FP8), in the tiers the shards hold them, and the deployment's budgets: what the runtime allocates,
    // KV pool included. --weights raw keeps the original bytes in the tiers chosen for ECF8, so its pool is
    // what those bytes leave there (it needs no decode slots), and may be none. decoded (optional) receives,
    // per tensor of the rank, whether the plan keeps it decoded (memory.decoded_experts_gb).
    RankMemory rank_plan(const DeployConfig& deploy, int rank, WeightFormat format,
                         std::vector<bool>* decoded = nullptr) const;
    // Where the plan for `deploy` puts rank `rank`'s tensors on other tiers than `ecf8 shard` did (it decided
    // them with the same plan, the real compressed sizes and the YAML of then): "" when nowhere, else the
    // first such tensor and how many differ. A difference means the YAML's memory or kv_cache section (or a
    // flag that changes the workspace) is not what the shards were placed with.
    std::string tier_difference(const DeployConfig& deploy, int rank) const;

    // Reads and validates dir/manifest.json against dir/config.json and plan_shards(): every rank, file and
    // tensor part must be what the plan says. Errors name the file, the rank and the tensor.
    static ShardManifest load(const std::string& dir);
};

// ---------------------------------------------------------------------------------------------------
// Writer

struct ShardOptions {
    EncodeOptions encode;  // from the YAML's codec section
    int threads = 0;       // 0: every core
    bool progress = true;
};

struct ShardResult {
    uint64_t tensors = 0;       // source tensors sharded
    uint64_t source_bytes = 0;  // their bytes in the checkpoint
    uint64_t raw_bytes = 0;     // bytes of all parts, replicas counted on every rank
    uint64_t stored_bytes = 0;  // bytes of all rank files' tensors
    uint64_t skipped = 0;       // checkpoint tensors the runtime does not use (MTP layers)
    double seconds = 0;
};

// Shards deploy.model into deploy.output. Checks first that the checkpoint holds every tensor of the plan
// with the right dtype and shape (errors name the tensor and the file).
ShardResult shard_checkpoint(const DeployConfig& deploy, const ShardOptions& options);

// ---------------------------------------------------------------------------------------------------
// Reader

// Decodes every rank's tensors, reassembles each source tensor and compares it byte for byte with the
// checkpoint in model_dir. Replicas on different ranks must also agree. Returns the problems (empty: all
// identical); each names the tensor (and rank).
std::vector<std::string> verify_shards(const std::string& shard_dir, const std::string& model_dir, int threads,
                                       bool progress);

// Writes out_dir/model.safetensors (every source tensor reassembled to its original bytes) and
// out_dir/config.json.
void unshard(const std::string& shard_dir, const std::string& out_dir, int threads, bool progress);

}  // namespace ecf8
