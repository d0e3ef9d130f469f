// The just-in-time pipeline under mpirun (-np 2 and 4) on a 5-layer tiny synthetic model:
//   - lossless: --weights ecf8, raw and raw-copy give bit-identical logits, and equal the plain
//     forward over weights decoded at load (ResidentWeights), bit for bit;
//   - overflow: shards whose plan put layer weights in the pinned host tier give the same logits bit for bit;
//   - overlap: in the trace, for every layer L >= 1 the decode of layer L+1 starts before the compute of
//     layer L ends;
//   - only the routed experts that routing picked are decoded, exactly those, layer by layer;
//   - a corrupt blob stops the load with an error naming the file and the tensor.
#include <gtest/gtest.h>
#include <mpi.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include "common/error.h"
#include "kernels/cpu/sampling.h"
#include "runtime/cpu_backend.h"
#include "runtime/mpi_communicator.h"
#include "runtime/pipeline.h"
#include "runtime/resident_weights.h"
#include "sharding/shard_io.h"
#include "tests/mpi/mpi_test_main.h"
#include "tests/runtime/trace_checks.h"
#include "tests/tiny_model.h"

namespace ecf8 {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kMaxSeqLen = 64;
constexpr int kLayers = 5;
constexpr int kDecodeSteps = 4;

std::string shared_dir() {
    char buf[256] = {};
    if (mpi_test_session().rank() == 0)
        std::snprintf(buf, sizeof(buf), "%s/ecf8_pipeline_%d", fs::temp_directory_path().c_str(), ::getpid());
    MPI_Bcast(buf, sizeof(buf), MPI_CHAR, 0, MPI_COMM_WORLD);
    return buf;
}

DeployConfig layout(const std::string& root, const std::string& name, int world, double gpu_gb) {
    return test::tiny_layout(root, name, "test_pipeline", world, gpu_gb, kMaxSeqLen, 2);
}

uint64_t host_tensors(const ShardManifest& m) {
    uint64_t n = 0;
    for (const ManifestRank& r : m.ranks)
        for (const ManifestTensor& t : r.tensors) n += t.tier == Tier::Host;
    return n;
}

// Rank 0 writes the model, the all-device shards and the overflow shards: the largest GPU budget (in
// 1 MiB steps) whose plan moves weights of every rank to the host tier.
void prepare(const std::string& root, int world) {
    if (mpi_test_session().rank() == 0) {
        fs::remove_all(root);
        test::write_tiny_model(root + "/model", 11, kLayers);
        const ShardOptions so = test::quiet_shard_options();
        shard_checkpoint(layout(root, "device", world, 1.0), so);
        bool found = false;
        for (int mib = 40; mib >= 4 && !found; --mib) {
            const DeployConfig d = layout(root, "offload", world, mib / 1024.0);
            try {
                shard_checkpoint(d, so);
            } catch (const Error&) {
                continue;  // the plan does not fit at all
            }
            const ShardManifest m = ShardManifest::load(d.output);
            found = true;
            for (const ManifestRank& r : m.ranks) found = found && r.host_bytes > 0;
            if (found) std::ofstream(root + "/offload_mib") << mib;
        }
        if (!found) std::fprintf(stderr, "no GPU budget put weights of every rank on the host tier\n");
    }
    MPI_Barrier(MPI_COMM_WORLD);
}

std::string root_dir() {
    static const std::string root = [] {
        const std::string r = shared_dir();
        prepare(r, mpi_test_session().size());
        return r;
    }();
    return root;
}

const std::vector<std::vector<int32_t>> kPrompts = {{3, 141, 59, 26, 535}, {89, 79, 323}};

// Batched prefill then greedy decode steps; every step's logits.
template <class Forward>
std::vector<std::vector<float>> run(Model& model, Forward&& forward) {
    std::vector<KvCache> caches;
    for (size_t i = 0; i < kPrompts.size(); ++i) caches.push_back(model.new_cache());
    std::vector<KvCache*> ptrs;
    for (KvCache& c : caches) ptrs.push_back(&c);
    std::vector<std::vector<float>> logits;
    std::vector<std::vector<int32_t>> next = kPrompts;
    const int64_t vocab = model.config().vocab_size;
    for (int step = 0; step <= kDecodeSteps; ++step) {
        logits.push_back(forward(next, ptrs));
        for (size_t s = 0; s < kPrompts.size(); ++s)
            next[s] = {static_cast<int32_t>(cpu::argmax(&logits.back()[s * vocab], vocab))};
    }
    return logits;
}

// A WeightSource that records which experts forward() asked for.
class RecordingWeights : public WeightSource {
public:
    explicit RecordingWeights(const WeightSource& inner) : inner_(inner) {}
    WeightView get(const std::string& name) const override { return inner_.get(name); }
    void need_experts(int layer, const std::vector<int>& experts) const override {
        for (int e : experts) picked.emplace_back(layer, e);
    }
    mutable std::vector<std::pair<int, int>> picked;

private:
    const WeightSource& inner_;
};

struct PipelineRun {
    std::vector<std::vector<float>> logits;
    WeightStoreStats stats;
    std::vector<std::pair<int, int>> decoded_experts;
    TraceData trace;
};

PipelineRun run_pipeline(const std::string& shards, WeightMode mode, Communicator* comm) {
    const int rank = mpi_test_session().rank();
    const ShardManifest m = ShardManifest::load(shards);
    Tracer tracer(rank, true);
    CpuBackend backend;
    backend.set_tracer(&tracer);
    PipelineRun out;
    {
        auto store = WeightStore::load(m, rank, backend, mode, nullptr);
        Model model(m.model, m.world(rank), comm, kMaxSeqLen, backend);
        Pipeline pipeline(model, *store, backend);
        out.logits = run(model, [&](const auto& t, const auto& c) { return pipeline.forward(t, c); });
        out.stats = store->stats();
        out.decoded_experts = store->decoded_experts();
    }
    backend.set_tracer(nullptr);
    out.trace = tracer.data();
    return out;
}

// The memory plan (sharding/memory_plan.h) of a rank of the shards in dir, with the YAML they were made with.
RankMemory plan_of(const ShardManifest& m, const DeployConfig& d, int rank) {
    const ShardPlan plan = plan_shards(m.model, d.parallel);
    std::vector<uint64_t> stored;
    for (const ManifestTensor& t : m.ranks[rank].tensors) stored.push_back(t.stored_bytes);
    return plan_rank(plan, rank, stored, WeightFormat::Ecf8, d, nullptr);
}

bool same_bits(const std::vector<std::vector<float>>& a, const std::vector<std::vector<float>>& b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
        if (a[i].size() != b[i].size() || std::memcmp(a[i].data(), b[i].data(), a[i].size() * sizeof(float)) != 0)
            return false;
    return true;
}

TEST(Pipeline, Ecf8RawAndResidentGiveBitIdenticalLogits) {
    const std::string root = root_dir();
    const int rank = mpi_test_session().rank();
    auto comm = MpiCommunicator::world();
    const PipelineRun ecf8 = run_pipeline(root + "/device", WeightMode::Ecf8, comm.get());
    const PipelineRun raw = run_pipeline(root + "/device", WeightMode::Raw, comm.get());
    const PipelineRun raw_copy = run_pipeline(root + "/device", WeightMode::RawCopy, comm.get());
    EXPECT_TRUE(same_bits(ecf8.logits, raw.logits)) << "--weights ecf8 and raw differ";
    EXPECT_TRUE(same_bits(ecf8.logits, raw_copy.logits)) << "--weights ecf8 and raw-copy differ";

    const ShardManifest m = ShardManifest::load(root + "/device");
    const auto resident = ResidentWeights::load(m, rank, nullptr);
    CpuBackend backend;
    Model model(m.model, m.world(rank), comm.get(), kMaxSeqLen, backend);
    const auto plain = run(model, [&](const auto& t, const auto& c) { return model.forward(t, c, *resident); });
    EXPECT_TRUE(same_bits(ecf8.logits, plain)) << "the pipeline differs from the plain forward";
    // ECF8 decoded every layer each step; raw-copy copied the same bytes; raw used them in place, no slots.
    EXPECT_EQ(ecf8.stats.layers_decoded, uint64_t{kLayers} * (kDecodeSteps + 1));
    EXPECT_EQ(ecf8.stats.bytes_decoded, raw_copy.stats.bytes_decoded);
    EXPECT_EQ(raw.stats.bytes_decoded, 0u);
    EXPECT_EQ(raw.stats.slot_bytes, 0u);
    EXPECT_GT(raw_copy.stats.slot_bytes, 0u);
    EXPECT_EQ(ecf8.stats.host_bytes, 0u);
    EXPECT_LT(ecf8.stats.device_bytes, raw.stats.device_bytes);  // compressed vs original bytes
}

// One flipped byte in the middle of a layer's ECF8 blob in every rank's shard file: the load stops with an
// error that names the file and the tensor, in ECF8 mode (blob checked as copied) and in raw mode (decoded
// at load).
TEST(Pipeline, ACorruptBlobStopsTheLoadNamingTheTensor) {
    const std::string root = root_dir();
    const std::string dir = root + "/corrupt";
    const int rank = mpi_test_session().rank();
    std::string victim;  // the tensor whose blob this rank damages in its own file
    if (rank == 0) {
        fs::remove_all(dir);
        fs::copy(root + "/device", dir, fs::copy_options::recursive);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    const ShardManifest m = ShardManifest::load(dir);
    {
        const CompressedFile file = m.open_rank(rank);
        const ManifestTensor* largest = nullptr;
        for (const ManifestTensor& t : m.ranks[rank].tensors)
            if (t.layer >= 0 && file.record(t.name).ecf8 &&
                (!largest || file.stored_bytes(file.record(t.name)) > file.stored_bytes(file.record(largest->name))))
                largest = &t;
        ASSERT_NE(largest, nullptr);
        victim = largest->name;
        const TensorInfo& info = file.file().get(largest->name);
        const uint64_t at = file.file().data_offset() + info.begin + info.nbytes() / 2;
        std::FILE* f = std::fopen((dir + "/" + m.ranks[rank].file).c_str(), "r+b");
        ASSERT_NE(f, nullptr);
        ASSERT_EQ(std::fseek(f, static_cast<long>(at), SEEK_SET), 0);
        const int byte = std::fgetc(f);
        ASSERT_EQ(std::fseek(f, static_cast<long>(at), SEEK_SET), 0);
        std::fputc(byte ^ 0x10, f);
        std::fclose(f);
    }
    CpuBackend backend;
    for (WeightMode mode : {WeightMode::Ecf8, WeightMode::Raw}) {
        try {
            WeightStore::load(m, rank, backend, mode, nullptr);
            ADD_FAILURE() << "a corrupt blob loaded without an error";
        } catch (const Error& e) {
            const std::string what = e.what();
            EXPECT_NE(what.find(m.ranks[rank].file), std::string::npos) << what;
            EXPECT_NE(what.find(victim), std::string::npos) << what;
            EXPECT_NE(what.find("checksum"), std::string::npos) << what;
        }
    }
}

TEST(Pipeline, HostTierGivesBitIdenticalLogits) {
    const std::string root = root_dir();
    const ShardManifest offload = ShardManifest::load(root + "/offload");
    ASSERT_GT(host_tensors(offload), 0u) << "the overflow shards have no host-tier tensors";
    auto comm = MpiCommunicator::world();
    const PipelineRun device = run_pipeline(root + "/device", WeightMode::Ecf8, comm.get());
    const PipelineRun host = run_pipeline(root + "/offload", WeightMode::Ecf8, comm.get());
    EXPECT_TRUE(same_bits(device.logits, host.logits));
    EXPECT_GT(host.stats.host_bytes, 0u);
    EXPECT_GT(host.stats.bytes_copied, 0u);  // host-tier blobs went through staging
    EXPECT_EQ(device.stats.bytes_copied, 0u);
    for (WeightMode mode : {WeightMode::Raw, WeightMode::RawCopy}) {
        const PipelineRun host_raw = run_pipeline(root + "/offload", mode, comm.get());
        EXPECT_TRUE(same_bits(device.logits, host_raw.logits)) << weight_mode_name(mode);
        EXPECT_GT(host_raw.stats.bytes_copied, 0u) << weight_mode_name(mode);
    }
    // The copy lane shows the host-tier traffic.
    EXPECT_FALSE(host.trace.find("copy", "copy L", mpi_test_session().rank()).empty());
}

TEST(Pipeline, DecodeOfNextLayerOverlapsComputeAndOnlyPickedExpertsAreDecoded) {
    const std::string root = root_dir();
    const int rank = mpi_test_session().rank();
    auto comm = MpiCommunicator::world();
    const PipelineRun p = run_pipeline(root + "/device", WeightMode::Ecf8, comm.get());

    // Per step, every layer L >= 1: decode L+1 starts before compute L ends.
    test::expect_next_layer_decode_overlaps_compute(p.trace, rank, kLayers, kDecodeSteps + 1);

    // The experts decoded are exactly those routing picked, in the same order.
    const ShardManifest m = ShardManifest::load(root + "/device");
    const auto resident = ResidentWeights::load(m, rank, nullptr);
    RecordingWeights recorder(*resident);
    CpuBackend backend;
    Model model(m.model, m.world(rank), comm.get(), kMaxSeqLen, backend);
    run(model, [&](const auto& t, const auto& c) { return model.forward(t, c, recorder); });
    EXPECT_EQ(p.decoded_experts, recorder.picked);
    // Decode steps route 2 tokens x top-k experts: fewer than this rank's experts of every MoE layer.
    const int local = static_cast<int>(m.model.n_routed_experts) / m.world_size();
    const int moe_layers = kLayers - static_cast<int>(m.model.first_k_dense_replace);
    EXPECT_LT(p.stats.experts_decoded, uint64_t(local) * moe_layers * (kDecodeSteps + 1));
    EXPECT_FALSE(p.trace.find("decode", "decode L1 experts", rank).empty());
    if (rank == 0)
        std::printf("rank 0 decoded %llu of %d local experts x %d MoE layers x %d steps\n",
                    static_cast<unsigned long long>(p.stats.experts_decoded), local, moe_layers, kDecodeSteps + 1);
}

// The plan is what the runtime allocates: per rank, the weight tiers, the decode slots and the staging area
// that WeightStore allocates (backend tags "weights" + "weights_resident", "weights_host_tier",
// "decode_slots" + "staging") equal the plan's device weights, host weights and scratch, up to the 256-byte
// alignment of each tensor in the runtime's layout, in the all-device and the host-tier layouts. (The plan's
// workspace and KV pool are not compared yet: the runtime's KV cache is a float32 slab per sequence and its
// prefill is not chunked, so neither is the plan's model of them; the serving-core issue makes them one.)
TEST(Pipeline, PlanEqualsTheWeightStoresAllocations) {
    const std::string root = root_dir();
    const int rank = mpi_test_session().rank(), world = mpi_test_session().size();
    int offload_mib = 0;
    std::ifstream(root + "/offload_mib") >> offload_mib;
    ASSERT_GT(offload_mib, 0) << "prepare() found no host-tier layout";
    for (const auto& [name, gpu_gb] :
         {std::pair<std::string, double>{"device", 1.0}, {"offload", offload_mib / 1024.0}}) {
        SCOPED_TRACE(name);
        const DeployConfig d = layout(root, name, world, gpu_gb);
        const ShardManifest m = ShardManifest::load(d.output);
        const RankMemory plan = plan_of(m, d, rank);
        CpuBackend backend;
        auto store = WeightStore::load(m, rank, backend, WeightMode::Ecf8, nullptr);
        const auto device = backend.live_bytes_by_tag(MemoryKind::Device);
        const auto host = backend.live_bytes_by_tag(MemoryKind::PinnedHost);
        auto tag = [](const std::map<std::string, size_t>& live, const char* t) {
            auto it = live.find(t);
            return it == live.end() ? uint64_t{0} : uint64_t{it->second};
        };
        const double slack = 256.0 * static_cast<double>(m.ranks[rank].tensors.size());  // alignment, per tensor
        EXPECT_NEAR(double(tag(device, "weights") + tag(device, "weights_resident")), double(plan.device_weight_bytes),
                    slack);
        EXPECT_NEAR(double(tag(host, "weights_host_tier")), double(plan.host_weight_bytes), slack);
        EXPECT_NEAR(double(tag(device, "decode_slots") + tag(device, "staging")), double(plan.scratch_bytes), slack);
        EXPECT_EQ(plan.host_weight_bytes > 0, name == "offload");
    }
}

}  // namespace
}  // namespace ecf8
