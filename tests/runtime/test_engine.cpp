// The serving core on the tiny model under mpirun (np 2): continuous batching through the Engine and the
// Pipeline with just-in-time ECF8 weights.
//   - Batch invariance: 16 concurrent requests of mixed prompt lengths (1 to 300 tokens) and max_new_tokens,
//     with a token budget that chunks the long prompts and mixes chunks with decode tokens, give each
//     request the greedy tokens, and bit-identical logits, of the same request run alone; raw FP8 weights
//     give bit-identical logits under the same schedule.
//   - KV exhaustion: a pool too small for the requests at once queues and preempts; every request finishes
//     with its tokens unchanged.
//   - Chunked prefill: a 4K-token prompt in chunks of 256 within the planned workspace (no allocation while
//     it runs), logits bit-identical to one chunk of 4K.
#include <gtest/gtest.h>
#include <mpi.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <random>
#include <set>

#include "kernels/cpu/sampling.h"
#include "runtime/cpu_backend.h"
#include "runtime/engine.h"
#include "runtime/mpi_communicator.h"
#include "runtime/pipeline.h"
#include "runtime/weight_store.h"
#include "tests/mpi/mpi_test_main.h"
#include "tests/runtime/model_options.h"
#include "tests/tiny_model.h"

namespace ecf8 {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kMaxModelLen = 4352;

// Rank 0 writes the tiny model and its shards for this world; every rank returns the shard directory.
std::string shards_dir() {
    static const std::string dir = [] {
        char buf[256] = {};
        if (mpi_test_session().rank() == 0) {
            std::snprintf(buf, sizeof(buf), "%s/ecf8_engine_%d", fs::temp_directory_path().c_str(), ::getpid());
            fs::remove_all(buf);
            test::write_tiny_model(std::string(buf) + "/model", 7);
            DeployConfig d =
                test::tiny_layout(buf, "shards", "test_engine", mpi_test_session().size(), 1.0, kMaxModelLen, 16);
            shard_checkpoint(d, test::quiet_shard_options());
        }
        MPI_Bcast(buf, sizeof(buf), MPI_CHAR, 0, MPI_COMM_WORLD);
        remove_after_tests(buf);
        return std::string(buf) + "/shards";
    }();
    return dir;
}

struct Served {
    std::map<std::string, std::vector<int32_t>> tokens;
    std::map<std::string, std::vector<std::vector<float>>> logits;  // per request, per sampled token
    std::map<std::string, FinishReason> finish;
    EngineStats stats;
    std::map<std::string, size_t> live;  // the backend's live bytes by tag once the model is built
    std::map<std::string, size_t> live_after;
    std::set<StepOutput> outputs;  // what this rank's steps asked for
};

struct ServeSetup {
    int64_t max_num_seqs = 16, max_tokens = 64, blocks = 0, block_tokens = 16;
    WeightMode mode = WeightMode::Ecf8;
    bool keep_logits = true;  // on_logits set: every step brings the logits back
    int sampling_threads = 0;
};

// Runs `requests` (submitted all at once) through an engine on every rank.
Served serve(const std::vector<Request>& requests, const ServeSetup& setup) {
    const int rank = mpi_test_session().rank();
    const ShardManifest m = ShardManifest::load(shards_dir());
    CpuBackend backend;
    auto comm = MpiCommunicator::world();
    auto control = MpiCommunicator::world();
    auto store = WeightStore::load(m, rank, backend, setup.mode, nullptr);
    ModelOptions o;
    o.max_seq_len = kMaxModelLen;
    o.max_step_tokens = setup.max_tokens;
    o.max_step_seqs = setup.max_num_seqs;
    o.kv = {core::KvDType::BF16, setup.block_tokens,
            setup.blocks > 0 ? setup.blocks : 16 * (kMaxModelLen / setup.block_tokens)};
    Served out;
    {
        Model model(m.model, m.world(rank), comm.get(), o, backend);
        Pipeline pipeline(model, *store, backend);
        out.live = backend.live_bytes_by_tag(MemoryKind::Device);
        Engine engine(
            model,
            [&](const auto& t, const auto& c, StepOutput output) {
                out.outputs.insert(output);
                return pipeline.step(t, c, output);
            },
            control.get());
        engine.sampling_threads = setup.sampling_threads;
        if (setup.keep_logits) {
            engine.on_logits = [&](const Request& r, const float* l, int64_t vocab) {
                out.logits[r.id].emplace_back(l, l + vocab);
            };
        }
        engine.on_finish = [&](const RequestResult& r) {
            out.tokens[r.id] = r.output;
            out.finish[r.id] = r.finish;
        };
        if (engine.is_scheduler()) {
            for (const Request& r : requests) engine.submit(r);
            while (engine.step()) {
            }
            engine.finish();
        } else {
            while (engine.step()) {
            }
        }
        out.stats = engine.stats();
        out.live_after = backend.live_bytes_by_tag(MemoryKind::Device);
    }
    return out;
}

// 16 requests: prompt lengths 1 to 300, max_new_tokens 1 to 9, greedy.
std::vector<Request> mixed_requests() {
    std::mt19937 rng(5);
    const int64_t lengths[16] = {1, 300, 17, 2, 64, 65, 150, 3, 299, 33, 8, 128, 5, 210, 1, 90};
    std::vector<Request> out;
    for (int i = 0; i < 16; ++i) {
        Request r;
        r.id = "r" + std::to_string(i);
        for (int64_t t = 0; t < lengths[i]; ++t) r.prompt.push_back(static_cast<int32_t>(rng() % 500));
        r.params.max_new_tokens = 1 + i % 9;
        out.push_back(r);
    }
    return out;
}

// The largest |a - b| over each step's largest |b|, over the steps (a and b of equal shape, else infinity).
double max_rel_diff(const std::vector<std::vector<float>>& a, const std::vector<std::vector<float>>& b) {
    if (a.size() != b.size()) return INFINITY;
    double worst = 0.0;
    for (size_t i = 0; i < a.size(); ++i) {
        if (a[i].size() != b[i].size()) return INFINITY;
        double top = 0.0, diff = 0.0;
        for (size_t j = 0; j < a[i].size(); ++j) {
            top = std::max(top, std::fabs(double(b[i][j])));
            diff = std::max(diff, std::fabs(double(a[i][j]) - double(b[i][j])));
        }
        worst = std::max(worst, diff / std::max(top, 1e-30));
    }
    return worst;
}

// Logits of one request batched with others against the request alone: bit-identical. Every op computes a
// row by itself: the linear layers sum in an order fixed by their shapes (kernels/cpu/dot_gemm.h), attention
// runs token by token, routing per token, and the all-reduce of two ranks adds two numbers.
TEST(Engine, ConcurrentRequestsGiveTheTokensAndLogitsOfEachRunAlone) {
    const std::vector<Request> requests = mixed_requests();
    const Served together = serve(requests, {});
    std::vector<Served> alone_runs;
    for (const Request& r : requests) alone_runs.push_back(serve({r}, {}));  // every rank takes part
    if (mpi_test_session().rank() != 0) return;
    ASSERT_EQ(together.tokens.size(), requests.size());
    // Chunks of the long prompts and decode tokens shared steps.
    EXPECT_LT(together.stats.steps, 16 * 3);
    for (size_t i = 0; i < requests.size(); ++i) {
        const Request& r = requests[i];
        SCOPED_TRACE(r.id);
        const Served& alone = alone_runs[i];
        EXPECT_EQ(together.tokens.at(r.id), alone.tokens.at(r.id));
        EXPECT_EQ(together.tokens.at(r.id).size(), static_cast<size_t>(r.params.max_new_tokens));
        EXPECT_TRUE(test::same_bits(together.logits.at(r.id), alone.logits.at(r.id)))
            << "logits differ by up to " << max_rel_diff(together.logits.at(r.id), alone.logits.at(r.id))
            << " of each step's largest";
    }
}

// Greedy steps bring back token ids, not logits, unless on_logits listens or a request samples: the same
// tokens either way. Ranks other than 0 never sample, so they always ask for ids.
TEST(Engine, GreedyStepsBringBackTokenIdsInsteadOfLogits) {
    const std::vector<Request> requests = mixed_requests();
    ServeSetup ids;
    ids.keep_logits = false;
    const Served fast = serve(requests, ids);
    const Served full = serve(requests, {});
    Request hot = requests[1];
    hot.params.temperature = 0.8f;
    const Served sampled = serve({hot}, ids);
    EXPECT_EQ(fast.outputs, std::set<StepOutput>{StepOutput::GreedyIds});
    if (mpi_test_session().rank() != 0) {
        EXPECT_EQ(full.outputs, std::set<StepOutput>{StepOutput::GreedyIds});
        EXPECT_EQ(sampled.outputs, std::set<StepOutput>{StepOutput::GreedyIds});
        return;
    }
    EXPECT_EQ(full.outputs, std::set<StepOutput>{StepOutput::Logits});
    EXPECT_TRUE(sampled.outputs.count(StepOutput::Logits));
    EXPECT_TRUE(fast.logits.empty());
    for (const Request& r : requests) EXPECT_EQ(fast.tokens.at(r.id), full.tokens.at(r.id)) << r.id;
}

// Sampled requests (temperature, top-p, seeds) in one batch: rank 0 draws the step's rows on 3 threads, and
// each request gets the tokens it gets alone, each drawn by sample_top_p from that step's logits with the
// generated-token index as counter.
TEST(Engine, SampledRequestsGiveTheTokensOfEachRunAlone) {
    std::vector<Request> requests = mixed_requests();
    requests.resize(8);
    const float top_ps[] = {1.0f, 0.9f, 0.5f, 0.99f};
    for (size_t i = 0; i < requests.size(); ++i) {
        requests[i].params.temperature = 0.6f + 0.2f * static_cast<float>(i % 3);
        requests[i].params.top_p = top_ps[i % 4];
        requests[i].params.seed = 100 + i;
        requests[i].params.max_new_tokens = 6;
    }
    ServeSetup pool;
    pool.sampling_threads = 3;  // workers draw rows too, whatever cores this machine has
    const Served together = serve(requests, pool);
    std::vector<Served> alone_runs;
    for (const Request& r : requests) alone_runs.push_back(serve({r}, {}));
    if (mpi_test_session().rank() != 0) return;
    for (size_t i = 0; i < requests.size(); ++i) {
        const Request& r = requests[i];
        SCOPED_TRACE(r.id);
        const std::vector<int32_t>& got = together.tokens.at(r.id);
        EXPECT_EQ(got, alone_runs[i].tokens.at(r.id));
        const auto& steps = together.logits.at(r.id);
        ASSERT_EQ(steps.size(), got.size());
        for (size_t j = 0; j < got.size(); ++j) {
            EXPECT_EQ(got[j], cpu::sample_top_p(steps[j].data(), static_cast<int64_t>(steps[j].size()),
                                                r.params.temperature, r.params.top_p, r.params.seed, j))
                << "token " << j;
        }
    }
}

TEST(Engine, RawWeightsGiveBitIdenticalLogitsUnderTheSameSchedule) {
    const std::vector<Request> requests = mixed_requests();
    const Served ecf8 = serve(requests, {});
    ServeSetup raw;
    raw.mode = WeightMode::Raw;
    const Served fp8 = serve(requests, raw);
    if (mpi_test_session().rank() != 0) return;
    for (const Request& r : requests) EXPECT_TRUE(test::same_bits(ecf8.logits.at(r.id), fp8.logits.at(r.id))) << r.id;
}

// Eight requests of one block of prompt each are admitted at once into a pool of 12 blocks; as they
// generate, each needs more blocks than are free, so the newest are preempted and later prefilled again
// from their prompt and outputs. Every request ends with the tokens it gets in a pool with room for all.
TEST(Engine, RunningOutOfKvBlocksQueuesAndPreemptsWithoutChangingTokens) {
    std::vector<Request> requests;
    std::mt19937 rng(3);
    for (int i = 0; i < 8; ++i) {
        Request r;
        r.id = "p" + std::to_string(i);
        for (int t = 0; t < 16; ++t) r.prompt.push_back(static_cast<int32_t>(rng() % 500));
        r.params.max_new_tokens = 40;
        requests.push_back(r);
    }
    ServeSetup tight;
    tight.blocks = 12;  // 192 tokens; the eight requests reach 56 tokens (4 blocks) each
    tight.max_num_seqs = 8;
    const Served small = serve(requests, tight);
    const Served roomy = serve(requests, {});
    if (mpi_test_session().rank() != 0) return;
    ASSERT_EQ(small.tokens.size(), requests.size());
    EXPECT_GT(small.stats.preemptions, 0);
    EXPECT_EQ(roomy.stats.preemptions, 0);
    EXPECT_LE(small.stats.peak_blocks_used, 12);
    for (const Request& r : requests) {
        EXPECT_EQ(small.tokens.at(r.id), roomy.tokens.at(r.id)) << r.id;
        EXPECT_EQ(small.finish.at(r.id), FinishReason::Length) << r.id;
        EXPECT_TRUE(test::same_bits(small.logits.at(r.id), roomy.logits.at(r.id))) << r.id;
    }
}

TEST(Engine, AFourThousandTokenPromptIsPrefilledInChunksWithinThePlannedWorkspace) {
    Request r;
    r.id = "long";
    std::mt19937 rng(9);
    for (int i = 0; i < 4096; ++i) r.prompt.push_back(static_cast<int32_t>(rng() % 500));
    r.params.max_new_tokens = 3;
    ServeSetup chunked;
    chunked.max_tokens = 256;
    chunked.max_num_seqs = 4;
    chunked.block_tokens = 64;
    const Served a = serve({r}, chunked);
    ServeSetup whole = chunked;
    whole.max_tokens = 4096;
    const Served b = serve({r}, whole);
    // No allocation while the requests ran: the workspace is what the model allocated up front, which is
    // the plan's (test_pipeline checks that equality).
    EXPECT_EQ(a.live, a.live_after);
    if (mpi_test_session().rank() != 0) return;
    EXPECT_GE(a.stats.steps, 4096 / 256 + 2);  // 16 chunks, then the decode steps
    EXPECT_EQ(a.tokens.at("long"), b.tokens.at("long"));
    EXPECT_TRUE(test::same_bits(a.logits.at("long"), b.logits.at("long")));
    const ShardManifest m = ShardManifest::load(shards_dir());
    const WorkspacePlan plan = plan_workspace(
        m.model, m.world(0),
        {chunked.max_tokens, chunked.max_num_seqs, chunked.max_num_seqs, kMaxModelLen, chunked.block_tokens});
    EXPECT_EQ(
        a.live.at("activations") + a.live.at("dequant_scratch") + a.live.at("gemm_scratch") + a.live.at("rope_table"),
        plan.device_bytes());
}

}  // namespace
}  // namespace ecf8
