// plan_shards: the split rules of sharding/shard_plan.h applied to every tensor of the model.
#include "sharding/shard_plan.h"

#include <cstdio>

#include "common/error.h"

namespace ecf8 {
namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The dimension a role splits, or -1 for a whole tensor. Routed experts split like their dense twins.
int split_dim_of(const TensorSpec& t) {
    switch (t.role) {
        case TensorRole::ColumnParallel:
        case TensorRole::VocabParallel:
            return 0;
        case TensorRole::RowParallel:
            return 1;
        case TensorRole::RoutedExpert:
            return ends_with(t.name, ".down_proj.weight") ? 1 : 0;
        case TensorRole::Replicated:
        case TensorRole::BlockScale:
            return -1;
    }
    return -1;
}

const char* dim_label(int dim) { return dim == 0 ? "rows (dim 0)" : "columns (dim 1)"; }

// The part [begin, end) of a dimension of `size` split in `parts`; errors name the tensor and the field.
void split_range(const TensorSpec& t, int dim, int part, int parts, int64_t block, const char* field, int64_t* begin,
                 int64_t* end) {
    const int64_t size = t.shape.at(dim);
    ECF8_CHECK(size % parts == 0, "tensor " << t.name << ": " << field << "=" << parts << " does not divide its "
                                            << size << " " << dim_label(dim) << "; choose a value that divides "
                                            << size);
    const int64_t len = size / parts;
    *begin = len * part;
    *end = *begin + len;
    if (block > 0 && parts > 1) {
        ECF8_CHECK(len % block == 0, "tensor " << t.name << ": " << field << "=" << parts << " splits its " << size
                                               << " " << dim_label(dim) << " into parts of " << len
                                               << ", which is not a multiple of the " << block
                                               << "-element FP8 scale block; each part must cover whole blocks");
    }
}

}  // namespace

const char* tier_name(Tier tier) { return tier == Tier::Device ? "device" : "host"; }

Tier parse_tier(const std::string& name) {
    if (name == "device") return Tier::Device;
    if (name == "host") return Tier::Host;
    ECF8_FAIL("unknown tier '" << name << "' (allowed: device, host)");
}

int64_t ShardTensor::numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
}

uint64_t RankShard::raw_bytes() const {
    uint64_t n = 0;
    for (const ShardTensor& t : tensors) n += t.raw_bytes();
    return n;
}

const std::vector<std::pair<int, size_t>>& ShardPlan::holders(const std::string& name) const {
    static const std::vector<std::pair<int, size_t>> kNone;
    auto it = holders_.find(name);
    return it == holders_.end() ? kNone : it->second;
}

WorldConfig world_of(const ParallelConfig& p) {
    return WorldConfig::make(0, p.world_size(), p.tensor_parallel_size, p.expert_parallel_size,
                             p.nodes > 0 ? p.nodes : 1, p.node_size());
}

std::string shard_file_name(int rank, int world_size) {
    char buf[64];
    std::snprintf(buf, sizeof(buf), "rank-%05d-of-%05d.safetensors", rank, world_size);
    return buf;
}

ShardPlan plan_shards(const ModelConfig& model, const ParallelConfig& parallel) {
    ShardPlan plan;
    plan.model = model;
    plan.world = world_of(parallel);
    const int world = plan.world.world_size;
    ECF8_CHECK(model.num_attention_heads % world == 0,
               "tensor_parallel_size=" << world << " must divide num_attention_heads=" << model.num_attention_heads
                                       << " of " << model.source << " (attention is split by heads)");
    ECF8_CHECK(model.n_routed_experts % plan.world.ep_size == 0,
               "expert_parallel_size=" << plan.world.ep_size << " must divide n_routed_experts="
                                       << model.n_routed_experts << " of " << model.source);
    plan.tensors = deepseek_v3_tensors(model, /*include_mtp=*/false);
    plan.ranks.resize(world);

    std::map<std::string, const TensorSpec*> by_name;
    for (const TensorSpec& t : plan.tensors) by_name[t.name] = &t;
    const int64_t block = model.quantized ? model.quantization.weight_block_size.at(0) : 0;
    const int64_t block_cols = model.quantized ? model.quantization.weight_block_size.at(1) : 0;

    for (int r = 0; r < world; ++r) {
        const WorldConfig w = WorldConfig::make(r, world, plan.world.tp_size, plan.world.ep_size, plan.world.nodes,
                                                plan.world.gpus_per_node);
        const ExpertRange experts = w.experts_for_rank(static_cast<int>(model.n_routed_experts));
        RankShard& shard = plan.ranks[r];
        shard.rank = r;
        for (const TensorSpec& t : plan.tensors) {
            // A block scale takes the split of its weight, in blocks.
            const TensorSpec& owner = t.role == TensorRole::BlockScale ? *by_name.at(t.scale_of) : t;
            if (owner.role == TensorRole::RoutedExpert && !experts.contains(owner.expert)) continue;
            ShardTensor st;
            st.spec = &t;
            st.shape = t.shape;
            st.split_dim = split_dim_of(owner);
            int parts = 1, part = 0;
            const char* field = "tensor_parallel_size";
            if (owner.role == TensorRole::RoutedExpert) {
                parts = w.moe_tp_size();
                part = w.moe_tp_rank();
                field = "tensor_parallel_size / expert_parallel_size";
            } else if (st.split_dim >= 0) {
                parts = world;
                part = r;
            }
            if (st.split_dim < 0 || parts == 1) {
                st.split_dim = -1;
                st.begin = 0;
                st.end = t.numel();
            } else if (t.role == TensorRole::BlockScale) {
                int64_t wb = 0, we = 0;
                const int64_t bs = st.split_dim == 0 ? block : block_cols;
                split_range(owner, st.split_dim, part, parts, bs, field, &wb, &we);
                st.begin = wb / bs;
                st.end = (we + bs - 1) / bs;
                st.shape[st.split_dim] = st.end - st.begin;
                st.part = part;
                st.parts = parts;
            } else {
                const bool fp8 = t.dtype == DType::F8_E4M3 && model.quantized;
                const int64_t bs = fp8 ? (st.split_dim == 0 ? block : block_cols) : 0;
                split_range(t, st.split_dim, part, parts, bs, field, &st.begin, &st.end);
                st.shape[st.split_dim] = st.end - st.begin;
                st.part = part;
                st.parts = parts;
            }
            plan.holders_[t.name].push_back({r, shard.tensors.size()});
            shard.tensors.push_back(std::move(st));
        }
    }
    return plan;
}

}  // namespace ecf8
