// `ecf8 shard`, `ecf8 verify-shards` and `ecf8 unshard`: per-rank ECF8 shards of a checkpoint, and the proof
// that they reassemble to it bit for bit.
#include <cstdio>

#include "common/error.h"
#include "common/progress.h"
#include "launcher/args.h"
#include "launcher/commands.h"
#include "sharding/shard_io.h"

namespace ecf8 {
namespace {

// The YAML with the command line's directory overrides applied.
DeployConfig load_deploy(const Args& args, const char* out_flag) {
    ECF8_CHECK(args.has("config"), "--config C.yaml is required");
    DeployConfig d = DeployConfig::load(args.get("config", ""));
    if (args.has("model")) d.model = args.get("model", "");
    if (out_flag && args.has(out_flag)) d.output = args.get(out_flag, "");
    return d;
}

}  // namespace

int cmd_shard(const CommandArgs& argv) {
    Args args(argv, {"config", "model", "out", "threads"}, {}, "shard");
    args.expect_positional(0, "ecf8 shard --config C.yaml [--model DIR] [--out DIR] [--threads N]");
    const DeployConfig deploy = load_deploy(args, "out");
    ShardOptions options;
    parse_granularity(deploy.codec.granularity, &options.encode);
    options.threads = args.get_threads(deploy.codec.threads);
    const ShardResult r = shard_checkpoint(deploy, options);
    std::printf("sharded %s -> %s: %llu tensors for %d ranks (tp %d, ep %d)\n", deploy.model.c_str(),
                deploy.output.c_str(), static_cast<unsigned long long>(r.tensors), deploy.world_size(),
                deploy.parallel.tensor_parallel_size, deploy.parallel.expert_parallel_size);
    std::printf("  parts %s -> stored %s (%.2f%% of raw, %.2f%% saved); %s of checkpoint read in %.1f s (%.2f GB/s)\n",
                format_bytes(double(r.raw_bytes)).c_str(), format_bytes(double(r.stored_bytes)).c_str(),
                r.raw_bytes ? 100.0 * double(r.stored_bytes) / double(r.raw_bytes) : 100.0,
                r.raw_bytes ? 100.0 - 100.0 * double(r.stored_bytes) / double(r.raw_bytes) : 0.0,
                format_bytes(double(r.source_bytes)).c_str(), r.seconds,
                r.seconds > 0 ? double(r.source_bytes) / r.seconds / 1e9 : 0.0);
    if (r.skipped) {
        std::printf("  %llu checkpoint tensor(s) not sharded (MTP layers, unused by the runtime)\n",
                    static_cast<unsigned long long>(r.skipped));
    }
    return 0;
}

int cmd_verify_shards(const CommandArgs& argv) {
    Args args(argv, {"config", "model", "out", "threads"}, {}, "verify-shards");
    args.expect_positional(0, "ecf8 verify-shards --config C.yaml [--model DIR] [--out DIR] [--threads N]");
    const DeployConfig deploy = load_deploy(args, "out");
    const int threads = args.get_threads(0);
    const ShardManifest manifest = ShardManifest::load(deploy.output);
    manifest.check_matches(deploy);
    const std::vector<std::string> problems = verify_shards(deploy.output, deploy.model, threads, true);
    if (!problems.empty()) {
        for (const std::string& p : problems) std::fprintf(stderr, "MISMATCH %s\n", p.c_str());
        std::fprintf(stderr, "ecf8 verify-shards: %zu problem(s): %s does not reassemble to %s\n", problems.size(),
                     deploy.output.c_str(), deploy.model.c_str());
        return 1;
    }
    std::printf("verified: every tensor of %s reassembles bit-identically from the %d rank files in %s\n",
                deploy.model.c_str(), manifest.world_size(), deploy.output.c_str());
    return 0;
}

int cmd_unshard(const CommandArgs& argv) {
    Args args(argv, {"config", "out", "shards", "threads"}, {}, "unshard");
    args.expect_positional(0, "ecf8 unshard --config C.yaml --out DIR [--shards DIR] [--threads N]");
    const DeployConfig deploy = load_deploy(args, nullptr);
    ECF8_CHECK(args.has("out"), "ecf8 unshard: --out DIR is required (where the checkpoint is written)");
    const std::string shards = args.get("shards", deploy.output);
    const std::string out = args.get("out", "");
    unshard(shards, out, args.get_threads(0), true);
    std::printf("wrote %s/model.safetensors and config.json from the shards in %s\n", out.c_str(), shards.c_str());
    return 0;
}

}  // namespace ecf8
