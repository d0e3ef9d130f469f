// The just-in-time pipeline under mpirun (-np 1, 2 and 4) on a 5-layer tiny synthetic model:
//   - lossless: --weights ecf8, raw and raw-copy give bit-identical logits, and equal the plain
//     forward over weights decoded at load (ResidentWeights), bit for bit;
//   - overflow: shards whose plan put routed experts (read in place) or also non-expert weights (staged) in
//     the pinned host tier give the same logits bit for bit;
//   - overlap: in the trace, for every layer L >= 1 the decode of layer L+1 starts before the compute of
//     layer L ends; the host waits once per step (Backend::host_waits, and the trace's host lane);
//   - routed experts the plan keeps decoded (memory.decoded_experts_gb) give the same logits bit for bit;
//   - routed experts decode only where their pick count, read where the decode runs, is not zero: the
//     picked ones hold exactly their bytes (device and host tier, where the decoder reads them in place),
//     the others' memory is untouched;
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
#include "tests/runtime/model_options.h"
#include "tests/runtime/plan_checks.h"
#include "tests/runtime/trace_checks.h"
#include "tests/test_util.h"
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
        const int offload_mib =
            test::shard_largest_budget_with_host_tier([&](double gb) { return layout(root, "offload", world, gb); });
        if (offload_mib > 0)
            std::ofstream(root + "/offload_mib") << offload_mib;
        else
            std::fprintf(stderr, "no GPU budget put weights of every rank on the host tier\n");
        // "offload" holds routed experts on the host; "deep" also non-expert weights: the smallest budget
        // whose plan fits (the KV pool included).
        for (int mib = 4; mib <= 40; ++mib) {
            const DeployConfig d = layout(root, "deep", world, mib / 1024.0);
            try {
                shard_checkpoint(d, so);
            } catch (const Error&) {
                continue;
            }
            const ShardManifest m = ShardManifest::load(d.output);
            bool fits = true;
            for (int r = 0; r < world; ++r) fits = fits && m.rank_plan(d, r, WeightFormat::Ecf8).fits;
            if (!fits) continue;
            bool dense_on_host = true;
            for (const ManifestRank& r : m.ranks)
                dense_on_host = dense_on_host && std::any_of(r.tensors.begin(), r.tensors.end(), [](const auto& t) {
                                    return t.tier == Tier::Host && t.expert < 0;
                                });
            if (dense_on_host) std::ofstream(root + "/deep_mib") << mib;
            break;
        }
    }
    MPI_Barrier(MPI_COMM_WORLD);
}

std::string root_dir() {
    static const std::string root = [] {
        const std::string r = shared_dir();
        prepare(r, mpi_test_session().size());
        remove_after_tests(r);
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

struct PipelineRun {
    std::vector<std::vector<float>> logits;
    WeightStoreStats stats;
    std::vector<uint64_t> host_waits;  // per step
    TraceData trace;
};

PipelineRun run_pipeline(const std::string& shards, WeightMode mode, Communicator* comm,
                         const std::vector<bool>& keep_decoded = {}, ExpertArea area = ExpertArea::Full) {
    const int rank = mpi_test_session().rank();
    const ShardManifest m = ShardManifest::load(shards);
    Tracer tracer(rank, true);
    CpuBackend backend;
    backend.set_tracer(&tracer);
    PipelineRun out;
    {
        auto store = WeightStore::load(m, rank, backend, mode, nullptr, keep_decoded, area);
        Model model(m.model, m.world(rank), comm, test::model_options(kMaxSeqLen), backend);
        Pipeline pipeline(model, *store, backend);
        out.logits = run(model, [&](const auto& t, const auto& c) {
            const uint64_t before = backend.host_waits();
            std::vector<float> logits = pipeline.forward(t, c);
            out.host_waits.push_back(backend.host_waits() - before);
            return logits;
        });
        out.stats = store->stats();
    }
    backend.set_tracer(nullptr);
    out.trace = tracer.data();
    return out;
}

TEST(Pipeline, Ecf8RawAndResidentGiveBitIdenticalLogits) {
    const std::string root = root_dir();
    const int rank = mpi_test_session().rank();
    auto comm = MpiCommunicator::world();
    const PipelineRun ecf8 = run_pipeline(root + "/device", WeightMode::Ecf8, comm.get());
    const PipelineRun raw = run_pipeline(root + "/device", WeightMode::Raw, comm.get());
    const PipelineRun raw_copy = run_pipeline(root + "/device", WeightMode::RawCopy, comm.get());
    EXPECT_TRUE(test::same_bits(ecf8.logits, raw.logits)) << "--weights ecf8 and raw differ";
    EXPECT_TRUE(test::same_bits(ecf8.logits, raw_copy.logits)) << "--weights ecf8 and raw-copy differ";

    const ShardManifest m = ShardManifest::load(root + "/device");
    const auto resident = ResidentWeights::load(m, rank, nullptr);
    CpuBackend backend;
    Model model(m.model, m.world(rank), comm.get(), test::model_options(kMaxSeqLen), backend);
    const auto plain = run(model, [&](const auto& t, const auto& c) { return model.forward(t, c, *resident); });
    EXPECT_TRUE(test::same_bits(ecf8.logits, plain)) << "the pipeline differs from the plain forward";
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

// Both host-tier layouts: routed experts on the host, read in place where picked ("offload"), and also
// non-expert weights, staged on the copy stream ("deep").
TEST(Pipeline, HostTierGivesBitIdenticalLogits) {
    const std::string root = root_dir();
    ASSERT_TRUE(fs::exists(root + "/deep_mib")) << "prepare() found no layout with non-expert weights on the host";
    auto comm = MpiCommunicator::world();
    const PipelineRun device = run_pipeline(root + "/device", WeightMode::Ecf8, comm.get());
    EXPECT_EQ(device.stats.bytes_copied, 0u);
    for (const char* name : {"offload", "deep"}) {
        SCOPED_TRACE(name);
        const bool dense_on_host = std::string(name) == "deep";
        const ShardManifest m = ShardManifest::load(root + "/" + name);
        ASSERT_GT(host_tensors(m), 0u) << "the overflow shards have no host-tier tensors";
        const PipelineRun host = run_pipeline(root + "/" + name, WeightMode::Ecf8, comm.get());
        EXPECT_TRUE(test::same_bits(device.logits, host.logits));
        EXPECT_GT(host.stats.host_bytes, 0u);
        // Only non-expert blobs go through staging, and the copy lane shows that traffic.
        EXPECT_EQ(host.stats.bytes_copied > 0, dense_on_host);
        EXPECT_EQ(host.trace.find("copy", "copy L", mpi_test_session().rank()).empty(), !dense_on_host);
        for (WeightMode mode : {WeightMode::Raw, WeightMode::RawCopy}) {
            const PipelineRun host_raw = run_pipeline(root + "/" + name, mode, comm.get());
            EXPECT_TRUE(test::same_bits(device.logits, host_raw.logits)) << weight_mode_name(mode);
            EXPECT_EQ(host_raw.stats.bytes_copied > 0, dense_on_host) << weight_mode_name(mode);
        }
    }
}

// memory.decoded_experts_gb: routed experts the plan keeps decoded are used in place, the others decode just in
// time, with the same logits bit for bit: in the all-device layout, some of the experts and then all of them,
// as the plan picks them; in the layout with routed experts in the host tier (whose plan leaves no room to
// keep any), every device-tier expert, picked by hand, next to host-tier ones read in place.
TEST(Pipeline, ExpertsKeptDecodedGiveBitIdenticalLogits) {
    const std::string root = root_dir();
    const int rank = mpi_test_session().rank(), world = mpi_test_session().size();
    auto comm = MpiCommunicator::world();
    const PipelineRun raw = run_pipeline(root + "/device", WeightMode::Raw, comm.get());
    const uint64_t slots = run_pipeline(root + "/device", WeightMode::Ecf8, comm.get()).stats.slot_bytes;
    for (const double cap_gb : {1e-3, 1.0}) {
        SCOPED_TRACE("decoded_experts_gb " + std::to_string(cap_gb));
        DeployConfig d = layout(root, "device", world, 1.0);
        d.memory.decoded_experts_gb = cap_gb;
        const ShardManifest m = ShardManifest::load(d.output);
        std::vector<bool> keep;
        const RankMemory plan = m.rank_plan(d, rank, WeightFormat::Ecf8, &keep);
        ASSERT_GT(plan.decoded_experts, 0);
        const bool all = plan.decoded_experts == plan.routed_experts;
        EXPECT_EQ(all, cap_gb == 1.0);
        const PipelineRun kept = run_pipeline(d.output, WeightMode::Ecf8, comm.get(), keep);
        EXPECT_TRUE(test::same_bits(kept.logits, raw.logits));
        EXPECT_EQ(kept.stats.slot_bytes < slots, all) << "with every expert kept there is no expert area";
    }
    const ShardManifest m = ShardManifest::load(root + "/offload");
    std::vector<bool> keep;
    bool any_host_expert = false;
    for (const ManifestTensor& t : m.ranks[rank].tensors) {
        keep.push_back(t.expert >= 0 && t.tier == Tier::Device);
        any_host_expert = any_host_expert || (t.expert >= 0 && t.tier == Tier::Host);
    }
    ASSERT_TRUE(any_host_expert);
    ASSERT_GT(std::count(keep.begin(), keep.end(), true), 0);
    EXPECT_TRUE(
        test::same_bits(run_pipeline(root + "/offload", WeightMode::Ecf8, comm.get(), keep).logits, raw.logits));
    // Only device-tier routed experts can be kept, and only in ECF8 mode.
    CpuBackend backend;
    std::vector<bool> wrong(keep.size(), false);
    for (size_t i = 0; i < wrong.size(); ++i) wrong[i] = m.ranks[rank].tensors[i].tier == Tier::Host;
    EXPECT_NE(test::error_of([&] {
                  WeightStore::load(m, rank, backend, WeightMode::Ecf8, nullptr, wrong);
              }).find("only device-tier routed experts"),
              std::string::npos);
    EXPECT_NE(test::error_of([&] {
                  WeightStore::load(m, rank, backend, WeightMode::Raw, nullptr, keep);
              }).find("holds every tensor decoded already"),
              std::string::npos);
}

TEST(Pipeline, DecodeOfNextLayerOverlapsComputeAndTheHostWaitsOncePerStep) {
    const std::string root = root_dir();
    const int rank = mpi_test_session().rank();
    auto comm = MpiCommunicator::world();
    const PipelineRun p = run_pipeline(root + "/device", WeightMode::Ecf8, comm.get());
    // Per step, every layer L >= 1: decode L+1 starts before compute L ends.
    test::expect_next_layer_decode_overlaps_compute(p.trace, rank, kLayers, kDecodeSteps + 1);
    EXPECT_FALSE(p.trace.find("decode", "decode L1 experts", rank).empty());
    // Each step runs layer 1's routed experts in step_expert_groups groups: the prefill (both prompts) in
    // kExpertGroups, and a decode step (one token per prompt) in one where it picks no more pairs than the
    // rank has experts.
    const ShardManifest m = ShardManifest::load(root + "/device");
    const int local = m.world(rank).experts_for_rank(m.model.n_routed_experts).size();
    std::vector<int> groups;
    for (const std::vector<TraceSpan>& step : test::layer_compute_steps(p.trace, 1, rank))
        groups.push_back(static_cast<int>(std::count_if(
            step.begin(), step.end(), [](const TraceSpan& s) { return s.name == "compute L1 experts"; })));
    const int64_t topk = m.model.num_experts_per_tok;
    std::vector<int> expected(kDecodeSteps + 1, 2 * topk <= local ? 1 : kExpertGroups);
    expected[0] = 8 * topk <= local ? 1 : kExpertGroups;
    EXPECT_EQ(groups, expected) << local << " local experts, top-" << topk;
    EXPECT_EQ(step_expert_groups(8, topk, local), expected[0]);
    EXPECT_EQ(step_expert_groups(2, topk, local), expected[1]);
    EXPECT_EQ(step_expert_groups(1, topk, static_cast<int>(topk)), 1);
    EXPECT_EQ(step_expert_groups(1, topk, static_cast<int>(topk) - 1), kExpertGroups);
    // Routing stays on the device: the host waits once per step, for the logits, and the host lane shows it.
    EXPECT_EQ(p.host_waits, std::vector<uint64_t>(kDecodeSteps + 1, 1));
    EXPECT_GE(p.trace.find("host", "host wait compute", rank).size(), size_t{kDecodeSteps + 1});
}

// memory.expert_area: half: groups 2 and 3 decode into the places of groups 0 and 1 once those have run, so
// every step runs four groups, the logits are bit-identical and the expert area is smaller; raw weights in the
// host tier (copied to the area when picked) too.
TEST(Pipeline, HalfExpertAreaGivesBitIdenticalLogitsAndWaitsForThePlace) {
    const std::string root = root_dir();
    const int rank = mpi_test_session().rank();
    auto comm = MpiCommunicator::world();
    const PipelineRun full = run_pipeline(root + "/device", WeightMode::Ecf8, comm.get());
    const PipelineRun half = run_pipeline(root + "/device", WeightMode::Ecf8, comm.get(), {}, ExpertArea::Half);
    EXPECT_TRUE(test::same_bits(full.logits, half.logits));
    for (WeightMode mode : {WeightMode::Raw, WeightMode::RawCopy}) {
        const PipelineRun host = run_pipeline(root + "/offload", mode, comm.get(), {}, ExpertArea::Half);
        EXPECT_TRUE(test::same_bits(full.logits, host.logits)) << weight_mode_name(mode);
    }
    const ShardManifest m = ShardManifest::load(root + "/device");
    const int local = m.world(rank).experts_for_rank(m.model.n_routed_experts).size();
    // With fewer local experts than groups (4 ranks: 2), groups 2 and 3 are empty and nothing is shared.
    EXPECT_EQ(half.stats.slot_bytes < full.stats.slot_bytes, local >= kExpertGroups);
    if (local < kExpertGroups) return;
    // Layer 1, step by step: four expert groups, and group g + 2's decode starts after group g's experts ran.
    const std::vector<std::vector<TraceSpan>> computes = test::layer_compute_steps(half.trace, 1, rank);
    const std::vector<TraceSpan> decodes = test::spans_by_start(half.trace, "decode", "decode L1 experts", rank);
    ASSERT_EQ(computes.size(), size_t{kDecodeSteps + 1});
    ASSERT_EQ(decodes.size(), computes.size() * kExpertGroups);
    for (size_t step = 0; step < computes.size(); ++step) {
        std::vector<TraceSpan> experts;
        for (const TraceSpan& s : computes[step])
            if (s.name == "compute L1 experts") experts.push_back(s);
        ASSERT_EQ(experts.size(), size_t{kExpertGroups}) << "step " << step;
        for (int g = 0; g + 2 < kExpertGroups; ++g)
            EXPECT_GE(decodes[step * kExpertGroups + g + 2].start_ns, experts[g].end_ns)
                << "step " << step << ": group " << g + 2 << " decoded into group " << g << "'s place while it ran";
    }
}

// decode_experts with moe_dispatch-style offsets that pick some local experts: the picked experts' tensors
// hold the raw store's bytes, the others' memory keeps the poison written over it, from the device tier and
// from the host tier (read in place), in ECF8 and raw-copy mode.
TEST(Pipeline, OnlyPickedExpertsAreDecoded) {
    const std::string root = root_dir();
    const int rank = mpi_test_session().rank();
    for (const char* layout_name : {"device", "offload", "deep"}) {
        const ShardManifest m = ShardManifest::load(root + "/" + layout_name);
        CpuBackend backend;
        Stream& decode = backend.create_stream("decode");
        // The original bytes, all in the device tier (the same tensors as every layout's).
        auto raw = WeightStore::load(ShardManifest::load(root + "/device"), rank, backend, WeightMode::Raw, nullptr);
        for (WeightMode mode : {WeightMode::Ecf8, WeightMode::RawCopy}) {
            SCOPED_TRACE(std::string(layout_name) + " " + weight_mode_name(mode));
            auto store = WeightStore::load(m, rank, backend, mode, nullptr);
            const int n = store->local_experts();
            ASSERT_GE(n, 2);
            // Every other local expert picked (i + 1 picks), counting back from the last one, which the offload
            // layout puts on the host tier first.
            auto picked = [n](int i) { return (n - 1 - i) % 2 == 0; };
            std::vector<int32_t> offsets(n + 1, 0);
            for (int i = 0; i < n; ++i) offsets[i + 1] = offsets[i] + (picked(i) ? i + 1 : 0);
            const int layer = kLayers - 1;  // a MoE layer, whose experts the offload layout puts on the host
            std::vector<std::pair<int, const ManifestTensor*>> experts;
            for (const ManifestTensor& t : m.ranks[rank].tensors)
                if (t.layer == layer && t.expert >= 0) experts.emplace_back(t.expert - store->first_expert(), &t);
            ASSERT_FALSE(experts.empty());
            for (const auto& [local, t] : experts)
                std::memset(const_cast<uint8_t*>(store->get(t->name).data), 0xEE, t->raw_bytes);
            store->decode_experts(layer, 0, n, offsets.data(), decode);
            backend.synchronize(decode);
            for (const auto& [local, t] : experts) {
                const uint8_t* got = store->get(t->name).data;
                if (picked(local)) {
                    EXPECT_EQ(std::memcmp(got, raw->get(t->name).data, t->raw_bytes), 0) << t->name;
                } else {
                    EXPECT_TRUE(std::all_of(got, got + t->raw_bytes, [](uint8_t b) { return b == 0xEE; })) << t->name;
                }
            }
        }
    }
}

// The store and the model must agree on this rank's routed experts: the decoder reads routing's picks by the
// store's local index, the experts' MLP by the model's. A model of the next rank's world is refused.
TEST(Pipeline, RefusesAStoreOfAnotherRanksExperts) {
    const std::string root = root_dir();
    const int rank = mpi_test_session().rank(), world = mpi_test_session().size();
    if (world == 1) GTEST_SKIP() << "one rank holds every expert";
    const ShardManifest m = ShardManifest::load(root + "/device");
    CpuBackend backend;
    auto store = WeightStore::load(m, rank, backend, WeightMode::Raw, nullptr);
    auto comm = MpiCommunicator::world();
    Model model(m.model, m.world((rank + 1) % world), comm.get(), test::model_options(kMaxSeqLen), backend);
    try {
        Pipeline pipeline(model, *store, backend);
        ADD_FAILURE() << "a pipeline was built over another rank's experts";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("the weight store holds routed experts"), std::string::npos) << e.what();
    }
}

// The plan is what the runtime allocates (tests/runtime/plan_checks.h): per rank, weight tiers, decode
// slots, staging, workspace and KV pool, after load and after steps, in the all-device and both host-tier
// layouts with ECF8 weights (with and without routed experts kept decoded), and with raw weights where the FP8
// plan keeps the shards' tiers; and with a half expert area.
TEST(Pipeline, PlanEqualsTheAllocations) {
    const std::string root = root_dir();
    const int rank = mpi_test_session().rank(), world = mpi_test_session().size();
    int offload_mib = 0;
    std::ifstream(root + "/offload_mib") >> offload_mib;
    ASSERT_GT(offload_mib, 0) << "prepare() found no host-tier layout";
    int deep_mib = 0;
    std::ifstream(root + "/deep_mib") >> deep_mib;
    ASSERT_GT(deep_mib, 0) << "prepare() found no layout with non-expert weights on the host";
    for (const auto& [name, gpu_gb] : {std::pair<std::string, double>{"device", 1.0},
                                       {"offload", offload_mib / 1024.0},
                                       {"deep", deep_mib / 1024.0}}) {
        SCOPED_TRACE(name);
        const DeployConfig d = layout(root, name, world, gpu_gb);
        const ShardManifest m = ShardManifest::load(d.output);
        EXPECT_EQ(m.rank_plan(d, rank, WeightFormat::Ecf8).host_weight_bytes > 0, name != "device");
        test::expect_plan_equals_allocations(m, d, rank, WeightMode::Ecf8, kPrompts[0]);
        for (const double cap_gb : {1e-3, 1.0}) {  // routed experts kept decoded: some, then all that fit
            SCOPED_TRACE("decoded_experts_gb " + std::to_string(cap_gb));
            DeployConfig kept = d;
            kept.memory.decoded_experts_gb = cap_gb;
            // The host-tier layouts are the tightest that fit: little room, if any, is left to keep experts.
            if (name == "device") {
                EXPECT_GT(m.rank_plan(kept, rank, WeightFormat::Ecf8).decoded_experts, 0);
            }
            test::expect_plan_equals_allocations(m, kept, rank, WeightMode::Ecf8, kPrompts[0]);
        }
        // Raw weights keep the checkpoint's bytes in the tiers chosen for ECF8 (no decode slots, so here they
        // fit where ECF8 does), and the plan of those bytes in those tiers is what runs.
        test::expect_plan_equals_allocations(m, d, rank, WeightMode::Raw, kPrompts[0]);
        // memory.expert_area: half, as the plan lays it out, and less scratch than full (with at least one
        // expert per group). auto (the default) takes half in the tight layouts, whose KV pool is below what
        // the scheduler can use, and full where the pool is ample.
        DeployConfig half = d, full = d;
        half.memory.expert_area = ExpertArea::Half;
        full.memory.expert_area = ExpertArea::Full;
        const int local = m.world(rank).experts_for_rank(m.model.n_routed_experts).size();
        const uint64_t half_scratch = m.rank_plan(half, rank, WeightFormat::Ecf8).scratch_bytes;
        EXPECT_EQ(half_scratch < m.rank_plan(full, rank, WeightFormat::Ecf8).scratch_bytes, local >= kExpertGroups);
        const RankMemory chosen = m.rank_plan(d, rank, WeightFormat::Ecf8);
        EXPECT_EQ(chosen.expert_area, name != "device" && local >= kExpertGroups ? ExpertArea::Half : ExpertArea::Full);
        for (WeightMode mode : {WeightMode::Ecf8, WeightMode::Raw}) {
            test::expect_plan_equals_allocations(m, half, rank, mode, kPrompts[0]);
            // The tight layouts were sized with auto's half area: a full one leaves them no KV.
            if (name == "device") test::expect_plan_equals_allocations(m, full, rank, mode, kPrompts[0]);
        }
    }
}

}  // namespace
}  // namespace ecf8
