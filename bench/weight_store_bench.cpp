// Just-in-time weight decode through the runtime's WeightStore, ECF8 against raw, on one rank's shard:
// each pass fetches every layer (copy stream for host-tier weights, then decode stream) with all of the
// rank's routed experts, as a prefill step that touches every expert would. Reports the median pass time
// and decoded GB/s for --weights ecf8 and raw-copy (which "decodes" by copying the original bytes), and their
// ratio.
// With --backend cuda the passes run on the GPU's streams (the host waits once per pass).
//
//   weight_store_bench SHARD_DIR [--rank R] [--backend cpu|cuda] [--repeat N]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "common/error.h"
#include "runtime/backend_registry.h"
#include "runtime/cpu_backend.h"
#include "runtime/weight_store.h"
#include "sharding/shard_io.h"

namespace ecf8 {
namespace {

struct Result {
    double median_s = 0;
    uint64_t bytes = 0;
};

Result run(const ShardManifest& m, int rank, Backend& backend, WeightMode mode, int repeat) {
    auto store = WeightStore::load(m, rank, backend, mode, nullptr);
    Stream& copy = backend.create_stream("copy");
    Stream& decode = backend.create_stream("decode");
    auto copied = backend.create_event();
    // Every local expert picked once (moe_dispatch's offsets 0, 1, 2, ...), in backend memory.
    const int n_local = store->local_experts();
    std::vector<int32_t> offsets(n_local + 1);
    for (int i = 0; i <= n_local; ++i) offsets[i] = i;
    Buffer picks = backend.buffer(offsets.size() * sizeof(int32_t), MemoryKind::Device, "bench");
    backend.ops().to_device(picks.data(), offsets.data(), offsets.size() * sizeof(int32_t), decode);
    backend.synchronize(decode);
    const int32_t* all_picked = picks.as<int32_t>();
    uint64_t layer_bytes = 0;  // what a pass decodes: every layer tensor
    for (const ManifestTensor& t : m.ranks[rank].tensors)
        if (t.layer >= 0) layer_bytes += t.raw_bytes;
    std::vector<double> times;
    for (int r = 0; r <= repeat; ++r) {  // pass 0 warms up
        const auto start = std::chrono::steady_clock::now();
        for (int layer = 0; layer < m.model.num_hidden_layers; ++layer) {
            WeightStore* s = store.get();
            backend.launch(copy, "copy", [s, layer, &copy] { s->copy_layer(layer, copy); });
            backend.record(*copied, copy);
            backend.wait(decode, *copied);
            backend.launch(decode, "decode", [s, layer, n_local, all_picked, &decode] {
                s->decode_layer(layer, decode);
                s->decode_experts(layer, 0, n_local, all_picked, decode);
            });
            // One slot ring: the next pass over the same slot must wait, as the pipeline's compute would.
            backend.synchronize(decode);
        }
        store->check_decode_errors();
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        if (r > 0) times.push_back(s);
    }
    std::sort(times.begin(), times.end());
    return {times[times.size() / 2], layer_bytes};
}

int main_impl(int argc, char** argv) {
    ECF8_CHECK(argc >= 2, "usage: weight_store_bench SHARD_DIR [--rank R] [--backend cpu|cuda] [--repeat N]");
    const std::string dir = argv[1];
    int rank = 0, repeat = 5;
    std::string backend_name = "cpu";
    for (int i = 2; i + 1 < argc; i += 2) {
        const std::string flag = argv[i], value = argv[i + 1];
        if (flag == "--rank")
            rank = std::atoi(value.c_str());
        else if (flag == "--repeat")
            repeat = std::max(1, std::atoi(value.c_str()));
        else if (flag == "--backend")
            backend_name = value;
        else
            throw Error("unknown flag " + flag);
    }
    const ShardManifest m = ShardManifest::load(dir);
    auto make_backend = [&]() -> std::unique_ptr<Backend> {
        if (backend_name == "cpu") return std::make_unique<CpuBackend>();
        if (backend_name == "cuda") return make_cuda_backend(0);
        throw Error("--backend must be cpu or cuda, got " + backend_name);
    };
    std::printf("%s, rank %d, %s backend, median of %d passes (all layers, all local experts)\n", dir.c_str(), rank,
                backend_name.c_str(), repeat);
    Result res[2];
    const WeightMode modes[2] = {WeightMode::RawCopy, WeightMode::Ecf8};
    for (int i = 0; i < 2; ++i) {
        auto backend = make_backend();
        res[i] = run(m, rank, *backend, modes[i], repeat);
        std::printf("  %-5s %8.2f ms per pass, %7.2f GB/s of decoded weights (%.1f MB)\n", weight_mode_name(modes[i]),
                    res[i].median_s * 1e3, res[i].bytes / res[i].median_s / 1e9, res[i].bytes / 1e6);
    }
    std::printf("  ecf8 / raw-copy pass time: %.2fx\n", res[1].median_s / res[0].median_s);
    return 0;
}

}  // namespace
}  // namespace ecf8

int main(int argc, char** argv) {
    try {
        return ecf8::main_impl(argc, argv);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "weight_store_bench: error: %s\n", e.what());
        return 1;
    }
}
