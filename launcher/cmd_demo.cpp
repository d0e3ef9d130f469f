// `ecf8 demo`: the codec on generated DeepSeek-like weights. Writes a small checkpoint file with FP8
// weights and their 128x128 F32 block scales, BF16 embeddings and norms, compresses it, verifies every
// tensor bit-exactly, decompresses it and prints the per-tensor table.
#include <sys/stat.h>

#include <cstdio>
#include <cstring>

#include "codec/container.h"
#include "common/error.h"
#include "common/log.h"
#include "launcher/args.h"
#include "launcher/commands.h"
#include "launcher/inspect.h"
#include "sharding/synth_weights.h"

namespace ecf8 {
namespace {

struct DemoTensor {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    std::vector<uint8_t> bytes;
};

void add_fp8(std::vector<DemoTensor>& out, const std::string& name, int64_t rows, int64_t cols, SynthSpec spec) {
    Fp8BlockQuantized q = synth_fp8_block_quantized(rows, cols, spec);
    out.push_back({name + ".weight", DType::F8_E4M3, {rows, cols}, std::move(q.weight)});
    std::vector<uint8_t> scales(q.scale_inv.size() * 4);
    std::memcpy(scales.data(), q.scale_inv.data(), scales.size());
    out.push_back(
        {name + ".weight_scale_inv", DType::F32, {fp8_scale_blocks(rows), fp8_scale_blocks(cols)}, std::move(scales)});
}

void add_bf16(std::vector<DemoTensor>& out, const std::string& name, std::vector<int64_t> shape, SynthSpec spec) {
    size_t n = 1;
    for (int64_t d : shape) n *= static_cast<size_t>(d);
    std::vector<uint16_t> v = synth_bf16(n, spec);
    std::vector<uint8_t> bytes(n * 2);
    std::memcpy(bytes.data(), v.data(), bytes.size());
    out.push_back({name, DType::BF16, std::move(shape), std::move(bytes)});
}

// A miniature of one DeepSeek-V3 MoE layer: MLA projections, two routed experts, a shared expert.
std::vector<DemoTensor> make_demo_tensors(uint64_t seed) {
    std::vector<DemoTensor> t;
    SynthSpec spec;
    spec.seed = seed;
    const int64_t hidden = 1024, inter = 512;
    add_bf16(t, "model.embed_tokens.weight", {4096, hidden}, spec);
    const std::string p = "model.layers.0.";
    add_bf16(t, p + "input_layernorm.weight", {hidden}, {WeightDist::Gaussian, 0.05, 5, seed + 1});
    int k = 2;
    for (auto [name, rows, cols] : std::vector<std::tuple<std::string, int64_t, int64_t>>{
             {"self_attn.q_a_proj", 384, hidden},
             {"self_attn.q_b_proj", 1536, 384},
             {"self_attn.kv_a_proj_with_mqa", 320, hidden},
             {"self_attn.kv_b_proj", 2048, 256},
             {"self_attn.o_proj", hidden, 1024},
             {"mlp.experts.0.gate_proj", inter, hidden},
             {"mlp.experts.0.up_proj", inter, hidden},
             {"mlp.experts.0.down_proj", hidden, inter},
             {"mlp.experts.1.gate_proj", inter, hidden},
             {"mlp.experts.1.up_proj", inter, hidden},
             {"mlp.experts.1.down_proj", hidden, inter},
             {"mlp.shared_experts.gate_proj", inter, hidden},
             {"mlp.shared_experts.up_proj", inter, hidden},
             {"mlp.shared_experts.down_proj", hidden, inter},
         }) {
        SynthSpec s = spec;
        s.seed = seed + k++;
        s.dist = (k % 3 == 0) ? WeightDist::Gaussian : WeightDist::StudentT;
        add_fp8(t, p + name, rows, cols, s);
    }
    add_bf16(t, p + "mlp.gate.weight", {16, hidden}, {WeightDist::Gaussian, 0.02, 5, seed + 99});
    return t;
}

}  // namespace

int cmd_demo(const CommandArgs& argv) {
    Args args(argv, {"out", "seed", "threads"}, {}, "demo");
    args.expect_positional(0, "ecf8 demo [--out DIR] [--seed S]");
    const std::string dir = args.get("out", "out/demo");
    const uint64_t seed = static_cast<uint64_t>(args.get_int("seed", 0));
    const int threads = args.get_threads(0);
    for (size_t pos = 0; (pos = dir.find('/', pos + 1)) != std::string::npos;) mkdir(dir.substr(0, pos).c_str(), 0755);
    mkdir(dir.c_str(), 0755);
    struct stat st {};
    ECF8_CHECK(stat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode), "cannot create output directory " << dir);

    const std::string original = dir + "/demo.safetensors", compressed = dir + "/demo.ecf8.safetensors",
                      restored = dir + "/demo.restored.safetensors";
    std::vector<DemoTensor> tensors = make_demo_tensors(seed);
    std::vector<TensorView> views;
    for (const DemoTensor& t : tensors) views.push_back({t.name, t.dtype, t.shape, t.bytes.data(), t.bytes.size()});
    write_safetensors(original, {{"format", "pt"}, {"generator", "ecf8 demo"}}, views);
    LOG_INFO("[1/4] wrote " << original << " (" << tensors.size() << " tensors, seed " << seed << ")");

    CompressOptions opt;
    opt.threads = threads;
    compress_file(original, compressed, opt);
    LOG_INFO("[2/4] compressed -> " << compressed);

    auto problems = verify_files(original, compressed, threads);
    for (const auto& p : problems) LOG_ERROR("MISMATCH " << p);
    ECF8_CHECK(problems.empty(), "verification failed: " << problems.size() << " tensor(s) differ");
    LOG_INFO("[3/4] verified: every tensor decodes bit-identically");

    decompress_file(compressed, restored, threads, false);
    SafetensorsFile a = SafetensorsFile::open(original), b = SafetensorsFile::open(restored);
    for (const TensorInfo& t : a.tensors()) {
        const TensorInfo& u = b.get(t.name);
        ECF8_CHECK(t.nbytes() == u.nbytes() && std::memcmp(a.tensor_data(t), b.tensor_data(u), t.nbytes()) == 0,
                   "decompressed tensor '" << t.name << "' differs");
    }
    LOG_INFO("[4/4] decompressed -> " << restored << ": byte-identical tensors\n");
    print_inspect_table(compressed, inspect_stats(compressed, threads));
    return 0;
}

}  // namespace ecf8
