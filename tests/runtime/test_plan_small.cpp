// The plan is what the runtime allocates, on a checkpoint with the `small` preset's dimensions (hidden 2048,
// 16 MLA heads, 64 routed experts of width 1024, vocabulary 32768) cut to two layers, one dense and one MoE,
// so that writing it takes about a minute: under mpirun -np 2 (tp 2, ep 2), per rank, ECF8 and raw weights
// all on the device, and ECF8 with routed experts in the host tier (tests/runtime/plan_checks.h).
// test_pipeline runs the same check on tiny.
#include <gtest/gtest.h>
#include <mpi.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "sharding/synth_checkpoint.h"
#include "tests/mpi/mpi_test_main.h"
#include "tests/runtime/plan_checks.h"
#include "tests/tiny_model.h"

namespace ecf8 {
namespace {

namespace fs = std::filesystem;

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

DeployConfig small_layout(const std::string& root, const std::string& name, int world, double gpu_gb) {
    DeployConfig d = test::tiny_layout(root, name, "test_plan_small", world, gpu_gb, 128, 2);
    d.memory.gpu_memory_utilization = 1.0;  // the budgets below are exact
    d.memory.cpu_offload_gb = 1.0;
    return d;
}

// The device bytes a rank needs besides its KV pool when the plan of shards m (all on the device) holds its
// weights in `format`.
uint64_t device_need(const ShardManifest& m, const DeployConfig& d, int rank, WeightFormat format) {
    const RankMemory p = m.rank_plan(d, rank, format);
    return p.device_weight_bytes + p.scratch_bytes + p.workspace_bytes;
}

// Waits for rank 0 without spinning a core that rank 0's synthesis needs (MPI_Barrier busy-polls).
void quiet_barrier() {
    MPI_Request req;
    MPI_Ibarrier(MPI_COMM_WORLD, &req);
    for (int done = 0; !done; usleep(20000)) MPI_Test(&req, &done, MPI_STATUS_IGNORE);
}

// Rank 0 writes the model, then "device": every weight on the device, in ECF8 and in FP8, with room for 8 KV
// blocks on the tightest rank, and "offload": 48 MiB less than ECF8's weights and those 8 blocks need, so
// that routed experts go to the host tier. Returns both budgets in GiB (every rank).
std::pair<double, double> prepare(const std::string& root, int world) {
    double gb[2] = {0, 0};
    if (mpi_test_session().rank() == 0) {
        fs::remove_all(root);
        SynthCheckpointOptions o = synth_preset("small");
        o.model.num_hidden_layers = 2;  // first_k_dense_replace 1: one dense layer, one MoE layer
        o.include_mtp = false;
        o.threads = 2;
        o.progress = false;
        write_synth_checkpoint(root + "/model", o);
        const ShardOptions so = test::quiet_shard_options();
        const DeployConfig wide = small_layout(root, "wide", world, 8.0);  // for the stored sizes
        shard_checkpoint(wide, so);
        const ShardManifest m = ShardManifest::load(wide.output);
        uint64_t ecf8 = 0, fp8 = 0;
        for (int r = 0; r < world; ++r) {
            ecf8 = std::max(ecf8, device_need(m, wide, r, WeightFormat::Ecf8));
            fp8 = std::max(fp8, device_need(m, wide, r, WeightFormat::Fp8));
        }
        const uint64_t kv8 =
            8 * kv_block_bytes(m.model, {parse_kv_dtype(wide.kv_cache.dtype), wide.kv_cache.block_size, 1});
        gb[0] = double(std::max(ecf8, fp8) + kv8) / kGiB;
        gb[1] = double(ecf8 + kv8) / kGiB - 48.0 / 1024.0;
        fs::remove_all(wide.output);
        shard_checkpoint(small_layout(root, "device", world, gb[0]), so);
        shard_checkpoint(small_layout(root, "offload", world, gb[1]), so);
    }
    quiet_barrier();
    MPI_Bcast(gb, 2, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    return {gb[0], gb[1]};
}

TEST(PlanSmall, PlanEqualsTheAllocations) {
    const int rank = mpi_test_session().rank(), world = mpi_test_session().size();
    char buf[256] = {};
    if (rank == 0)
        std::snprintf(buf, sizeof(buf), "%s/ecf8_plan_small_%d", fs::temp_directory_path().c_str(), getpid());
    MPI_Bcast(buf, sizeof(buf), MPI_CHAR, 0, MPI_COMM_WORLD);
    const std::string root = buf;
    remove_after_tests(root);
    const auto [device_gb, offload_gb] = prepare(root, world);
    const std::vector<int32_t> prompt = {3, 141, 59, 26, 535, 8979, 3238, 4626};
    {
        SCOPED_TRACE("device");
        const DeployConfig d = small_layout(root, "device", world, device_gb);
        const ShardManifest m = ShardManifest::load(d.output);
        ASSERT_EQ(m.rank_plan(d, rank, WeightFormat::Ecf8).host_weight_bytes, 0u);
        test::expect_plan_equals_allocations(m, d, rank, WeightMode::Ecf8, prompt);
        test::expect_plan_equals_allocations(m, d, rank, WeightMode::Raw, prompt);
    }
    {
        SCOPED_TRACE("offload");
        const DeployConfig d = small_layout(root, "offload", world, offload_gb);
        const ShardManifest m = ShardManifest::load(d.output);
        ASSERT_GT(m.rank_plan(d, rank, WeightFormat::Ecf8).host_weight_bytes, 0u);
        test::expect_plan_equals_allocations(m, d, rank, WeightMode::Ecf8, prompt);
    }
}

}  // namespace
}  // namespace ecf8
