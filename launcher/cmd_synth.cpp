// `ecf8 synth`: writes a synthetic Hugging Face checkpoint with DeepSeek-V3's layout (a preset or a YAML
// file of overrides) with a tokenizer trained for its vocabulary, and prints what it wrote, with the
// measured FP8 exponent entropy.
#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "codec/safetensors.h"
#include "common/error.h"
#include "common/progress.h"
#include "launcher/args.h"
#include "launcher/commands.h"
#include "sharding/model_tensors.h"
#include "sharding/synth_checkpoint.h"
#include "tokenizer/synth_tokenizer.h"

namespace ecf8 {
namespace {

constexpr const char* kUsage =
    "ecf8 synth --arch deepseek-v3 --preset tiny|small|FILE.yaml --out DIR [--seed S] [--threads N]";

bool ends_with(const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

uint64_t parse_seed(const std::string& text) {
    uint64_t v = 0;
    const auto r = std::from_chars(text.data(), text.data() + text.size(), v);
    ECF8_CHECK(!text.empty() && r.ec == std::errc() && r.ptr == text.data() + text.size(),
               "--seed '" << text << "' is not a non-negative integer");
    return v;
}

struct EntropySample {
    int tensors = 0;
    double mean = 0, min = 0, max = 0;
};

// Exponent entropy of up to `count` FP8 weights spread over the checkpoint (first, last and between), so the
// summary shows where the generated weights sit against the 2.5-3 bits of real checkpoints.
EntropySample sample_fp8_entropy(const std::string& dir, int count) {
    const SafetensorsCheckpoint ck = SafetensorsCheckpoint::open(dir);
    std::vector<std::string> fp8;
    for (const std::string& name : ck.tensor_names()) {
        if (ck.info(name).dtype == DType::F8_E4M3) fp8.push_back(name);
    }
    EntropySample s;
    if (fp8.empty()) return s;
    const size_t n = std::min(fp8.size(), static_cast<size_t>(count));
    double sum = 0;
    for (size_t i = 0; i < n; ++i) {
        const std::string& name = fp8[n == 1 ? 0 : i * (fp8.size() - 1) / (n - 1)];
        const double h = exponent_entropy_bits(DType::F8_E4M3, ck.data(name), ck.info(name).numel());
        sum += h;
        s.min = i == 0 ? h : std::min(s.min, h);
        s.max = i == 0 ? h : std::max(s.max, h);
    }
    s.tensors = static_cast<int>(n);
    s.mean = sum / static_cast<double>(n);
    return s;
}

}  // namespace

int cmd_synth(const CommandArgs& argv) {
    Args args(argv, {"arch", "preset", "out", "seed", "threads"}, {}, "synth");
    args.expect_positional(0, kUsage);
    const std::string arch = args.get("arch", "deepseek-v3");
    ECF8_CHECK(arch == "deepseek-v3" || arch == "deepseek_v3",
               "--arch " << arch << " is not supported; only deepseek-v3 is (llama and qwen come later)");
    ECF8_CHECK(args.has("preset"), "--preset is required\nusage: " << kUsage);
    ECF8_CHECK(args.has("out"), "--out is required\nusage: " << kUsage);
    const std::string preset = args.get("preset", ""), dir = args.get("out", "");

    const bool is_file = ends_with(preset, ".yaml") || ends_with(preset, ".yml");
    SynthCheckpointOptions options = is_file ? synth_options_from_yaml(preset) : synth_preset(preset);
    if (args.has("seed")) options.seed = parse_seed(args.get("seed", ""));
    options.threads = args.get_threads(0);
    options.progress = true;

    const auto start = std::chrono::steady_clock::now();
    const SynthCheckpointResult r = write_synth_checkpoint(dir, options);
    const int merges = text::write_synth_tokenizer(dir, static_cast<int>(options.model.vocab_size));
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

    const ParamCounts pc = count_parameters(options.model, options.include_mtp);
    std::printf("synth: wrote %s (preset %s, seed %llu) in %.1f s\n", dir.c_str(), preset.c_str(),
                static_cast<unsigned long long>(options.seed), secs);
    std::printf("  tensors     %llu in %llu file(s)\n", static_cast<unsigned long long>(r.tensors),
                static_cast<unsigned long long>(r.files));
    std::printf("  bytes       %llu (%s)\n", static_cast<unsigned long long>(r.bytes),
                format_bytes(static_cast<double>(r.bytes)).c_str());
    std::printf("  parameters  %.4g total, %.4g active per token%s\n", static_cast<double>(pc.total),
                static_cast<double>(pc.active_per_token),
                options.include_mtp && options.model.num_nextn_predict_layers > 0 ? " (MTP layers included)" : "");
    std::printf(
        "  tokenizer   tokenizer.json: byte-level BPE, %d merges learned from an embedded text sample, "
        "DeepSeek's special tokens and chat template\n",
        merges);
    const EntropySample h = sample_fp8_entropy(dir, 4);
    if (h.tensors == 0) {
        std::printf("  FP8 weights none (unquantized config: BF16 linear weights)\n");
    } else {
        std::printf("  FP8 exponent entropy %.3f bits mean over %d weights (%.3f..%.3f; real checkpoints: 2.5-3)\n",
                    h.mean, h.tensors, h.min, h.max);
    }
    return 0;
}

}  // namespace ecf8
