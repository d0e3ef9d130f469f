// WeightStore on the CUDA backend (gpu label; skips without a device): every layer decoded on the GPU, from
// the device tier and from the pinned host tier (non-expert weights through staging, routed experts read in
// place), in ECF8 and raw mode, holds exactly the bytes the CPU store decodes from the same shard (bit for
// bit), and no decode reports a corrupt chunk.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cstring>
#include <map>

#include "runtime/cpu_backend.h"
#include "runtime/cuda_backend.h"
#include "runtime/weight_store.h"
#include "sharding/shard_io.h"
#include "tests/test_util.h"
#include "tests/tiny_model.h"

namespace ecf8 {
namespace {

DeployConfig layout(const std::string& root, const std::string& name, double gpu_gb) {
    return test::tiny_layout(root, name, "test_weight_store_gpu", 1, gpu_gb, 64, 1);
}

// Every layer tensor of the rank, decoded through the store, as host bytes.
std::map<std::string, std::vector<uint8_t>> decode_all_layers(const ShardManifest& m, Backend& backend,
                                                              WeightMode mode) {
    auto store = WeightStore::load(m, 0, backend, mode, nullptr);
    Stream& copy = backend.create_stream("copy");
    Stream& decode = backend.create_stream("decode");
    // Every local expert picked once (moe_dispatch's offsets 0, 1, 2, ...), in backend memory.
    const int n_local = store->local_experts();
    std::vector<int32_t> offsets(n_local + 1);
    for (int i = 0; i <= n_local; ++i) offsets[i] = i;
    Buffer picks = backend.buffer(offsets.size() * sizeof(int32_t), MemoryKind::Device, "test");
    backend.ops().to_device(picks.data(), offsets.data(), offsets.size() * sizeof(int32_t), decode);
    std::map<std::string, std::vector<uint8_t>> out;
    for (int layer = 0; layer < m.model.num_hidden_layers; ++layer) {
        store->copy_layer(layer, copy);
        backend.synchronize(copy);
        store->decode_layer(layer, decode);
        store->decode_experts(layer, 0, n_local, picks.as<int32_t>(), decode);
        backend.synchronize(decode);
        store->check_decode_errors();
        for (const ManifestTensor& t : m.ranks[0].tensors) {
            if (t.layer != layer) continue;
            const WeightView v = store->get(t.name);
            std::vector<uint8_t> bytes(t.raw_bytes);
            if (backend.kind() == BackendKind::Cuda)
                EXPECT_EQ(cudaMemcpy(bytes.data(), v.data, bytes.size(), cudaMemcpyDeviceToHost), cudaSuccess);
            else
                std::memcpy(bytes.data(), v.data, bytes.size());
            out[t.name] = std::move(bytes);
        }
    }
    return out;
}

TEST(WeightStoreGpu, DecodesTheSameBytesAsTheCpuFromBothTiersInBothModes) {
    if (CudaBackend::device_count() == 0) GTEST_SKIP() << "no CUDA device";
    test::TempDir tmp("weight_store_gpu");
    const std::string root = tmp.path().string();
    test::write_tiny_model(root + "/model", 3);
    const ShardOptions so = test::quiet_shard_options();
    shard_checkpoint(layout(root, "device", 1.0), so);
    shard_checkpoint(layout(root, "offload", 0.019), so);  // about half the layer tensors on the host
    for (const char* name : {"device", "offload"}) {
        const ShardManifest m = ShardManifest::load(root + "/" + name);
        if (std::string(name) == "offload") {
            ASSERT_GT(m.ranks[0].host_bytes, 0u) << "nothing on the host tier";
        }
        for (WeightMode mode : {WeightMode::Ecf8, WeightMode::Raw, WeightMode::RawCopy}) {
            SCOPED_TRACE(std::string(name) + " " + weight_mode_name(mode));
            CpuBackend cpu;
            CudaBackend gpu(0);
            const auto want = decode_all_layers(m, cpu, mode);
            const auto got = decode_all_layers(m, gpu, mode);
            ASSERT_EQ(got.size(), want.size());
            for (const auto& [tensor, bytes] : want) EXPECT_TRUE(got.at(tensor) == bytes) << tensor;
        }
    }
}

}  // namespace
}  // namespace ecf8
