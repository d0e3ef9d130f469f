// The runtime's forward pass (runtime/model.h on the CPU kernels) at tensor_parallel_size 1 against the
// independent float64 reference (tests/reference) on the tiny synthetic checkpoint: logits of a batched
// prefill and of incremental decode steps agree to 1e-4 relative (to the row's largest magnitude).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "common/error.h"
#include "runtime/cpu_backend.h"
#include "runtime/model.h"
#include "runtime/resident_weights.h"
#include "sharding/shard_io.h"
#include "sharding/synth_checkpoint.h"
#include "tests/reference/deepseek_reference.h"
#include "tests/runtime/model_options.h"
#include "tests/tiny_model.h"

namespace ecf8 {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kMaxSeqLen = 512;  // > the tiny model's original 256 positions: YaRN is on
constexpr double kTolerance = 1e-4;
constexpr double kBf16Tolerance = 1e-2;

// max |a - b| / max |b| over one row of logits.
double row_error(const float* got, const std::vector<double>& want, size_t offset, size_t n) {
    double err = 0, scale = 0;
    for (size_t i = 0; i < n; ++i) {
        err = std::max(err, std::fabs(double(got[i]) - want[offset + i]));
        scale = std::max(scale, std::fabs(want[offset + i]));
    }
    return err / scale;
}

class ModelReference : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        root_ = fs::temp_directory_path() / ("ecf8_model_ref_" + std::to_string(::getpid()));
        fs::remove_all(root_);
        test::write_tiny_model((root_ / "model").string(), 11);
        DeployConfig d;
        d.source = "test";
        d.model = (root_ / "model").string();
        d.output = (root_ / "shards").string();
        shard_checkpoint(d, test::quiet_shard_options());
    }
    static void TearDownTestSuite() { fs::remove_all(root_); }
    static fs::path root_;
};

fs::path ModelReference::root_;

// The forward with a KV cache of `dtype` against the float64 reference, within `tolerance`.
void expect_matches_reference(const fs::path& root, core::KvDType dtype, double tolerance) {
    const ShardManifest manifest = ShardManifest::load((root / "shards").string());
    const auto weights = ResidentWeights::load(manifest, 0, nullptr);
    CpuBackend backend;
    Model model(manifest.model, manifest.world(0), nullptr, test::model_options(kMaxSeqLen, 4, dtype), backend);
    const auto ref = reference::ReferenceModel::load((root / "model").string(), kMaxSeqLen);
    const size_t vocab = static_cast<size_t>(manifest.model.vocab_size);

    // Two sequences of different lengths in one batch, every position's logits.
    const std::vector<std::vector<int32_t>> prompts = {{1, 17, 300, 5, 999, 42}, {7, 8, 1023}};
    std::vector<KvCache> caches;
    for (int i = 0; i < 2; ++i) caches.push_back(model.new_cache());
    std::vector<KvCache*> ptrs = {&caches[0], &caches[1]};
    const std::vector<float> logits = model.forward(prompts, ptrs, *weights, /*all_positions=*/true);
    ASSERT_EQ(logits.size(), (prompts[0].size() + prompts[1].size()) * vocab);
    std::vector<reference::KVCache> ref_caches = {ref.new_cache(), ref.new_cache()};
    size_t row = 0;
    double worst = 0;
    for (size_t s = 0; s < prompts.size(); ++s) {
        const std::vector<double> want = ref.forward(prompts[s], 0, ref_caches[s]);
        for (size_t t = 0; t < prompts[s].size(); ++t, ++row) {
            const double e = row_error(&logits[row * vocab], want, t * vocab, vocab);
            worst = std::max(worst, e);
            EXPECT_LT(e, tolerance) << "seq " << s << " pos " << t;
        }
    }

    // Decode steps: one new token per sequence, last-position logits only.
    for (int step = 0; step < 4; ++step) {
        const std::vector<std::vector<int32_t>> next = {{int32_t(100 + step)}, {int32_t(500 + 3 * step)}};
        const std::vector<float> out = model.forward(next, ptrs, *weights);
        ASSERT_EQ(out.size(), 2 * vocab);
        for (size_t s = 0; s < 2; ++s) {
            const std::vector<double> want = ref.forward(next[s], ref_caches[s].length, ref_caches[s]);
            const double e = row_error(&out[s * vocab], want, 0, vocab);
            worst = std::max(worst, e);
            EXPECT_LT(e, tolerance) << "step " << step << " seq " << s;
        }
    }
    std::printf("KV cache %s: worst relative logit error against the float64 reference: %.3g (tolerance %.0g)\n",
                kv_dtype_name(dtype), worst, tolerance);
    EXPECT_EQ(caches[0].length, 10);
    EXPECT_EQ(caches[1].length, 7);
}

TEST_F(ModelReference, Tp1MatchesFloat64Reference) { expect_matches_reference(root_, core::KvDType::F32, kTolerance); }

// A BF16 cache rounds each latent and rope key to 8 significant bits (relative error up to 2^-9), which the
// attention scores and the weighted latents carry to the logits.
TEST_F(ModelReference, Bf16KvCacheStaysWithinItsToleranceOfTheFloat64Reference) {
    expect_matches_reference(root_, core::KvDType::BF16, kBf16Tolerance);
}

TEST_F(ModelReference, BadTokensAndOverlongSequencesAreErrors) {
    const ShardManifest manifest = ShardManifest::load((root_ / "shards").string());
    const auto weights = ResidentWeights::load(manifest, 0, nullptr);
    CpuBackend backend;
    Model model(manifest.model, manifest.world(0), nullptr, test::model_options(8), backend);
    KvCache cache = model.new_cache();
    std::vector<KvCache*> ptrs = {&cache};
    EXPECT_THROW(model.forward({{int32_t(manifest.model.vocab_size)}}, ptrs, *weights), Error);
    EXPECT_THROW(model.forward({std::vector<int32_t>(9, 1)}, ptrs, *weights), Error);
    EXPECT_THROW(weights->get("no.such.tensor"), Error);
}

// The final norm's weight replaced by NaN (BF16 0x7FC0): the step's logits are NaN, and the step fails
// naming them instead of sampling from them.
class NanFinalNorm : public WeightSource {
public:
    explicit NanFinalNorm(const WeightSource& inner, int64_t dim) : inner_(inner), nan_(dim, 0x7FC0) {}
    WeightView get(const std::string& name) const override {
        WeightView v = inner_.get(name);
        if (name == "model.norm.weight") v.data = reinterpret_cast<const uint8_t*>(nan_.data());
        return v;
    }

private:
    const WeightSource& inner_;
    std::vector<uint16_t> nan_;
};

TEST_F(ModelReference, NonFiniteLogitsStopTheStep) {
    const ShardManifest manifest = ShardManifest::load((root_ / "shards").string());
    const auto weights = ResidentWeights::load(manifest, 0, nullptr);
    const NanFinalNorm nan_norm(*weights, manifest.model.hidden_size);
    CpuBackend backend;
    Model model(manifest.model, manifest.world(0), nullptr, test::model_options(8), backend);
    KvCache cache = model.new_cache();
    std::vector<KvCache*> ptrs = {&cache};
    try {
        model.forward({{1, 2}}, ptrs, nan_norm);
        ADD_FAILURE() << "NaN logits were returned";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("logits are not finite"), std::string::npos) << e.what();
    }
}

}  // namespace
}  // namespace ecf8
