// ShardPlan: which slice of which checkpoint tensor each rank holds, from the model description and the
// parallel layout. One function decides it (plan_shards); `ecf8 plan`, `ecf8 shard`, the shard reader and
// the runtime all use it, so they agree by construction.
//
// Split rules (world = tensor_parallel_size, see sharding/world_config.h):
//   column_parallel  rows (dim 0) in world equal parts, part = rank
//   row_parallel     columns (dim 1) in world equal parts, part = rank
//   vocab_parallel   rows (the vocabulary) in world equal parts
//   replicated       whole on every rank
//   routed_expert    on the ranks whose expert range holds it; split over moe_tp_size ranks like a dense MLP
//                    (gate/up by rows, down by columns), part = moe_tp_rank
//   block_scale      follows its weight: the same dimension, in 128-element blocks
// An FP8 weight's part must start and end on a 128-element block boundary (the last part may end at the
// dimension's end), so a block scale is never shared by two ranks; anything else is an error naming the
// tensor, the field and the sizes.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "sharding/deploy_config.h"
#include "sharding/model_tensors.h"
#include "sharding/world_config.h"

namespace ecf8 {

// Where a rank keeps a compressed weight: GPU memory, or pinned host memory it copies from when needed.
enum class Tier { Device, Host };
const char* tier_name(Tier tier);
Tier parse_tier(const std::string& name);  // throws naming the value

// One rank's part of one source tensor.
struct ShardTensor {
    const TensorSpec* spec = nullptr;  // the source tensor (owned by ShardPlan::tensors)
    int split_dim = -1;                // -1: the whole tensor; 0: rows; 1: columns
    int64_t begin = 0, end = 0;        // range along split_dim (whole tensor: 0 .. numel)
    int part = 0, parts = 1;           // this part's index among the parts of the tensor
    std::vector<int64_t> shape;        // the shape held by the rank
    Tier tier = Tier::Device;

    const std::string& name() const { return spec->name; }
    int64_t numel() const;
    uint64_t raw_bytes() const { return static_cast<uint64_t>(numel()) * dtype_size(spec->dtype); }
};

struct RankShard {
    int rank = 0;
    std::vector<ShardTensor> tensors;  // in checkpoint order (deepseek_v3_tensors)
    uint64_t raw_bytes() const;
};

// Move-only: ShardTensor::spec points into `tensors`, whose buffer a move keeps.
struct ShardPlan {
    ShardPlan() = default;
    ShardPlan(ShardPlan&&) = default;
    ShardPlan& operator=(ShardPlan&&) = default;
    ShardPlan(const ShardPlan&) = delete;
    ShardPlan& operator=(const ShardPlan&) = delete;

    ModelConfig model;
    WorldConfig world;                // rank 0's view; world.rank is meaningless for the plan as a whole
    std::vector<TensorSpec> tensors;  // the model's tensors (no MTP layers), each held by >= 1 rank
    std::vector<RankShard> ranks;

    // For a source tensor: every (rank, index into ranks[rank].tensors) that holds a part of it (empty for a
    // name the model does not have).
    const std::vector<std::pair<int, size_t>>& holders(const std::string& name) const;

private:
    friend ShardPlan plan_shards(const ModelConfig&, const ParallelConfig&);
    std::map<std::string, std::vector<std::pair<int, size_t>>> holders_;
};

// The world layout of a deployment (rank 0).
WorldConfig world_of(const ParallelConfig& parallel);

// Builds the plan. Throws ecf8::Error naming the tensor and field when the layout cannot split the model
// (a dimension not divisible by the parts, an FP8 part not on a 128-block boundary, too few experts).
ShardPlan plan_shards(const ModelConfig& model, const ParallelConfig& parallel);

// The file name of a rank's shard: "rank-00003-of-00008.safetensors".
std::string shard_file_name(int rank, int world_size);

}  // namespace ecf8
