// `ecf8 plan`: the memory plan of a deployment as a table (or stable JSON): per-rank weights in FP8 and
// ECF8, tiers, scratch, workspace, KV cache, and the fewest GPUs that hold the model.
#include <cinttypes>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/progress.h"
#include "launcher/args.h"
#include "launcher/commands.h"
#include "launcher/deploy_flags.h"
#include "sharding/memory_plan.h"

namespace ecf8 {
namespace {

using nlohmann::ordered_json;

constexpr uint64_t kRatioSampleBytes = 64ull << 20;

double gib(double bytes) { return bytes / double(1ull << 30); }

// "671.03B" or "10.66M": parameter counts as people quote them.
std::string count_text(uint64_t n) {
    char buf[32];
    if (n >= 1000000000ull)
        std::snprintf(buf, sizeof(buf), "%.2fB", double(n) / 1e9);
    else
        std::snprintf(buf, sizeof(buf), "%.2fM", double(n) / 1e6);
    return buf;
}

std::string bytes_text(uint64_t n) { return format_bytes(double(n)); }

ordered_json rank_json(const RankMemory& r) {
    return {{"rank", r.rank},
            {"params", r.params},
            {"weight_bytes", r.weight_bytes},
            {"device_weight_bytes", r.device_weight_bytes},
            {"host_weight_bytes", r.host_weight_bytes},
            {"host_tensors", r.host_tensors},
            {"host_summary", r.host_summary},
            {"routed_experts", r.routed_experts},
            {"decoded_experts", r.decoded_experts},
            {"decoded_expert_bytes", r.decoded_expert_bytes},
            {"scratch_bytes", r.scratch_bytes},
            {"expert_area", expert_area_name(r.expert_area)},
            {"workspace_bytes", r.workspace_bytes},
            {"kv_blocks", r.kv_blocks},
            {"kv_bytes", r.kv_bytes},
            {"kv_tokens", r.kv_tokens},
            {"max_batch", r.max_batch},
            {"fits", r.fits},
            {"why_not", r.why_not}};
}

ordered_json format_json(const FormatPlan& f) {
    ordered_json ranks = ordered_json::array();
    for (const RankMemory& r : f.ranks) ranks.push_back(rank_json(r));
    return {{"fits", f.fits},
            {"total_weight_bytes", f.total_weight_bytes()},
            {"min_kv_tokens", f.min_kv_tokens()},
            {"max_batch", f.min_max_batch()},
            {"ranks", std::move(ranks)}};
}

ordered_json plan_json(const DeployConfig& d, const ModelConfig& m, const MemoryPlan& p) {
    return {{"config", d.source},
            {"gemm", gemm_mode_name(d.compute.gemm)},
            {"model",
             {{"config_json", m.source},
              {"layers", m.num_hidden_layers},
              {"dense_layers", m.first_k_dense_replace},
              {"routed_experts", m.n_routed_experts},
              {"experts_per_token", m.num_experts_per_tok}}},
            {"params",
             {{"total", p.params.total},
              {"active_per_token", p.params.active_per_token},
              {"embedding", p.params.embedding},
              {"lm_head", p.params.lm_head},
              {"attention_per_layer", p.params.attention_per_layer},
              {"dense_mlp_per_layer", p.params.dense_mlp_per_layer},
              {"moe_layer", p.params.moe_layer},
              {"routed_expert", p.params.routed_expert}}},
            {"parallel",
             {{"world_size", d.world_size()},
              {"tensor_parallel_size", d.parallel.tensor_parallel_size},
              {"expert_parallel_size", d.parallel.expert_parallel_size},
              {"nodes", d.parallel.nodes},
              {"gpus_per_node", d.gpus_per_node()}}},
            {"gpu_budget_bytes", static_cast<uint64_t>(p.gpu_budget_bytes)},
            {"host_budget_bytes", static_cast<uint64_t>(p.host_budget_bytes)},
            {"decoded_experts_gb",
             d.memory.decoded_experts_auto ? ordered_json("auto") : ordered_json(d.memory.decoded_experts_gb)},
            {"ratios",
             {{"fp8", p.ratios.fp8},
              {"bf16", p.ratios.bf16},
              {"measured", p.ratios.measured},
              {"sampled_bytes", p.ratios.sampled_bytes},
              {"source", p.ratios.source}}},
            {"kv_cache",
             {{"bytes_per_token", p.kv_bytes_per_token},
              {"max_model_len", d.kv_cache.max_model_len},
              {"max_num_seqs", d.kv_cache.max_num_seqs},
              {"min_kv_tokens", d.kv_cache.min_tokens()},
              {"block_size", d.kv_cache.block_size},
              {"max_num_batched_tokens", d.kv_cache.max_num_batched_tokens}}},
            {"fp8", format_json(p.fp8)},
            {"ecf8", format_json(p.ecf8)},
            {"min_gpus", {{"fp8", p.min_gpus_fp8}, {"ecf8", p.min_gpus_ecf8}}}};
}

void print_format_rows(const char* name, const FormatPlan& f) {
    for (const RankMemory& r : f.ranks) {
        std::printf("%-5s %4d  %10s %10s %10s %10s %10s %10s %9" PRId64 " %10" PRId64 " %6" PRId64 "  %s\n", name,
                    r.rank, bytes_text(r.weight_bytes).c_str(), bytes_text(r.device_weight_bytes).c_str(),
                    bytes_text(r.host_weight_bytes).c_str(), bytes_text(r.scratch_bytes).c_str(),
                    bytes_text(r.workspace_bytes).c_str(), bytes_text(r.kv_bytes).c_str(), r.kv_blocks, r.kv_tokens,
                    r.max_batch, r.fits ? "yes" : "NO");
    }
}

void print_verdict(const char* name, const FormatPlan& f, const DeployConfig& d) {
    if (!f.ranks.empty() && f.ranks[0].host_tensors > 0)
        std::printf("%-5s host tier of rank 0: %s\n", name, f.ranks[0].host_summary.c_str());
    if (f.format == WeightFormat::Ecf8 && d.keeps_decoded_experts() && !f.ranks.empty()) {
        const RankMemory& r = f.ranks[0];
        std::printf("%-5s rank 0 keeps %" PRId64 " of its %" PRId64
                    " (layer, routed expert) pairs decoded, %s (memory.decoded_experts_gb %s)\n",
                    name, r.decoded_experts, r.routed_experts, format_bytes(double(r.decoded_expert_bytes)).c_str(),
                    d.decoded_experts_text().c_str());
    }
    if (!f.ranks.empty() && f.ranks[0].routed_experts > 0 && f.ranks[0].scratch_bytes > 0)
        std::printf("%-5s expert area of rank 0: %s (memory.expert_area %s%s)\n", name,
                    expert_area_name(f.ranks[0].expert_area), expert_area_name(d.memory.expert_area),
                    d.memory.expert_area != ExpertArea::Auto ? ""
                    : f.ranks[0].expert_area == ExpertArea::Half
                        ? ": a full area leaves less KV than max_num_seqs sequences of max_model_len use"
                        : ": the KV pool holds what the scheduler can use, or half saves nothing");
    if (f.fits) {
        std::printf("%-5s fits: %s of weights in all; every rank has KV room for >= %" PRId64
                    " tokens (blocks of %" PRId64 "), %" PRId64 " concurrent sequence(s) of %" PRId64 " tokens\n",
                    name, format_bytes(double(f.total_weight_bytes())).c_str(), f.min_kv_tokens(),
                    d.kv_cache.block_size, f.min_max_batch(), d.kv_cache.max_model_len);
        return;
    }
    for (const RankMemory& r : f.ranks) {
        if (r.fits) continue;
        std::printf("%-5s does NOT fit: rank %d: %s\n", name, r.rank, r.why_not.c_str());
        return;
    }
}

void print_plan(const DeployConfig& d, const ModelConfig& m, const MemoryPlan& p) {
    const int64_t moe_layers = m.num_hidden_layers - m.first_k_dense_replace;
    std::printf("config     %s\n", d.source.c_str());
    std::printf("model      %s: %" PRId64 " layers (%" PRId64 " dense, %" PRId64 " MoE), %" PRId64
                " routed experts (%" PRId64 " per token)\n",
                m.source.c_str(), m.num_hidden_layers, m.first_k_dense_replace, moe_layers, m.n_routed_experts,
                m.num_experts_per_tok);
    std::printf("params     %s total (MTP layers not counted), %s active per token\n",
                count_text(p.params.total).c_str(), count_text(p.params.active_per_token).c_str());
    std::printf("layout     %d ranks: tensor_parallel_size %d, expert_parallel_size %d, %d node(s) x %d GPUs\n",
                d.world_size(), d.parallel.tensor_parallel_size, d.parallel.expert_parallel_size, d.parallel.nodes,
                d.gpus_per_node());
    const std::string decoded = d.memory.decoded_experts_auto
                                    ? std::string("in the KV room beyond max_num_seqs sequences (auto)")
                                    : "up to " + d.decoded_experts_text() + " per rank";
    std::printf(
        "budget     %.2f GiB per GPU (%.1f GiB x %.2f), pinned host tier %.2f GiB per rank, decoded experts %s\n",
        gib(p.gpu_budget_bytes), d.memory.gpu_memory_gb, d.memory.gpu_memory_utilization, gib(p.host_budget_bytes),
        decoded.c_str());
    std::printf("ECF8 ratio FP8 %.3f, BF16 %.3f: %s\n", p.ratios.fp8, p.ratios.bf16, p.ratios.source.c_str());
    std::printf("KV cache   %s per token (%" PRId64 " layers x (%" PRId64 " + %" PRId64
                ") x %d B; MLA's latent cache is not split by tensor parallelism)\n",
                format_bytes(double(p.kv_bytes_per_token)).c_str(), m.num_hidden_layers, m.kv_lora_rank,
                m.qk_rope_head_dim, d.kv_cache.kv_elem_bytes());
    std::printf("workspace  steps of up to %" PRId64 " tokens (kv_cache.max_num_batched_tokens); compute.gemm %s%s\n",
                d.kv_cache.max_num_batched_tokens, gemm_mode_name(d.compute.gemm),
                d.compute.gemm == GemmMode::Fp8 ? " (the FP8 GEMM's activations, workspace and scratch included)" : "");
    std::printf("\nper rank; KV = the KV pool in the GPU memory left, in blocks of %" PRId64
                " tokens; batch = sequences of %" PRId64 " tokens at once\n",
                d.kv_cache.block_size, d.kv_cache.max_model_len);
    std::printf("%-5s %4s  %10s %10s %10s %10s %10s %10s %9s %10s %6s  %s\n", "fmt", "rank", "weights", "on GPU",
                "on host", "scratch", "workspace", "KV", "KV blocks", "KV tokens", "batch", "fits");
    print_format_rows("fp8", p.fp8);
    print_format_rows("ecf8", p.ecf8);
    std::printf("\n");
    print_verdict("FP8", p.fp8, d);
    print_verdict("ECF8", p.ecf8, d);
    auto gpus = [](int n) { return n > 0 ? std::to_string(n) : std::string("none up to 1024"); };
    std::printf("fewest GPUs of %.1f GiB (x %.2f) holding the model with >= %" PRId64
                " KV tokens, no host tier: FP8 %s, ECF8 %s\n",
                d.memory.gpu_memory_gb, d.memory.gpu_memory_utilization, d.kv_cache.min_tokens(),
                gpus(p.min_gpus_fp8).c_str(), gpus(p.min_gpus_ecf8).c_str());
}

}  // namespace

int cmd_plan(const CommandArgs& argv) {
    Args args(argv, {"config", "model", "threads", kGemmFlag, kDecodedExpertsFlag, kExpertAreaFlag}, {"json"}, "plan");
    args.expect_positional(0, "ecf8 plan --config C.yaml [--json] [--model DIR] [--gemm fp32|fp8]");
    ECF8_CHECK(args.has("config"), "ecf8 plan: --config C.yaml is required; see 'ecf8 plan --help'");
    DeployConfig deploy = DeployConfig::load(args.get("config", ""));
    if (args.has("model")) deploy.model = args.get("model", "");
    apply_deploy_flags(args, &deploy);
    const ModelConfig model = ModelConfig::load(deploy.config_json_path());
    const CompressionRatios ratios = measure_ratios(deploy.model, kRatioSampleBytes, args.get_threads(0));
    const MemoryPlan plan = plan_memory(deploy, model, ratios);
    if (args.has("json")) {
        std::printf("%s\n", plan_json(deploy, model, plan).dump(2).c_str());
    } else {
        print_plan(deploy, model, plan);
    }
    return 0;
}

}  // namespace ecf8
