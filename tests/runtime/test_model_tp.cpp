// Tensor parallelism under mpirun (-np 2 and 4): the forward pass split over the ranks, with and without
// expert parallelism, agrees with the same model on one rank to 1e-4 relative, and greedy decoding picks
// identical tokens for 16 steps. Rank 0 writes the tiny synthetic checkpoint and the shards; every rank
// also runs the one-rank model locally as the baseline.
#include <gtest/gtest.h>
#include <mpi.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "kernels/cpu/sampling.h"
#include "runtime/cpu_backend.h"
#include "runtime/model.h"
#include "runtime/mpi_communicator.h"
#include "runtime/resident_weights.h"
#include "sharding/shard_io.h"
#include "tests/mpi/mpi_test_main.h"
#include "tests/runtime/model_options.h"
#include "tests/tiny_model.h"

namespace ecf8 {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kMaxSeqLen = 64;
constexpr double kTolerance = 1e-4;
constexpr int kGreedySteps = 16;

// A directory every rank agrees on: rank 0 picks it and broadcasts it.
std::string shared_dir() {
    char buf[256] = {};
    if (mpi_test_session().rank() == 0) {
        std::snprintf(buf, sizeof(buf), "%s/ecf8_model_tp_%d", fs::temp_directory_path().c_str(), ::getpid());
    }
    MPI_Bcast(buf, sizeof(buf), MPI_CHAR, 0, MPI_COMM_WORLD);
    return buf;
}

DeployConfig layout(const std::string& root, int tp, int ep) {
    DeployConfig d;
    d.source = "test";
    d.model = root + "/model";
    d.output = root + "/shards_tp" + std::to_string(tp) + "_ep" + std::to_string(ep);
    d.parallel.tensor_parallel_size = tp;
    d.parallel.expert_parallel_size = ep;
    d.parallel.nodes = 1;
    d.parallel.gpus_per_node = tp;
    return d;
}

// Rank 0 writes the checkpoint and the shards of every layout used below.
void prepare(const std::string& root, const std::vector<std::pair<int, int>>& layouts) {
    if (mpi_test_session().rank() == 0) {
        fs::remove_all(root);
        test::write_tiny_model(root + "/model", 5);
        for (auto [tp, ep] : layouts) shard_checkpoint(layout(root, tp, ep), test::quiet_shard_options());
    }
    MPI_Barrier(MPI_COMM_WORLD);
}

// Greedy generation from a batch of prompts: the logits of every step and the tokens picked.
struct Generation {
    std::vector<std::vector<float>> logits;
    std::vector<std::vector<int32_t>> tokens;
};

Generation generate(Model& model, const WeightSource& w, const std::vector<std::vector<int32_t>>& prompts) {
    Generation run;
    std::vector<KvCache> caches;
    for (size_t i = 0; i < prompts.size(); ++i) caches.push_back(model.new_cache());
    std::vector<KvCache*> ptrs;
    for (KvCache& c : caches) ptrs.push_back(&c);
    std::vector<std::vector<int32_t>> next = prompts;
    const int64_t vocab = model.config().vocab_size;
    for (int step = 0; step < kGreedySteps; ++step) {
        run.logits.push_back(model.forward(next, ptrs, w));
        std::vector<int32_t> picked;
        for (size_t s = 0; s < prompts.size(); ++s) {
            picked.push_back(static_cast<int32_t>(cpu::argmax(&run.logits.back()[s * vocab], vocab)));
            next[s] = {picked.back()};
        }
        run.tokens.push_back(picked);
    }
    return run;
}

double max_relative_error(const std::vector<float>& got, const std::vector<float>& want) {
    double err = 0, scale = 0;
    for (size_t i = 0; i < want.size(); ++i) {
        err = std::max(err, std::fabs(double(got[i]) - double(want[i])));
        scale = std::max(scale, std::fabs(double(want[i])));
    }
    return err / scale;
}

TEST(ModelTensorParallel, AgreesWithOneRankWithAndWithoutExpertParallelism) {
    const int world = mpi_test_session().size();
    const int rank = mpi_test_session().rank();
    const std::string root = shared_dir();
    std::vector<std::pair<int, int>> layouts = {{1, 1}, {world, 1}, {world, world}};
    if (world > 2) layouts.push_back({world, 2});  // experts split over pairs of ranks
    prepare(root, layouts);
    const std::vector<std::vector<int32_t>> prompts = {{3, 141, 59, 26, 535}, {89, 79, 323}};

    // The baseline: the whole model on this rank alone.
    const ShardManifest one = ShardManifest::load(layout(root, 1, 1).output);
    const auto one_weights = ResidentWeights::load(one, 0, nullptr);
    CpuBackend backend;
    Model one_model(one.model, one.world(0), nullptr, test::model_options(kMaxSeqLen), backend);
    const Generation base = generate(one_model, *one_weights, prompts);

    auto comm = MpiCommunicator::world();
    for (size_t li = 1; li < layouts.size(); ++li) {
        const auto [tp, ep] = layouts[li];
        SCOPED_TRACE("tp " + std::to_string(tp) + " ep " + std::to_string(ep));
        const ShardManifest m = ShardManifest::load(layout(root, tp, ep).output);
        ASSERT_EQ(m.world_size(), world);
        const auto weights = ResidentWeights::load(m, rank, nullptr);
        Model model(m.model, m.world(rank), comm.get(), test::model_options(kMaxSeqLen), backend);
        const Generation run = generate(model, *weights, prompts);
        double worst = 0;
        for (int step = 0; step < kGreedySteps; ++step) {
            const double e = max_relative_error(run.logits[step], base.logits[step]);
            worst = std::max(worst, e);
            EXPECT_LT(e, kTolerance) << "step " << step;
            EXPECT_EQ(run.tokens[step], base.tokens[step]) << "step " << step;
        }
        if (rank == 0)
            std::printf("tp %d ep %d: worst relative logit difference from one rank %.3g over %d greedy steps\n", tp,
                        ep, worst, kGreedySteps);
        // Every rank holds the same gathered logits, bit for bit.
        std::vector<float> rank0 = run.logits.back();
        MPI_Bcast(rank0.data(), static_cast<int>(rank0.size()), MPI_FLOAT, 0, MPI_COMM_WORLD);
        EXPECT_EQ(rank0, run.logits.back());
    }
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0) fs::remove_all(root);
}

}  // namespace
}  // namespace ecf8
