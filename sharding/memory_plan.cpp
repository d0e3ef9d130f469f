// The memory plan: tiering, scratch, workspace and KV capacity per rank, and the fewest-GPU search.
#include "sharding/memory_plan.h"

#include <algorithm>
#include <array>
#include <climits>
#include <cmath>
#include <filesystem>
#include <map>
#include <numeric>
#include <set>

#include "codec/encoder.h"
#include "codec/safetensors.h"
#include "common/error.h"
#include "common/log.h"
#include "common/progress.h"
#include "common/thread_pool.h"

namespace ecf8 {

double CompressionRatios::ratio_of(DType dt) const {
    switch (dt) {
        case DType::F8_E4M3:
        case DType::F8_E5M2:
            return fp8;
        case DType::BF16:
        case DType::F16:
            return bf16;
        default:
            return 1.0;
    }
}

const char* weight_format_name(WeightFormat f) { return f == WeightFormat::Fp8 ? "fp8" : "ecf8"; }

uint64_t planned_bytes(const ShardTensor& t, WeightFormat format, const CompressionRatios& ratios) {
    const uint64_t raw = t.raw_bytes();
    if (format == WeightFormat::Fp8) return raw;
    return static_cast<uint64_t>(std::ceil(double(raw) * ratios.ratio_of(t.spec->dtype)));
}

uint64_t kv_bytes_per_token(const ModelConfig& m, const KvCacheConfig& kv) {
    return static_cast<uint64_t>(m.num_hidden_layers) * static_cast<uint64_t>(m.kv_lora_rank + m.qk_rope_head_dim) *
           static_cast<uint64_t>(kv.kv_elem_bytes());
}

StepLimits step_limits(const KvCacheConfig& kv) {
    return {kv.max_num_batched_tokens, kv.max_num_seqs, kv.max_num_seqs, kv.max_model_len, kv.block_size};
}

uint64_t workspace_bytes(const ModelConfig& m, const WorldConfig& w, const KvCacheConfig& kv, GemmMode gemm) {
    return plan_workspace(m, w, step_limits(kv), gemm).device_bytes();
}

// ---------------------------------------------------------------------------------------------------
// Measured ratios

CompressionRatios measure_ratios(const std::string& model_dir, uint64_t max_sample_bytes, int threads) {
    CompressionRatios r;
    bool any = false;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(model_dir, ec)) {
        if (e.path().extension() == ".safetensors") any = true;
    }
    if (!any) return r;
    SafetensorsCheckpoint ckpt = SafetensorsCheckpoint::open(model_dir);
    // Evenly spaced tensors of each coded kind, each sampled from its start.
    struct Sample {
        std::string name;
        DType dtype;
        uint64_t numel;
    };
    std::vector<Sample> samples;
    const uint64_t per_tensor = 16ull << 20;
    for (DType kind : {DType::F8_E4M3, DType::BF16}) {
        std::vector<std::string> names;
        for (const std::string& n : ckpt.tensor_names()) {
            const TensorInfo& info = ckpt.info(n);
            if (info.dtype == kind && info.nbytes() >= 4096) names.push_back(n);
        }
        if (names.empty()) continue;
        const uint64_t budget = max_sample_bytes / 2;
        const size_t want = std::max<size_t>(1, std::min<size_t>(names.size(), budget / per_tensor + 1));
        uint64_t taken = 0;
        for (size_t i = 0; i < want && taken < budget; ++i) {
            const TensorInfo& info = ckpt.info(names[i * names.size() / want]);
            const uint64_t bytes = std::min<uint64_t>({info.nbytes(), per_tensor, budget - taken});
            const uint64_t numel = bytes / dtype_size(kind);
            if (numel == 0) break;
            samples.push_back({info.name, kind, numel});
            taken += numel * dtype_size(kind);
        }
    }
    if (samples.empty()) return r;
    std::vector<uint64_t> coded(samples.size());
    ThreadPool pool(threads);
    pool.parallel_for(samples.size(), [&](size_t i) {
        const Sample& s = samples[i];
        coded[i] = encode_tensor(s.dtype, ckpt.data(s.name), s.numel, EncodeOptions{}).size();
    });
    uint64_t raw[2] = {0, 0}, enc[2] = {0, 0};
    for (size_t i = 0; i < samples.size(); ++i) {
        const int k = samples[i].dtype == DType::BF16 ? 1 : 0;
        raw[k] += samples[i].numel * dtype_size(samples[i].dtype);
        enc[k] += coded[i];
    }
    if (raw[0]) r.fp8 = double(enc[0]) / double(raw[0]);
    if (raw[1]) r.bf16 = double(enc[1]) / double(raw[1]);
    r.measured = true;
    r.sampled_bytes = raw[0] + raw[1];
    r.source = "measured on " + std::to_string(samples.size()) + " tensors of " + model_dir;
    return r;
}

// ---------------------------------------------------------------------------------------------------
// One rank

namespace {

// Bytes of a layer's routed experts in the expert area, per expert group (sharding/expert_area.h).
using ExpertGroupBytes = std::array<uint64_t, kExpertAreaGroups>;

// Where a rank's routed experts fall in the expert area's groups: its local experts and the area's sharing.
struct ExpertGrouping {
    ExpertRange experts;
    ExpertArea area = ExpertArea::Full;
    int group(int expert) const { return expert_area_group(expert - experts.begin, experts.size()); }
    // The largest area of any layer.
    uint64_t most(const std::map<int, ExpertGroupBytes>& layers) const {
        uint64_t m = 0;
        for (const auto& [layer, g] : layers) m = std::max(m, expert_area_layout(g, area).bytes);
        return m;
    }
};

// The decode scratch of ECF8 (kDecodeSlots x the largest layer's tensors other than its routed experts,
// decoded, plus the expert area: the local routed experts of a layer, each at a fixed place, since which of
// them decode is decided on the device, after routing; as large as the layer with the most needs). Routed
// experts kept decoded leave the expert area.
struct DecodeScratch {
    ExpertGrouping grouping;
    uint64_t dense_slots = 0;
    std::map<int, ExpertGroupBytes> expert_area;  // per layer: decoded bytes of the experts that decode just in time
    uint64_t bytes() const { return dense_slots + grouping.most(expert_area); }
};

// A rank's weight bytes and parameters (into rm) and, in ECF8, the decode scratch it needs.
DecodeScratch weights_and_decode_scratch(const std::vector<ShardTensor>& ts, const std::vector<uint64_t>& bytes,
                                         WeightFormat format, const ExpertGrouping& grouping, RankMemory* rm) {
    std::map<int, uint64_t> layer_decoded;  // decoded bytes of a layer's tensors other than routed experts
    std::set<std::pair<int, int>> experts;  // (layer, expert)
    DecodeScratch scratch;
    scratch.grouping = grouping;
    for (size_t i = 0; i < ts.size(); ++i) {
        const TensorSpec& s = *ts[i].spec;
        if (s.role != TensorRole::BlockScale) rm->params += static_cast<uint64_t>(ts[i].numel());
        // The runtime decodes the model-level tensors (embedding, final norm, lm_head) once at load.
        rm->weight_bytes += format == WeightFormat::Ecf8 && s.layer < 0 ? ts[i].raw_bytes() : bytes[i];
        if (s.expert >= 0) {
            scratch.expert_area[s.layer][grouping.group(s.expert)] += ts[i].raw_bytes();
            experts.insert({s.layer, s.expert});
        } else if (s.layer >= 0) {
            layer_decoded[s.layer] += ts[i].raw_bytes();
        }
    }
    rm->routed_experts = static_cast<int64_t>(experts.size());
    if (format != WeightFormat::Ecf8) return {grouping, 0, {}};
    for (const auto& [layer, b] : layer_decoded) scratch.dense_slots = std::max(scratch.dense_slots, kDecodeSlots * b);
    return scratch;
}

// Eviction order: routed experts (last layer, last expert first), then other layer tensors, last layer first.
// Model-level tensors (embedding, final norm, lm_head) stay on the GPU.
std::vector<size_t> eviction_order(const std::vector<ShardTensor>& ts) {
    std::vector<size_t> order;
    for (size_t i = 0; i < ts.size(); ++i)
        if (ts[i].spec->layer >= 0) order.push_back(i);
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
        const TensorSpec &x = *ts[a].spec, &y = *ts[b].spec;
        const bool rx = x.expert >= 0, ry = y.expert >= 0;
        if (rx != ry) return rx;
        if (x.layer != y.layer) return x.layer > y.layer;
        if (x.expert != y.expert) return x.expert > y.expert;
        return a > b;
    });
    return order;
}

// "routed experts of layers 40-60 (123 tensors)": what the host tier holds.
std::string host_summary(const std::vector<ShardTensor>& ts, const std::vector<Tier>& tiers, uint64_t host_tensors) {
    int lo = INT32_MAX, hi = -1;
    bool experts_only = true;
    for (size_t i = 0; i < ts.size(); ++i) {
        if (tiers[i] != Tier::Host) continue;
        lo = std::min(lo, ts[i].spec->layer);
        hi = std::max(hi, ts[i].spec->layer);
        experts_only = experts_only && ts[i].spec->expert >= 0;
    }
    return std::string(experts_only ? "routed experts" : "routed experts and other weights") + " of layers " +
           std::to_string(lo) + "-" + std::to_string(hi) + " (" + std::to_string(host_tensors) + " tensors)";
}

// ECF8, memory.decoded_experts_gb: device-tier routed experts kept decoded. Taken one of every layer in turn
// (local expert 0 of each layer, then expert 1, ...), so the expert area shrinks with them; each holds its
// FP8 bytes instead of its ECF8 bytes. Stops before the first expert that would pass the cap, or leave the
// device less room than the KV pool it must keep (`room`: the budget less that pool, the workspace and the
// host tier's scratch; the pool is min_kv_tokens of KV, and with auto at least what the scheduler can use). Marks kept
// tensors in *kept; updates rm's weights, count and bytes, and *scratch.
void keep_experts_decoded(const std::vector<ShardTensor>& ts, const std::vector<uint64_t>& bytes,
                          const std::vector<Tier>& tiers, double cap, double room, DecodeScratch* scratch,
                          std::vector<bool>* kept, RankMemory* rm) {
    std::map<std::pair<int, int>, std::vector<size_t>> experts;  // (expert, layer) -> its tensors
    for (size_t i = 0; i < ts.size(); ++i)
        if (ts[i].spec->expert >= 0) experts[{ts[i].spec->expert, ts[i].spec->layer}].push_back(i);
    for (const auto& [key, members] : experts) {
        uint64_t raw = 0, stored = 0;
        bool on_device = true;
        for (size_t i : members) {
            raw += ts[i].raw_bytes();
            stored += bytes[i];
            on_device = on_device && tiers[i] == Tier::Device;
        }
        if (!on_device) continue;  // host-tier experts stay compressed, read over the bus only when picked
        uint64_t& area = scratch->expert_area[key.second][scratch->grouping.group(key.first)];
        area -= raw;  // tentatively: the expert leaves its layer's area
        const double weights = double(rm->device_weight_bytes) + double(raw) - double(stored);
        if (double(rm->decoded_expert_bytes + raw) > cap || weights + double(scratch->bytes()) > room) {
            area += raw;
            break;
        }
        rm->device_weight_bytes += raw - stored;
        rm->weight_bytes += raw - stored;
        rm->decoded_expert_bytes += raw;
        ++rm->decoded_experts;
        for (size_t i : members) (*kept)[i] = true;
    }
}

// The least KV pool a rank may have: min_kv_tokens rounded up to whole blocks, since the pool is blocks.
double min_pool_bytes(const KvCacheConfig& kv, uint64_t kv_token) {
    const uint64_t block_tokens = static_cast<uint64_t>(kv.block_size);
    return double((static_cast<uint64_t>(kv.min_tokens()) + block_tokens - 1) / block_tokens * block_tokens) *
           double(kv_token);
}

// The most KV pool the scheduler can use: max_num_seqs sequences of max_model_len, in whole blocks.
double usable_pool_bytes(const KvCacheConfig& kv, uint64_t kv_token) {
    return double(kv.max_num_seqs) * double(step_limits(kv).max_blocks()) * double(kv.block_size) * double(kv_token);
}

// The KV cache the budget leaves after weights, scratch and workspace, and whether the rank fits.
void kv_and_verdict(const KvCacheConfig& kv, uint64_t kv_token, double budget, double host_budget, RankMemory* rm) {
    const double used = double(rm->device_weight_bytes + rm->scratch_bytes + rm->workspace_bytes);
    const double left = budget - used;
    // The pool: whole blocks of the room left.
    const uint64_t block = kv_token * static_cast<uint64_t>(kv.block_size);
    rm->kv_blocks = left > 0 && block > 0 ? static_cast<int64_t>(static_cast<uint64_t>(left) / block) : 0;
    rm->kv_bytes = static_cast<uint64_t>(rm->kv_blocks) * block;
    rm->kv_tokens = rm->kv_blocks * kv.block_size;
    rm->max_batch = rm->kv_blocks / step_limits(kv).max_blocks();
    const bool host_ok = double(rm->host_weight_bytes) <= host_budget;
    rm->fits = host_ok && rm->kv_tokens >= kv.min_tokens();
    if (!host_ok) {
        rm->why_not = "host tier needs " + format_bytes(double(rm->host_weight_bytes)) + " but cpu_offload_gb gives " +
                      format_bytes(host_budget);
    } else if (!rm->fits && left <= 0) {
        rm->why_not = "weights on the GPU, scratch and workspace need " + format_bytes(used) + " of the " +
                      format_bytes(budget) + " budget, before any KV cache" +
                      (host_budget > 0 ? "" : " (cpu_offload_gb is 0)");
    } else if (!rm->fits) {
        rm->why_not = "KV cache room for " + std::to_string(rm->kv_tokens) + " tokens < min_kv_tokens " +
                      std::to_string(kv.min_tokens()) + " (short by " +
                      format_bytes(min_pool_bytes(kv, kv_token) - left) + ")";
    }
}

RankMemory plan_rank_in(const ShardPlan& plan, int rank, const std::vector<uint64_t>& bytes, WeightFormat format,
                        const DeployConfig& deploy, ExpertArea area, std::vector<Tier>* tiers_out,
                        std::vector<bool>* decoded_out, const std::vector<Tier>* placed) {
    const RankShard& shard = plan.ranks.at(rank);
    const std::vector<ShardTensor>& ts = shard.tensors;
    ECF8_CHECK(bytes.size() == ts.size(), "plan_rank: " << bytes.size() << " sizes for " << ts.size() << " tensors");
    const KvCacheConfig& kv = deploy.kv_cache;
    WorldConfig w = plan.world;
    w.rank = rank;

    RankMemory rm;
    rm.rank = rank;
    const ExpertRange mine = plan.model.n_routed_experts > 0
                                 ? w.experts_for_rank(static_cast<int>(plan.model.n_routed_experts))
                                 : ExpertRange{};
    const ExpertGrouping grouping{mine, area};
    DecodeScratch decode_scratch = weights_and_decode_scratch(ts, bytes, format, grouping, &rm);
    rm.workspace_bytes = workspace_bytes(plan.model, w, kv, deploy.compute.gemm);
    const uint64_t kv_token = kv_bytes_per_token(plan.model, kv);
    const double budget = deploy.gpu_budget_bytes();
    const double host_budget = deploy.host_budget_bytes();
    const double min_pool = min_pool_bytes(kv, kv_token);  // the tiers and the decoded experts leave it

    std::vector<Tier> tiers(ts.size(), Tier::Device);
    // Staging, as the WeightStore lays it out: a layer's host-tier non-expert weights in each of the
    // kDecodeSlots slots. Host-tier routed experts need none: the decoder reads them where they lie.
    std::map<int, uint64_t> dense_host;  // per layer
    uint64_t max_dense_host = 0;
    rm.device_weight_bytes = rm.weight_bytes;
    // FP8 (raw) weights are used in place, but a host-tier routed expert is copied to the expert area when
    // picked: that area, like ECF8's, holds a layer's host-tier experts at fixed places.
    std::map<int, ExpertGroupBytes> expert_host;  // per layer
    uint64_t max_expert_host = 0;
    auto host_tier_scratch = [&] {
        return static_cast<uint64_t>(kDecodeSlots) * max_dense_host +
               (format == WeightFormat::Ecf8 ? 0 : max_expert_host);
    };
    auto device_need = [&] {
        return double(rm.device_weight_bytes) +
               double(decode_scratch.bytes() + host_tier_scratch() + rm.workspace_bytes) + min_pool;
    };
    auto move_to_host = [&](size_t i) {
        tiers[i] = Tier::Host;
        rm.device_weight_bytes -= bytes[i];
        rm.host_weight_bytes += bytes[i];
        ++rm.host_tensors;
        if (ts[i].spec->expert < 0)
            max_dense_host = std::max(max_dense_host, dense_host[ts[i].spec->layer] += bytes[i]);
        else {  // only this layer's area grows
            ExpertGroupBytes& layer = expert_host[ts[i].spec->layer];
            layer[grouping.group(ts[i].spec->expert)] += bytes[i];
            max_expert_host = std::max(max_expert_host, expert_area_layout(layer, grouping.area).bytes);
        }
    };
    if (placed != nullptr) {  // the shards' tiers, whatever these bytes would have decided
        ECF8_CHECK(placed->size() == ts.size(),
                   "plan_rank: " << placed->size() << " tiers for " << ts.size() << " tensors");
        for (size_t i = 0; i < ts.size(); ++i)
            if ((*placed)[i] == Tier::Host) move_to_host(i);
    } else {  // layer tensors, in eviction order, until the device budget holds the rest
        const std::vector<size_t> order = eviction_order(ts);
        for (size_t next = 0; device_need() > budget && next < order.size() && host_budget > 0; ++next)
            move_to_host(order[next]);
    }
    if (rm.host_tensors > 0) rm.host_summary = host_summary(ts, tiers, rm.host_tensors);
    std::vector<bool> decoded(ts.size(), false);
    if (format == WeightFormat::Ecf8 && deploy.keeps_decoded_experts()) {
        // auto: the pool keeps room for every sequence the scheduler can run at once, and no more.
        const double pool =
            deploy.memory.decoded_experts_auto ? std::max(min_pool, usable_pool_bytes(kv, kv_token)) : min_pool;
        const double room = budget - pool - double(host_tier_scratch() + rm.workspace_bytes);
        keep_experts_decoded(ts, bytes, tiers, deploy.decoded_experts_budget_bytes(), room, &decode_scratch, &decoded,
                             &rm);
    }
    rm.scratch_bytes = decode_scratch.bytes() + host_tier_scratch();
    rm.expert_area = area;
    kv_and_verdict(kv, kv_token, budget, host_budget, &rm);
    if (tiers_out) *tiers_out = std::move(tiers);
    if (decoded_out) *decoded_out = std::move(decoded);
    return rm;
}

}  // namespace

RankMemory plan_rank(const ShardPlan& plan, int rank, const std::vector<uint64_t>& bytes, WeightFormat format,
                     const DeployConfig& deploy, std::vector<Tier>* tiers_out, std::vector<bool>* decoded_out,
                     const std::vector<Tier>* placed) {
    const ExpertArea asked = deploy.memory.expert_area;
    if (asked != ExpertArea::Auto)
        return plan_rank_in(plan, rank, bytes, format, deploy, asked, tiers_out, decoded_out, placed);
    // auto: half where a full area leaves the KV pool short of what the scheduler can use, if it is smaller.
    std::vector<Tier> tiers;
    std::vector<bool> decoded;
    RankMemory full = plan_rank_in(plan, rank, bytes, format, deploy, ExpertArea::Full, &tiers, &decoded, placed);
    const double usable = usable_pool_bytes(deploy.kv_cache, kv_bytes_per_token(plan.model, deploy.kv_cache));
    if (double(full.kv_bytes) < usable) {
        std::vector<Tier> half_tiers;
        std::vector<bool> half_decoded;
        RankMemory half =
            plan_rank_in(plan, rank, bytes, format, deploy, ExpertArea::Half, &half_tiers, &half_decoded, placed);
        if (half.scratch_bytes < full.scratch_bytes) {
            full = std::move(half);
            tiers = std::move(half_tiers);
            decoded = std::move(half_decoded);
        }
    }
    if (tiers_out) *tiers_out = std::move(tiers);
    if (decoded_out) *decoded_out = std::move(decoded);
    return full;
}

// ---------------------------------------------------------------------------------------------------
// The whole plan

uint64_t FormatPlan::total_weight_bytes() const {
    uint64_t n = 0;
    for (const RankMemory& r : ranks) n += r.weight_bytes;
    return n;
}

int64_t FormatPlan::min_kv_tokens() const {
    int64_t n = INT64_MAX;
    for (const RankMemory& r : ranks) n = std::min(n, r.kv_tokens);
    return ranks.empty() ? 0 : n;
}

int64_t FormatPlan::min_max_batch() const {
    int64_t n = INT64_MAX;
    for (const RankMemory& r : ranks) n = std::min(n, r.max_batch);
    return ranks.empty() ? 0 : n;
}

namespace {

FormatPlan plan_format(const ShardPlan& plan, WeightFormat format, const DeployConfig& deploy,
                       const CompressionRatios& ratios) {
    FormatPlan fp;
    fp.format = format;
    fp.fits = true;
    for (const RankShard& shard : plan.ranks) {
        std::vector<uint64_t> bytes(shard.tensors.size());
        for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = planned_bytes(shard.tensors[i], format, ratios);
        fp.ranks.push_back(plan_rank(plan, shard.rank, bytes, format, deploy));
        fp.fits = fp.fits && fp.ranks.back().fits;
    }
    return fp;
}

// Fewest GPUs n (tp = n, ep = gcd(n, experts), no host tier) for which every rank fits.
int min_gpus(const DeployConfig& deploy, const ModelConfig& model, WeightFormat format,
             const CompressionRatios& ratios) {
    for (int n = 1; n <= 1024; ++n) {
        if (model.num_attention_heads % n != 0) continue;
        DeployConfig d = deploy;
        d.parallel.tensor_parallel_size = n;
        d.parallel.expert_parallel_size = std::gcd(n, static_cast<int>(model.n_routed_experts));
        d.parallel.nodes = 1;
        d.parallel.gpus_per_node = n;
        d.memory.cpu_offload_gb = 0;
        try {
            const ShardPlan plan = plan_shards(model, d.parallel);
            if (plan_format(plan, format, d, ratios).fits) return n;
        } catch (const Error&) {
            continue;  // this n cannot split the model (a dimension or block boundary)
        }
    }
    return 0;
}

}  // namespace

MemoryPlan plan_memory(const DeployConfig& deploy, const ModelConfig& model, const CompressionRatios& ratios) {
    MemoryPlan mp;
    mp.gpu_budget_bytes = deploy.gpu_budget_bytes();
    mp.host_budget_bytes = deploy.host_budget_bytes();
    mp.kv_bytes_per_token = kv_bytes_per_token(model, deploy.kv_cache);
    mp.params = count_parameters(model, /*include_mtp=*/false);
    mp.ratios = ratios;
    const ShardPlan plan = plan_shards(model, deploy.parallel);
    mp.fp8 = plan_format(plan, WeightFormat::Fp8, deploy, ratios);
    mp.ecf8 = plan_format(plan, WeightFormat::Ecf8, deploy, ratios);
    mp.min_gpus_fp8 = min_gpus(deploy, model, WeightFormat::Fp8, ratios);
    mp.min_gpus_ecf8 = min_gpus(deploy, model, WeightFormat::Ecf8, ratios);
    return mp;
}

}  // namespace ecf8
