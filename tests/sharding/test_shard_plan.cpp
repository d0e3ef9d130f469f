// The shard plan (who holds which part of which tensor) and the memory plan on DeepSeek-V3's real config:
// parameter totals, per-rank bytes that add up, split ranges and block alignment, tiers and the 8xH100
// headline.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <map>
#include <set>

#include "common/error.h"
#include "kernels/core/fp8_gemm_scratch.h"
#include "sharding/memory_plan.h"
#include "sharding/shard_plan.h"
#include "sharding/synth_checkpoint.h"
#include "tests/test_util.h"

namespace ecf8 {
namespace {

using test::error_of;

const std::string kSourceDir = ECF8_SOURCE_DIR;

ModelConfig dsv3() { return ModelConfig::load(kSourceDir + "/configs/models/deepseek-v3/config.json"); }

DeployConfig deploy_of(const std::string& yaml) { return DeployConfig::load(kSourceDir + "/configs/" + yaml); }

ParallelConfig layout(int tp, int ep) {
    ParallelConfig p;
    p.tensor_parallel_size = tp;
    p.expert_parallel_size = ep;
    p.nodes = 1;
    p.gpus_per_node = tp;
    return p;
}

// Every element of every tensor is held exactly once by the parts of a split tensor, and whole by every
// rank for a replicated one; parts of one tensor tile it without overlap.
void expect_parts_tile_tensors(const ShardPlan& plan) {
    const int world = plan.world.world_size;
    for (const TensorSpec& t : plan.tensors) {
        const auto holders = plan.holders(t.name);
        ASSERT_FALSE(holders.empty()) << t.name;
        const ShardTensor& first = plan.ranks[holders[0].first].tensors[holders[0].second];
        if (first.split_dim < 0) {
            EXPECT_EQ(holders.size(), t.expert >= 0 ? size_t{1} : size_t(world)) << t.name;
            for (const auto& [r, i] : holders) EXPECT_EQ(plan.ranks[r].tensors[i].shape, t.shape) << t.name;
            continue;
        }
        std::vector<std::pair<int64_t, int64_t>> ranges;
        uint64_t numel = 0;
        for (const auto& [r, i] : holders) {
            const ShardTensor& p = plan.ranks[r].tensors[i];
            EXPECT_EQ(p.split_dim, first.split_dim) << t.name;
            ranges.push_back({p.begin, p.end});
            numel += static_cast<uint64_t>(p.numel());
        }
        std::sort(ranges.begin(), ranges.end());
        EXPECT_EQ(ranges.front().first, 0) << t.name;
        EXPECT_EQ(ranges.back().second, t.shape[first.split_dim]) << t.name;
        for (size_t k = 1; k < ranges.size(); ++k) EXPECT_EQ(ranges[k].first, ranges[k - 1].second) << t.name;
        EXPECT_EQ(numel, static_cast<uint64_t>(t.numel())) << t.name;
    }
}

TEST(ShardPlan, DeepSeekV3PartsTileEveryTensor) {
    const ModelConfig m = dsv3();
    for (auto [tp, ep] : std::vector<std::pair<int, int>>{{1, 1}, {8, 1}, {8, 8}, {16, 16}, {16, 4}}) {
        SCOPED_TRACE("tp " + std::to_string(tp) + " ep " + std::to_string(ep));
        const ShardPlan plan = plan_shards(m, layout(tp, ep));
        ASSERT_EQ(plan.ranks.size(), size_t(tp));
        expect_parts_tile_tensors(plan);
    }
}

TEST(ShardPlan, SplitRangesFollowRolesAndScaleBlocks) {
    const ShardPlan plan = plan_shards(dsv3(), layout(8, 2));  // moe_tp 4: each expert split over 4 ranks
    const RankShard& r5 = plan.ranks[5];                       // ep_rank 1, moe_tp_rank 2
    std::map<std::string, const ShardTensor*> by_name;
    for (const ShardTensor& t : r5.tensors) by_name[t.name()] = &t;

    const ShardTensor* qb = by_name.at("model.layers.0.self_attn.q_b_proj.weight");  // column parallel
    EXPECT_EQ(qb->split_dim, 0);
    EXPECT_EQ(qb->begin, 5 * 3072);
    EXPECT_EQ(qb->shape, (std::vector<int64_t>{3072, 1536}));
    const ShardTensor* qbs = by_name.at("model.layers.0.self_attn.q_b_proj.weight_scale_inv");
    EXPECT_EQ(qbs->split_dim, 0);
    EXPECT_EQ(qbs->begin, 5 * 24);
    EXPECT_EQ(qbs->shape, (std::vector<int64_t>{24, 12}));
    const ShardTensor* o = by_name.at("model.layers.0.self_attn.o_proj.weight");  // row parallel
    EXPECT_EQ(o->split_dim, 1);
    EXPECT_EQ(o->shape, (std::vector<int64_t>{7168, 2048}));
    EXPECT_EQ(by_name.at("model.layers.0.self_attn.o_proj.weight_scale_inv")->shape, (std::vector<int64_t>{56, 16}));
    EXPECT_EQ(by_name.at("model.embed_tokens.weight")->shape, (std::vector<int64_t>{16160, 7168}));
    EXPECT_EQ(by_name.at("model.layers.0.self_attn.q_a_proj.weight")->split_dim, -1);  // replicated

    // Experts 128..255 (ep_rank 1); the rank holds part 2 of 4 of each.
    EXPECT_EQ(by_name.count("model.layers.3.mlp.experts.127.up_proj.weight"), 0u);
    const ShardTensor* up = by_name.at("model.layers.3.mlp.experts.128.up_proj.weight");
    EXPECT_EQ(up->split_dim, 0);
    EXPECT_EQ(up->begin, 2 * 512);
    EXPECT_EQ(up->part, 2);
    EXPECT_EQ(up->parts, 4);
    const ShardTensor* down = by_name.at("model.layers.3.mlp.experts.255.down_proj.weight");
    EXPECT_EQ(down->split_dim, 1);
    EXPECT_EQ(down->shape, (std::vector<int64_t>{7168, 512}));
    EXPECT_EQ(by_name.at("model.layers.3.mlp.experts.255.down_proj.weight_scale_inv")->shape,
              (std::vector<int64_t>{56, 4}));
}

TEST(ShardPlan, WholeExpertsWhenEpEqualsTp) {
    const ShardPlan plan = plan_shards(dsv3(), layout(8, 8));
    std::set<int> experts;
    for (const ShardTensor& t : plan.ranks[3].tensors) {
        if (t.spec->expert < 0) continue;
        EXPECT_EQ(t.split_dim, -1) << t.name();
        experts.insert(t.spec->expert);
    }
    EXPECT_EQ(experts.size(), 32u);
    EXPECT_EQ(*experts.begin(), 96);
    EXPECT_EQ(*experts.rbegin(), 127);
}

TEST(ShardPlan, BadLayoutsNameTheTensorAndField) {
    const ModelConfig m = dsv3();
    // 18432 / 32 = 576 rows: not whole 128-row blocks.
    std::string e = error_of([&] { plan_shards(m, layout(32, 32)); });
    EXPECT_NE(e.find("model.layers.0.mlp.gate_proj.weight"), std::string::npos) << e;
    EXPECT_NE(e.find("tensor_parallel_size=32"), std::string::npos) << e;
    EXPECT_NE(e.find("128-element FP8 scale block"), std::string::npos) << e;
    e = error_of([&] { plan_shards(m, layout(3, 1)); });
    EXPECT_NE(e.find("num_attention_heads"), std::string::npos) << e;
    ModelConfig odd = m;
    odd.vocab_size = 129281;
    e = error_of([&] { plan_shards(odd, layout(2, 2)); });
    EXPECT_NE(e.find("model.embed_tokens.weight"), std::string::npos) << e;
    EXPECT_NE(e.find("does not divide"), std::string::npos) << e;
    e = error_of([&] { plan_shards(m, layout(8, 3)); });
    EXPECT_NE(e.find("expert_parallel_size"), std::string::npos) << e;
}

TEST(MemoryPlan, DeepSeekV3ParamsAndPerRankBytesAddUp) {
    const ModelConfig m = dsv3();
    const DeployConfig d = deploy_of("deepseek-v3-8xh100.yaml");
    const MemoryPlan mp = plan_memory(d, m, CompressionRatios{});
    EXPECT_NEAR(double(mp.params.total), 671.0e9, 0.005 * 671.0e9);
    EXPECT_NEAR(double(mp.params.active_per_token), 37.5e9, 0.01 * 37.5e9);
    EXPECT_EQ(mp.kv_bytes_per_token, 61u * (512 + 64) * 2);

    // Per-rank FP8 bytes: the checkpoint's bytes once, plus the replicated ones on every further rank.
    const ShardPlan plan = plan_shards(m, d.parallel);
    uint64_t total = 0, replicated = 0, params_replicated = 0;
    for (const TensorSpec& t : plan.tensors) {
        total += t.nbytes();
        const auto h = plan.holders(t.name);
        if (plan.ranks[h[0].first].tensors[h[0].second].split_dim < 0 && h.size() > 1) {
            replicated += t.nbytes() * (h.size() - 1);
            if (t.role != TensorRole::BlockScale) params_replicated += uint64_t(t.numel()) * (h.size() - 1);
        }
    }
    uint64_t rank_sum = 0, rank_params = 0;
    for (const RankMemory& r : mp.fp8.ranks) {
        rank_sum += r.weight_bytes;
        rank_params += r.params;
        EXPECT_EQ(r.device_weight_bytes + r.host_weight_bytes, r.weight_bytes);
    }
    EXPECT_EQ(rank_sum, total + replicated);
    EXPECT_EQ(rank_params, mp.params.total + params_replicated);
    // The checkpoint without MTP: ~671B FP8 parameters, BF16 embedding/head, F32 scales: ~680 GB.
    EXPECT_NEAR(double(total), 6.8e11, 0.02 * 6.8e11);
}

TEST(MemoryPlan, EightH100sHoldEcf8ButNotFp8) {
    const MemoryPlan mp = plan_memory(deploy_of("deepseek-v3-8xh100.yaml"), dsv3(), CompressionRatios{});
    EXPECT_FALSE(mp.fp8.fits);
    EXPECT_NE(mp.fp8.ranks[0].why_not.find("before any KV cache"), std::string::npos) << mp.fp8.ranks[0].why_not;
    EXPECT_TRUE(mp.ecf8.fits) << mp.ecf8.ranks[0].why_not;
    EXPECT_GE(mp.ecf8.min_kv_tokens(), 32768);
    EXPECT_EQ(mp.min_gpus_fp8, 16);
    EXPECT_EQ(mp.min_gpus_ecf8, 8);
    for (const RankMemory& r : mp.ecf8.ranks) {
        EXPECT_EQ(r.host_weight_bytes, 0u);
        EXPECT_GT(r.scratch_bytes, 0u);
        EXPECT_EQ(r.kv_tokens, int64_t(r.kv_bytes / mp.kv_bytes_per_token));
        EXPECT_EQ(r.max_batch, r.kv_tokens / 32768);
    }
}

TEST(MemoryPlan, HostTierTakesRoutedExpertsOfTheLastLayersFirst) {
    const DeployConfig d = deploy_of("deepseek-v3-4xh100-offload.yaml");
    const ModelConfig m = dsv3();
    const MemoryPlan mp = plan_memory(d, m, CompressionRatios{});
    ASSERT_TRUE(mp.ecf8.fits) << mp.ecf8.ranks[0].why_not;
    EXPECT_GT(mp.ecf8.ranks[0].host_weight_bytes, 0u);
    EXPECT_LE(double(mp.ecf8.ranks[0].host_weight_bytes), d.host_budget_bytes());
    EXPECT_LT(mp.ecf8.ranks[0].host_weight_bytes, mp.fp8.ranks[0].host_weight_bytes);

    const ShardPlan plan = plan_shards(m, d.parallel);
    std::vector<uint64_t> bytes;
    for (const ShardTensor& t : plan.ranks[0].tensors) bytes.push_back(planned_bytes(t, WeightFormat::Ecf8, {}));
    std::vector<Tier> tiers;
    const RankMemory r = plan_rank(plan, 0, bytes, WeightFormat::Ecf8, d, &tiers);
    EXPECT_EQ(r.host_weight_bytes, mp.ecf8.ranks[0].host_weight_bytes);
    int lowest_host_layer = 1000, highest_device_expert_layer = -1;
    for (size_t i = 0; i < tiers.size(); ++i) {
        const TensorSpec& s = *plan.ranks[0].tensors[i].spec;
        if (tiers[i] == Tier::Host) {
            EXPECT_GE(s.expert, 0) << s.name << " went to the host before every routed expert did";
            lowest_host_layer = std::min(lowest_host_layer, s.layer);
        } else if (s.expert >= 0) {
            highest_device_expert_layer = std::max(highest_device_expert_layer, s.layer);
        }
    }
    EXPECT_LE(highest_device_expert_layer, lowest_host_layer);
}

// The KV pool is whole blocks, so a min_kv_tokens that is not a multiple of block_size needs the whole block
// above it: the host tier takes enough weights for that. Over budgets where eviction stops at every kind of
// point inside a tensor, the rank fits each time (before, it could stop with room for min_kv_tokens but not
// for that many tokens in whole blocks).
TEST(MemoryPlan, HostTierLeavesWholeBlocksForMinKvTokens) {
    DeployConfig d = deploy_of("deepseek-v3-4xh100-offload.yaml");
    d.kv_cache.min_kv_tokens = d.kv_cache.min_tokens() + 1;
    ASSERT_NE(d.kv_cache.min_kv_tokens % d.kv_cache.block_size, 0);
    const ModelConfig m = dsv3();
    const ShardPlan plan = plan_shards(m, d.parallel);
    std::vector<uint64_t> bytes;
    for (const ShardTensor& t : plan.ranks[0].tensors) bytes.push_back(planned_bytes(t, WeightFormat::Ecf8, {}));
    for (int step = 0; step < 40; ++step) {
        d.memory.gpu_memory_gb = 78.0 + 0.013 * step;
        const RankMemory r = plan_rank(plan, 0, bytes, WeightFormat::Ecf8, d);
        ASSERT_GT(r.host_weight_bytes, 0u) << d.memory.gpu_memory_gb;
        EXPECT_TRUE(r.fits) << "gpu_memory_gb " << d.memory.gpu_memory_gb << ": " << r.why_not;
        EXPECT_GE(r.kv_tokens, d.kv_cache.min_kv_tokens);
    }
}

// Shards placed for ECF8 keep their tiers whatever bytes fill them (ShardManifest::rank_plan passes them as
// `placed`): ECF8's own tiers give ECF8's plan again, and the original FP8 bytes in them (--weights raw on
// those shards) take the device room ECF8 left for KV. On 4xH100 with offload, where ECF8 fills the GPU,
// that leaves less than min_kv_tokens, and the plan says so instead of moving more weights to the host.
TEST(MemoryPlan, PlacedTiersAreKeptWhateverBytesFillThem) {
    const DeployConfig d = deploy_of("deepseek-v3-4xh100-offload.yaml");
    const ShardPlan plan = plan_shards(dsv3(), d.parallel);
    std::vector<uint64_t> ecf8_bytes, fp8_bytes;
    for (const ShardTensor& t : plan.ranks[0].tensors) {
        ecf8_bytes.push_back(planned_bytes(t, WeightFormat::Ecf8, {}));
        fp8_bytes.push_back(planned_bytes(t, WeightFormat::Fp8, {}));
    }
    std::vector<Tier> tiers;
    const RankMemory ecf8 = plan_rank(plan, 0, ecf8_bytes, WeightFormat::Ecf8, d, &tiers);
    ASSERT_TRUE(ecf8.fits) << ecf8.why_not;
    ASSERT_GT(ecf8.host_tensors, 0u);
    const RankMemory again = plan_rank(plan, 0, ecf8_bytes, WeightFormat::Ecf8, d, nullptr, nullptr, &tiers);
    EXPECT_EQ(again.host_weight_bytes, ecf8.host_weight_bytes);
    EXPECT_EQ(again.scratch_bytes, ecf8.scratch_bytes);
    EXPECT_EQ(again.kv_bytes, ecf8.kv_bytes);

    std::vector<Tier> raw_tiers;
    const RankMemory placed = plan_rank(plan, 0, fp8_bytes, WeightFormat::Fp8, d, &raw_tiers, nullptr, &tiers);
    EXPECT_EQ(raw_tiers, tiers);
    uint64_t host = 0;
    for (size_t i = 0; i < tiers.size(); ++i) host += tiers[i] == Tier::Host ? fp8_bytes[i] : 0;
    EXPECT_EQ(placed.host_weight_bytes, host);
    EXPECT_EQ(placed.host_tensors, ecf8.host_tensors);
    EXPECT_FALSE(placed.fits);
    EXPECT_LT(placed.kv_tokens, d.kv_cache.min_tokens());
    // Left to decide, FP8 moves more to the host and fits.
    const RankMemory own = plan_rank(plan, 0, fp8_bytes, WeightFormat::Fp8, d);
    EXPECT_GT(own.host_weight_bytes, placed.host_weight_bytes);
    EXPECT_TRUE(own.fits) << own.why_not;
}

TEST(MemoryPlan, TooSmallHostBudgetIsReported) {
    DeployConfig d = deploy_of("deepseek-v3-4xh100-offload.yaml");
    d.memory.cpu_offload_gb = 1;
    const MemoryPlan mp = plan_memory(d, dsv3(), CompressionRatios{});
    EXPECT_FALSE(mp.ecf8.fits);
    EXPECT_NE(mp.ecf8.ranks[0].why_not.find("cpu_offload_gb"), std::string::npos) << mp.ecf8.ranks[0].why_not;
}

}  // namespace
}  // namespace ecf8

namespace ecf8 {
namespace {

// compute.gemm fp8: the plan's gemm scratch holds every FP8 GEMM call of up to max_num_batched_tokens tokens
// through DeepSeek-V3's linear layers at tp 8 (laid out as CudaOps does, kernels/core/fp8_gemm_scratch.h),
// and its bound is the largest such call, not more.
TEST(MemoryPlan, Fp8GemmCallsFitThePlannedGemmScratch) {
    const ModelConfig m = dsv3();
    const DeployConfig d = deploy_of("deepseek-v3-8xh100.yaml");
    WorldConfig w = plan_shards(m, d.parallel).world;
    const StepLimits limits = step_limits(d.kv_cache);
    const WorkspacePlan fp32 = plan_workspace(m, w, limits, GemmMode::Fp32);
    const WorkspacePlan fp8 = plan_workspace(m, w, limits, GemmMode::Fp8);
    // [out, in] at tp 8: q_a, q_b, kv_a, o, the dense MLP's gate/up and down, the shared expert's. (lm_head and
    // the router are BF16; the routed experts go through routed_experts_mlp.)
    const std::vector<std::pair<int64_t, int64_t>> shapes = {{1536, 7168}, {3072, 1536}, {576, 7168}, {7168, 2048},
                                                             {2304, 7168}, {7168, 2304}, {256, 7168}, {7168, 256}};
    uint64_t most = 0;
    for (int64_t t = 1; t <= limits.tokens; ++t) {
        for (const auto& [out, in] : shapes) {
            const uint64_t need = core::fp8_linear_region(t, in, out).total;
            ASSERT_LE(need, fp8.gemm_bytes) << "T " << t << ", [" << out << ", " << in << "]";
            most = std::max(most, need);
        }
    }
    EXPECT_EQ(fp8_gemm_bytes(m, w, limits.tokens), most);
    // The dequantized lm_head part (16160 x 7168 floats) is larger still, so the mode costs nothing here.
    EXPECT_EQ(fp8.gemm_bytes, fp32.gemm_bytes);
    EXPECT_EQ(fp32.gemm_bytes, uint64_t{16160} * 7168 * 4);
}

// On a small model the FP8 GEMM's region (cuBLASLt's 32 MiB workspace first) outgrows the dequantized weight,
// and the plan's workspace, hence its KV pool, accounts for the difference.
TEST(MemoryPlan, Fp8GemmEnlargesASmallModelsWorkspace) {
    const ModelConfig m = synth_preset("tiny").model;
    DeployConfig d = DeployConfig::load(kSourceDir + "/configs/tiny-cpu.yaml");
    WorldConfig w = plan_shards(m, d.parallel).world;
    const StepLimits limits = step_limits(d.kv_cache);
    const WorkspacePlan fp32 = plan_workspace(m, w, limits, GemmMode::Fp32);
    const WorkspacePlan fp8 = plan_workspace(m, w, limits, GemmMode::Fp8);
    EXPECT_GT(fp8.gemm_bytes, core::kFp8GemmWorkspaceBytes);
    EXPECT_EQ(fp8.gemm_bytes, fp8_gemm_bytes(m, w, limits.tokens));
    EXPECT_EQ(fp8.device_bytes() - fp32.device_bytes(), fp8.gemm_bytes - fp32.gemm_bytes);
    EXPECT_EQ(workspace_bytes(m, w, d.kv_cache, GemmMode::Fp8), fp8.device_bytes());

    d.compute.gemm = GemmMode::Fp8;
    const MemoryPlan with_fp8 = plan_memory(d, m, CompressionRatios{});
    d.compute.gemm = GemmMode::Fp32;
    const MemoryPlan with_fp32 = plan_memory(d, m, CompressionRatios{});
    for (size_t r = 0; r < with_fp8.ecf8.ranks.size(); ++r) {
        EXPECT_EQ(with_fp8.ecf8.ranks[r].workspace_bytes - with_fp32.ecf8.ranks[r].workspace_bytes,
                  fp8.gemm_bytes - fp32.gemm_bytes);
        EXPECT_LT(with_fp8.ecf8.ranks[r].kv_blocks, with_fp32.ecf8.ranks[r].kv_blocks);
    }
}

}  // namespace
}  // namespace ecf8

namespace ecf8 {
namespace {

// plan_rank on rank 0 of a deployment with planned bytes; kept receives the decoded flags.
RankMemory plan_rank0(const DeployConfig& d, const ShardPlan& plan, WeightFormat format, std::vector<bool>* kept) {
    std::vector<uint64_t> bytes;
    for (const ShardTensor& t : plan.ranks[0].tensors) bytes.push_back(planned_bytes(t, format, {}));
    std::vector<Tier> tiers;
    return plan_rank(plan, 0, bytes, format, d, &tiers, kept);
}

// memory.expert_area: half lays the 32 local experts of a rank out in two places of 8 (about half the area),
// and auto takes it where a full area leaves less KV than max_num_seqs sequences of max_model_len can use
// (8xH100 at 32K), and keeps full where the pool already holds them (one 128K sequence on 8xH200).
TEST(MemoryPlan, ExpertAreaAutoTakesHalfWhereTheKvPoolLimitsTheBatch) {
    const ModelConfig m = dsv3();
    DeployConfig d = deploy_of("deepseek-v3-8xh100.yaml");
    const ShardPlan plan = plan_shards(m, d.parallel);
    std::vector<bool> kept;
    d.memory.expert_area = ExpertArea::Full;
    const RankMemory full = plan_rank0(d, plan, WeightFormat::Ecf8, &kept);
    d.memory.expert_area = ExpertArea::Half;
    const RankMemory half = plan_rank0(d, plan, WeightFormat::Ecf8, &kept);
    d.memory.expert_area = ExpertArea::Auto;
    const RankMemory chosen = plan_rank0(d, plan, WeightFormat::Ecf8, &kept);
    // One expert's decoded bytes: three FP8 matrices and their float scales per 128 x 128 block.
    const uint64_t h = uint64_t(m.hidden_size), f = uint64_t(m.moe_intermediate_size);
    const uint64_t expert = 3 * (h * f + (h / 128) * (f / 128) * 4);
    EXPECT_EQ(full.scratch_bytes - half.scratch_bytes, 16 * expert);  // 32 places -> 2 x 8
    EXPECT_GT(half.kv_blocks, full.kv_blocks);
    EXPECT_EQ(full.expert_area, ExpertArea::Full);
    EXPECT_EQ(chosen.expert_area, ExpertArea::Half);
    EXPECT_EQ(chosen.kv_blocks, half.kv_blocks);

    DeployConfig roomy = deploy_of("deepseek-v3-8xh200.yaml");
    roomy.kv_cache.max_num_seqs = 1;
    const ShardPlan roomy_plan = plan_shards(m, roomy.parallel);
    const RankMemory r = plan_rank0(roomy, roomy_plan, WeightFormat::Ecf8, &kept);
    EXPECT_EQ(r.expert_area, ExpertArea::Full);
    EXPECT_GE(r.kv_tokens, roomy.kv_cache.max_model_len);
}

// memory.decoded_experts_gb on 8xH200, where memory is ample: the cap decides. Experts are kept one of every
// MoE layer in turn (each layer keeps its lowest local experts, the counts differ by at most one); each
// costs its FP8 bytes instead of its ECF8 bytes and leaves the expert area; the KV pool pays for it.
TEST(MemoryPlan, DecodedExpertsTakeOneOfEveryLayerInTurnUpToTheCap) {
    DeployConfig d = deploy_of("deepseek-v3-8xh200.yaml");
    d.memory.expert_area = ExpertArea::Full;  // each kept expert leaves its own place (half: a group pair's)
    const ModelConfig m = dsv3();
    const ShardPlan plan = plan_shards(m, d.parallel);
    const std::vector<ShardTensor>& ts = plan.ranks[0].tensors;
    std::vector<bool> none, kept;
    const RankMemory base = plan_rank0(d, plan, WeightFormat::Ecf8, &none);
    EXPECT_EQ(base.decoded_experts, 0);
    EXPECT_EQ(std::count(none.begin(), none.end(), true), 0);
    d.memory.decoded_experts_gb = 10;
    const RankMemory r = plan_rank0(d, plan, WeightFormat::Ecf8, &kept);
    ASSERT_TRUE(r.fits) << r.why_not;
    const int64_t moe_layers = m.num_hidden_layers - m.first_k_dense_replace;
    EXPECT_EQ(r.routed_experts, moe_layers * m.n_routed_experts / 8);
    ASSERT_GT(r.decoded_experts, moe_layers);
    std::map<std::pair<int, int>, uint64_t> expert_raw;  // (layer, expert) -> decoded bytes
    std::map<int, std::set<int>> kept_by_layer;
    uint64_t raw_kept = 0, stored_kept = 0;
    for (size_t i = 0; i < ts.size(); ++i) {
        const TensorSpec& s = *ts[i].spec;
        if (s.expert >= 0) expert_raw[{s.layer, s.expert}] += ts[i].raw_bytes();
        if (!kept[i]) continue;
        ASSERT_GE(s.expert, 0) << s.name << " is not a routed expert";
        kept_by_layer[s.layer].insert(s.expert);
        raw_kept += ts[i].raw_bytes();
        stored_kept += planned_bytes(ts[i], WeightFormat::Ecf8, {});
    }
    const uint64_t one_expert = expert_raw.begin()->second;
    EXPECT_EQ(r.decoded_expert_bytes, raw_kept);
    EXPECT_LE(double(raw_kept), 10.0 * (1ull << 30));
    EXPECT_GT(double(raw_kept + one_expert), 10.0 * (1ull << 30));  // the next one would pass the cap
    ASSERT_EQ(int64_t(kept_by_layer.size()), moe_layers);
    size_t fewest = SIZE_MAX, most = 0;
    const int first_expert = plan.world.experts_for_rank(static_cast<int>(m.n_routed_experts)).begin;
    for (const auto& [layer, experts] : kept_by_layer) {
        fewest = std::min(fewest, experts.size());
        most = std::max(most, experts.size());
        EXPECT_EQ(*experts.rbegin(), first_expert + int(experts.size()) - 1) << "layer " << layer;
    }
    EXPECT_LE(most - fewest, 1u);
    EXPECT_EQ(r.device_weight_bytes, base.device_weight_bytes + raw_kept - stored_kept);
    EXPECT_EQ(r.scratch_bytes, base.scratch_bytes - fewest * one_expert);  // the busiest layer's area shrinks
    EXPECT_LT(r.kv_bytes, base.kv_bytes);
    // The FP8 format holds every expert decoded already: nothing to keep.
    const RankMemory fp8 = plan_rank0(d, plan, WeightFormat::Fp8, &kept);
    EXPECT_EQ(fp8.decoded_experts, 0);
    EXPECT_EQ(std::count(kept.begin(), kept.end(), true), 0);
}

// Where memory is tight the room decides: with no cap to speak of, 8xH100 keeps only what leaves min_kv_tokens
// of KV, and 4xH100 with offload never keeps a host-tier expert.
TEST(MemoryPlan, DecodedExpertsNeverTakeTheMinimumKvOrTheHostTier) {
    const ModelConfig m = dsv3();
    for (const char* yaml : {"deepseek-v3-8xh100.yaml", "deepseek-v3-4xh100-offload.yaml"}) {
        SCOPED_TRACE(yaml);
        DeployConfig d = deploy_of(yaml);
        d.memory.decoded_experts_gb = 1e6;
        // A full area, where each kept expert frees its place (with auto's half area, the offload layout
        // keeps none: keeping the first expert frees no room there).
        d.memory.expert_area = ExpertArea::Full;
        const ShardPlan plan = plan_shards(m, d.parallel);
        std::vector<bool> kept;
        std::vector<uint64_t> bytes;
        for (const ShardTensor& t : plan.ranks[0].tensors) bytes.push_back(planned_bytes(t, WeightFormat::Ecf8, {}));
        std::vector<Tier> tiers;
        const RankMemory r = plan_rank(plan, 0, bytes, WeightFormat::Ecf8, d, &tiers, &kept);
        EXPECT_TRUE(r.fits) << r.why_not;
        EXPECT_GE(r.kv_tokens, d.kv_cache.min_tokens());
        EXPECT_GT(r.decoded_experts, 0);  // 195 of 1856 on 8xH100, 1 of 3712 on 4xH100 with offload
        EXPECT_LT(r.decoded_experts, r.routed_experts);
        for (size_t i = 0; i < kept.size(); ++i) {
            if (!kept[i]) continue;
            EXPECT_EQ(tiers[i], Tier::Device) << plan.ranks[0].tensors[i].spec->name;
        }
        // The plan stops at the first expert that does not fit: what is left over min_kv_tokens is less than
        // that expert's cost (its FP8 less its ECF8 bytes), a few KV blocks.
        const uint64_t block = kv_bytes_per_token(m, d.kv_cache) * uint64_t(d.kv_cache.block_size);
        EXPECT_LT(r.kv_bytes, uint64_t(d.kv_cache.min_tokens() / d.kv_cache.block_size + 4) * block);
    }
}

// decoded_experts_gb: auto keeps experts decoded only in the KV room the scheduler cannot use. On 8xH200 at the
// YAML's 32 sequences of 128K the pool (about 14,000 blocks) is below what they could use: nothing is kept.
// With 8K sequences and max_num_seqs set so that they use 200 blocks fewer than the pool has, some experts
// are kept (each costs its FP8 less its ECF8 bytes, about a quarter of a block; all would cost some 470
// blocks) and the pool stops within a block or two of what the sequences use.
TEST(MemoryPlan, DecodedExpertsAutoKeepThePoolThatMaxNumSeqsCanUse) {
    const ModelConfig m = dsv3();
    DeployConfig d = deploy_of("deepseek-v3-8xh200.yaml");
    d.memory.decoded_experts_auto = true;
    const ShardPlan plan = plan_shards(m, d.parallel);
    std::vector<bool> kept;
    const RankMemory tight = plan_rank0(d, plan, WeightFormat::Ecf8, &kept);
    EXPECT_TRUE(tight.fits) << tight.why_not;
    EXPECT_EQ(tight.decoded_experts, 0);

    d.kv_cache.max_model_len = 8192;
    d.memory.decoded_experts_auto = false;
    const int64_t pool = plan_rank0(d, plan, WeightFormat::Ecf8, &kept).kv_blocks;
    const int64_t per_seq = d.kv_cache.max_model_len / d.kv_cache.block_size;
    d.kv_cache.max_num_seqs = (pool - 200) / per_seq;
    d.memory.decoded_experts_auto = true;
    d.validate();
    const RankMemory r = plan_rank0(d, plan, WeightFormat::Ecf8, &kept);
    ASSERT_TRUE(r.fits) << r.why_not;
    const int64_t usable = d.kv_cache.max_num_seqs * per_seq;
    EXPECT_GT(r.decoded_experts, 0);
    EXPECT_LT(r.decoded_experts, r.routed_experts);
    EXPECT_GE(r.kv_blocks, usable);
    EXPECT_LE(r.kv_blocks, usable + 2);  // stopped at the first expert that would take the pool below it
    // A cap still applies with a number instead: 1 GiB keeps fewer.
    d.memory.decoded_experts_auto = false;
    d.memory.decoded_experts_gb = 1;
    EXPECT_LT(plan_rank0(d, plan, WeightFormat::Ecf8, &kept).decoded_experts, r.decoded_experts);
}

}  // namespace
}  // namespace ecf8
