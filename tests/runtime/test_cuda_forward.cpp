// The whole forward on the GPU (gpu label; skips without a device): the Model driven by the Pipeline on the
// CUDA backend, over the tiny synthetic model (one rank), batched prefill of two prompts then greedy steps:
//   - the CPU backend's forward over the same shard gives the same logits within float rounding
//     (max |gpu - cpu| <= 1e-4 * max(1, max |cpu|) per step; GEMM summation orders differ); with the FP8
//     GEMMs (cuBLASLt, activations rounded to e4m3) within 15% relative L2, and bit-exact between modes;
//   - --weights ecf8, raw and raw-copy give bit-identical logits, and so do shards whose plan put layer
//     weights in the pinned host tier;
//   - the decode of layer L+1 starts before the compute of layer L ends (trace, GPU-timed spans), and the
//     host waits once per step;
//   - routing stays on the device: the host tier's experts are read where they lie, with no copy;
//   - routed experts kept decoded (memory.decoded_experts_gb), decoded once at load and used in place, give
//     raw's logits bit for bit, some or all of them, and beside host-tier experts.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/cpu/sampling.h"
#include "runtime/cpu_backend.h"
#include "runtime/cuda_backend.h"
#include "runtime/model.h"
#include "runtime/pipeline.h"
#include "runtime/resident_weights.h"
#include "sharding/shard_io.h"
#include "tests/runtime/model_options.h"
#include "tests/runtime/trace_checks.h"
#include "tests/test_util.h"
#include "tests/tiny_model.h"

namespace ecf8 {
namespace {

constexpr int64_t kMaxSeqLen = 64;
constexpr int kLayers = 5;
constexpr int kDecodeSteps = 4;
const std::vector<std::vector<int32_t>> kPrompts = {{3, 141, 59, 26, 535}, {89, 79, 323}};

DeployConfig layout(const std::string& root, const std::string& name, double gpu_gb) {
    return test::tiny_layout(root, name, "test_cuda_forward", 1, gpu_gb, kMaxSeqLen, 2);
}

using Steps = std::vector<std::vector<float>>;
using StepInputs = std::vector<std::vector<std::vector<int32_t>>>;  // per step, per sequence

// Every step's logits for the given inputs: step 0 the prompts, then one token per sequence, either
// `inputs` (when given) or the greedy choice of the previous step. The inputs used are returned in *used.
template <class Forward>
Steps run_steps(Model& model, Forward&& forward, const StepInputs* inputs, StepInputs* used) {
    std::vector<KvCache> caches;
    for (size_t i = 0; i < kPrompts.size(); ++i) caches.push_back(model.new_cache());
    std::vector<KvCache*> ptrs;
    for (KvCache& c : caches) ptrs.push_back(&c);
    Steps logits;
    std::vector<std::vector<int32_t>> next = kPrompts;
    const int64_t vocab = model.config().vocab_size;
    for (int step = 0; step <= kDecodeSteps; ++step) {
        if (inputs != nullptr) next = (*inputs)[step];
        if (used != nullptr) used->push_back(next);
        logits.push_back(forward(next, ptrs));
        for (size_t s = 0; s < kPrompts.size(); ++s)
            next[s] = {static_cast<int32_t>(cpu::argmax(&logits.back()[s * vocab], vocab))};
    }
    return logits;
}

struct GpuRun {
    Steps logits;
    StepInputs inputs;
    WeightStoreStats stats;
    std::vector<uint64_t> host_waits;  // per step
    TraceData trace;
};

GpuRun run_gpu(const std::string& shards, WeightMode mode, bool fp8_gemm = false,
               const std::vector<bool>& keep_decoded = {}, ExpertArea area = ExpertArea::Full) {
    const ShardManifest m = ShardManifest::load(shards);
    Tracer tracer(0, true);
    CudaBackend backend(0);
    backend.set_tracer(&tracer);
    GpuRun out;
    {
        auto store = WeightStore::load(m, 0, backend, mode, nullptr, keep_decoded, area);
        ModelOptions options = test::model_options(kMaxSeqLen);
        options.gemm = fp8_gemm ? GemmMode::Fp8 : GemmMode::Fp32;
        Model model(m.model, m.world(0), nullptr, options, backend);
        Pipeline pipeline(model, *store, backend);
        out.logits = run_steps(
            model,
            [&](const auto& t, const auto& c) {
                const uint64_t before = backend.host_waits();
                std::vector<float> logits = pipeline.forward(t, c);
                out.host_waits.push_back(backend.host_waits() - before);
                return logits;
            },
            nullptr, &out.inputs);
        store->check_decode_errors();
        out.stats = store->stats();
    }
    backend.synchronize_all();
    backend.set_tracer(nullptr);
    out.trace = tracer.data();
    return out;
}

bool same_bits(const Steps& a, const Steps& b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
        if (a[i].size() != b[i].size() || std::memcmp(a[i].data(), b[i].data(), a[i].size() * sizeof(float)) != 0)
            return false;
    return true;
}

class CudaForward : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        if (CudaBackend::device_count() == 0) return;
        tmp_ = new test::TempDir("cuda_forward");
        const std::string root = tmp_->path().string();
        test::write_tiny_model(root + "/model", 11, kLayers);
        const ShardOptions so = test::quiet_shard_options();
        shard_checkpoint(layout(root, "device", 1.0), so);
        shard_checkpoint(layout(root, "offload", 0.019), so);  // part of the layer weights on the host tier
        // "mixed": routed experts on both tiers (at 0.019 GB every routed expert is on the host, so none
        // could be kept decoded).
        test::shard_largest_budget_with_host_tier([&](double gb) { return layout(root, "mixed", gb); });
    }
    static void TearDownTestSuite() {
        delete tmp_;
        tmp_ = nullptr;
    }
    void SetUp() override {
        if (CudaBackend::device_count() == 0) GTEST_SKIP() << "no CUDA device";
    }
    static std::string dir(const char* name) { return tmp_->path().string() + "/" + name; }
    static test::TempDir* tmp_;
};
test::TempDir* CudaForward::tmp_ = nullptr;

// Per step, with the CPU fed the GPU run's tokens: max |gpu - cpu| over max(1, max |cpu|), and the
// relative L2 error ||gpu - cpu|| / ||cpu||.
struct StepError {
    double max_abs, l2;
};
std::vector<StepError> errors_vs_cpu(const std::string& shards, const GpuRun& gpu) {
    const ShardManifest m = ShardManifest::load(shards);
    const auto resident = ResidentWeights::load(m, 0, nullptr);
    CpuBackend cpu_backend;
    Model model(m.model, m.world(0), nullptr, test::model_options(kMaxSeqLen), cpu_backend);
    const Steps cpu = run_steps(
        model, [&](const auto& t, const auto& c) { return model.forward(t, c, *resident); }, &gpu.inputs, nullptr);
    std::vector<StepError> errors;
    for (size_t step = 0; step < cpu.size(); ++step) {
        double scale = 1.0, worst = 0.0, diff2 = 0.0, ref2 = 0.0;
        for (size_t i = 0; i < cpu[step].size(); ++i) {
            const double d = double(gpu.logits[step][i]) - cpu[step][i];
            scale = std::max(scale, std::fabs(double(cpu[step][i])));
            worst = std::max(worst, std::fabs(d));
            diff2 += d * d;
            ref2 += double(cpu[step][i]) * cpu[step][i];
        }
        errors.push_back({worst / scale, std::sqrt(diff2 / std::max(ref2, 1e-30))});
    }
    return errors;
}

TEST_F(CudaForward, Fp8GemmPathIsExactBetweenModesAndCloseToTheCpu) {
    const GpuRun ecf8 = run_gpu(dir("device"), WeightMode::Ecf8, /*fp8_gemm=*/true);
    const GpuRun raw = run_gpu(dir("device"), WeightMode::Raw, /*fp8_gemm=*/true);
    EXPECT_TRUE(same_bits(ecf8.logits, raw.logits)) << "--gemm fp8: ecf8 and raw differ";
    const GpuRun fp32 = run_gpu(dir("device"), WeightMode::Ecf8);
    EXPECT_FALSE(same_bits(ecf8.logits, fp32.logits)) << "--gemm fp8 did not take the FP8 path";
    // Every linear's activations are rounded to e4m3 (3 mantissa bits: about 3.6% RMS relative error per
    // element, which a GEMM with unrelated weights passes on at the same relative size), about 9 linears
    // deep, against the CPU's FP32 activations: sqrt(9) x 3.6% ~ 11%. Bound: 15% relative L2 (H100: 6.0% to
    // 10.5% per step). A wrong scale, layout or operand order gives errors of order 100%.
    for (const StepError& e : errors_vs_cpu(dir("device"), ecf8)) {
        std::printf("fp8 gemm: relative L2 %.3g, max |gpu - cpu| / max |cpu| %.3g\n", e.l2, e.max_abs);
        EXPECT_LE(e.l2, 0.15);
    }
}

TEST_F(CudaForward, MatchesTheCpuForwardWithinRounding) {
    const GpuRun gpu = run_gpu(dir("device"), WeightMode::Ecf8);
    for (const std::vector<float>& step : gpu.logits)
        for (float v : step) ASSERT_TRUE(std::isfinite(v));
    const std::vector<StepError> errors = errors_vs_cpu(dir("device"), gpu);
    ASSERT_EQ(errors.size(), gpu.logits.size());
    for (size_t step = 0; step < errors.size(); ++step) {
        std::printf("step %zu: max |gpu - cpu| / max |cpu| = %.3g\n", step, errors[step].max_abs);
        EXPECT_LE(errors[step].max_abs, 1e-4) << "step " << step;
    }
}

TEST_F(CudaForward, Ecf8RawAndHostTierGiveBitIdenticalLogits) {
    const GpuRun ecf8 = run_gpu(dir("device"), WeightMode::Ecf8);
    const GpuRun raw = run_gpu(dir("device"), WeightMode::Raw);
    const GpuRun raw_copy = run_gpu(dir("device"), WeightMode::RawCopy);
    EXPECT_TRUE(same_bits(ecf8.logits, raw.logits)) << "--weights ecf8 and raw differ on the GPU";
    EXPECT_TRUE(same_bits(ecf8.logits, raw_copy.logits)) << "--weights ecf8 and raw-copy differ on the GPU";
    EXPECT_EQ(ecf8.stats.layers_decoded, uint64_t{kLayers} * (kDecodeSteps + 1));
    EXPECT_EQ(ecf8.stats.bytes_decoded, raw_copy.stats.bytes_decoded);
    EXPECT_LT(ecf8.stats.device_bytes, raw.stats.device_bytes);

    const ShardManifest offload = ShardManifest::load(dir("offload"));
    ASSERT_GT(offload.ranks[0].host_bytes, 0u) << "the overflow shards have no host-tier tensors";
    const GpuRun host = run_gpu(dir("offload"), WeightMode::Ecf8);
    EXPECT_TRUE(same_bits(ecf8.logits, host.logits)) << "the pinned host tier changes the logits";
    // Only non-expert host-tier weights go through staging (the copy lane); experts are read in place.
    bool dense_on_host = false;
    for (const ManifestTensor& t : offload.ranks[0].tensors) dense_on_host |= t.tier == Tier::Host && t.expert < 0;
    EXPECT_EQ(host.stats.bytes_copied > 0, dense_on_host);
    EXPECT_EQ(host.trace.find("copy", "copy L", 0).empty(), !dense_on_host);
    for (WeightMode mode : {WeightMode::Raw, WeightMode::RawCopy})
        EXPECT_TRUE(same_bits(ecf8.logits, run_gpu(dir("offload"), mode).logits)) << weight_mode_name(mode);
}

TEST_F(CudaForward, ExpertsKeptDecodedGiveBitIdenticalLogits) {
    const GpuRun raw = run_gpu(dir("device"), WeightMode::Raw);
    for (const std::string layout : {"device", "mixed"}) {
        const ShardManifest m = ShardManifest::load(dir(layout.c_str()));
        std::vector<bool> even, all;  // device-tier routed experts: the even-numbered ones, or every one
        bool host_expert = false;
        for (const ManifestTensor& t : m.ranks[0].tensors) {
            all.push_back(t.expert >= 0 && t.tier == Tier::Device);
            even.push_back(all.back() && t.expert % 2 == 0);
            host_expert = host_expert || (t.expert >= 0 && t.tier == Tier::Host);
        }
        ASSERT_GT(std::count(even.begin(), even.end(), true), 0) << layout;
        ASSERT_EQ(host_expert, layout == "mixed");
        const GpuRun ecf8 = run_gpu(dir(layout.c_str()), WeightMode::Ecf8);
        for (const std::vector<bool>* keep : {&even, &all}) {
            SCOPED_TRACE(layout + (keep == &all ? ", every device-tier expert kept" : ", even experts kept"));
            const GpuRun kept = run_gpu(dir(layout.c_str()), WeightMode::Ecf8, false, *keep);
            EXPECT_TRUE(same_bits(kept.logits, raw.logits));
            EXPECT_GT(kept.stats.device_bytes, ecf8.stats.device_bytes) << "kept experts hold their FP8 bytes";
            // With every expert kept there is nothing to decode into the expert area.
            if (layout == "device" && keep == &all) {
                EXPECT_LT(kept.stats.slot_bytes, ecf8.stats.slot_bytes);
            }
        }
    }
}

// memory.expert_area half on the GPU: groups 2 and 3 decode into the places of groups 0 and 1 once the compute
// stream has run those (an event the decode stream waits for), with the same logits and a smaller area; raw
// weights in the host tier (copied to the area when picked) too.
TEST_F(CudaForward, HalfExpertAreaGivesBitIdenticalLogits) {
    const GpuRun full = run_gpu(dir("device"), WeightMode::Ecf8);
    const GpuRun half = run_gpu(dir("device"), WeightMode::Ecf8, false, {}, ExpertArea::Half);
    EXPECT_TRUE(same_bits(full.logits, half.logits));
    EXPECT_LT(half.stats.slot_bytes, full.stats.slot_bytes);
    for (WeightMode mode : {WeightMode::Ecf8, WeightMode::Raw})
        EXPECT_TRUE(same_bits(full.logits, run_gpu(dir("offload"), mode, false, {}, ExpertArea::Half).logits))
            << weight_mode_name(mode);
}

TEST_F(CudaForward, DecodeOfNextLayerOverlapsComputeAndTheHostWaitsOncePerStep) {
    for (const char* layout : {"device", "offload"}) {
        SCOPED_TRACE(layout);
        const GpuRun p = run_gpu(dir(layout), WeightMode::Ecf8);
        test::expect_next_layer_decode_overlaps_compute(p.trace, 0, kLayers, kDecodeSteps + 1);
        EXPECT_FALSE(p.trace.find("decode", "decode L1 experts", 0).empty());
        // Routing stays on the device: one host wait per step, for the logits (Backend::host_waits, host lane).
        EXPECT_EQ(p.host_waits, std::vector<uint64_t>(kDecodeSteps + 1, 1));
        EXPECT_GE(p.trace.find("host", "host wait compute", 0).size(), size_t{kDecodeSteps + 1});
    }
}

}  // namespace
}  // namespace ecf8
