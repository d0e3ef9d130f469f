// `ecf8 bench decode FILE`: ECF8 decode throughput next to libzstd -3 and -19 on the same raw bytes.
// Ratios and speeds come from one run on one machine; compare them with each other, not across machines.
#include <zstd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <nlohmann/json.hpp>
#include <thread>

#include "codec/container.h"
#include "common/error.h"
#include "common/log.h"
#include "common/thread_pool.h"
#include "kernels/cpu/ecf8_decode.h"
#include "launcher/args.h"
#include "launcher/commands.h"

namespace ecf8 {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_of(const std::function<void()>& fn) {
    auto a = Clock::now();
    fn();
    return std::chrono::duration<double>(Clock::now() - a).count();
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

double median_seconds(int repeat, const std::function<void()>& fn) {
    std::vector<double> t;
    for (int i = 0; i < repeat; ++i) t.push_back(seconds_of(fn));
    return median(std::move(t));
}

// Median and range of per-round ratios.
struct Spread {
    double median, min, max;
};

Spread spread_of(const std::vector<double>& v) {
    auto [lo, hi] = std::minmax_element(v.begin(), v.end());
    return {median(v), *lo, *hi};
}

nlohmann::json to_json(const Spread& s) { return {{"median", s.median}, {"min", s.min}, {"max", s.max}}; }

// The machine's own N-thread ceiling is measured only while the extra output copies stay this small.
constexpr uint64_t kCeilingExtraBytes = 4ull << 30;

struct Workload {
    std::vector<std::string> names;
    std::vector<std::vector<uint8_t>> raw;    // original bytes of each codable tensor
    std::vector<std::vector<uint8_t>> blobs;  // their ECF8 blobs
    uint64_t raw_bytes = 0, blob_bytes = 0;
};

Workload load_workload(const std::string& path, ThreadPool& pool) {
    Workload w;
    SafetensorsFile probe = SafetensorsFile::open(path);
    if (CompressedFile::is_compressed(probe)) {
        CompressedFile cf = CompressedFile::open(path);
        for (const TensorRecord& r : cf.records()) {
            if (!r.ecf8) continue;
            w.names.push_back(r.name);
            w.raw.emplace_back(r.raw_bytes());
            cf.decode(r, w.raw.back().data(), &pool);
            const TensorInfo& info = cf.file().get(r.name);
            const uint8_t* b = cf.file().tensor_data(info);
            w.blobs.emplace_back(b, b + info.nbytes());
        }
    } else {
        for (const TensorInfo& t : probe.tensors()) {
            if (!dtype_is_codable(t.dtype)) continue;
            const uint8_t* d = probe.tensor_data(t);
            w.names.push_back(t.name);
            w.raw.emplace_back(d, d + t.nbytes());
            w.blobs.push_back(encode_tensor(t.dtype, d, t.numel(), EncodeOptions{}, &pool));
        }
    }
    for (size_t i = 0; i < w.raw.size(); ++i) {
        w.raw_bytes += w.raw[i].size();
        w.blob_bytes += w.blobs[i].size();
    }
    ECF8_CHECK(w.raw_bytes > 0, path << ": no F8/BF16/F16 tensors to benchmark");
    return w;
}

struct ZstdCoded {
    int level;
    std::vector<uint8_t> bytes;  // the compressed frame
    double ratio, compress_gbs, decompress_gbs = 0;
};

ZstdCoded zstd_compress(const std::vector<uint8_t>& raw, int level) {
    ZstdCoded z{level, std::vector<uint8_t>(ZSTD_compressBound(raw.size())), 0, 0};
    size_t csize = 0;
    double tc = median_seconds(level >= 19 ? 1 : 3, [&] {
        csize = ZSTD_compress(z.bytes.data(), z.bytes.size(), raw.data(), raw.size(), level);
        ECF8_CHECK(!ZSTD_isError(csize), "zstd: " << ZSTD_getErrorName(csize));
    });
    z.bytes.resize(csize);
    z.ratio = static_cast<double>(csize) / static_cast<double>(raw.size());
    z.compress_gbs = static_cast<double>(raw.size()) / 1e9 / tc;
    return z;
}

void zstd_decompress(const ZstdCoded& z, std::vector<uint8_t>& back) {
    size_t n = ZSTD_decompress(back.data(), back.size(), z.bytes.data(), z.bytes.size());
    ECF8_CHECK(!ZSTD_isError(n) && n == back.size(), "zstd decompress failed");
}

// What `ecf8 bench decode` measured, for the JSON and the text report.
struct DecodeBench {
    std::string path;
    size_t tensors = 0;
    uint64_t raw_bytes = 0;
    int repeat = 0, threads = 1;
    double ratio = 0, enc1 = 0, dec1 = 0, decn = 0;
    Spread scaling;
    bool measure_ceiling = false;
    std::vector<double> ceilings;  // per round, when measured
    ZstdCoded z3, z19;
};

void print_bench_json(const DecodeBench& b) {
    nlohmann::json j = {{"file", b.path},
                        {"raw_bytes", b.raw_bytes},
                        {"repeat", b.repeat},
                        {"ecf8",
                         {{"ratio", b.ratio},
                          {"decode_gbs_1thread", b.dec1},
                          {"decode_gbs_nthreads", b.decn},
                          {"threads", b.threads},
                          {"scaling_per_round", to_json(b.scaling)},
                          {"ceiling_per_round", b.measure_ceiling ? to_json(spread_of(b.ceilings)) : nlohmann::json()},
                          {"encode_gbs_1thread", b.enc1}}},
                        {"zstd", nlohmann::json::array()}};
    for (const ZstdCoded* z : {&b.z3, &b.z19})
        j["zstd"].push_back({{"level", z->level},
                             {"ratio", z->ratio},
                             {"compress_gbs", z->compress_gbs},
                             {"decompress_gbs_1thread", z->decompress_gbs}});
    std::printf("%s\n", j.dump(2).c_str());
}

void print_bench_text(const DecodeBench& b) {
    const double gb = static_cast<double>(b.raw_bytes) / 1e9;
    std::printf("%s: %zu coded tensors, %.1f MB raw, median of %d runs\n", b.path.c_str(), b.tensors, gb * 1e3,
                b.repeat);
    std::printf("%-10s %8s %14s %16s %16s\n", "codec", "ratio", "encode GB/s", "decode GB/s(1t)", "decode GB/s(Nt)");
    std::printf("%-10s %8.4f %14.3f %16.3f %12.3f (%dt)\n", "ecf8", b.ratio, b.enc1, b.dec1, b.decn, b.threads);
    for (const ZstdCoded* z : {&b.z3, &b.z19})
        std::printf("zstd -%-3d %8.4f %14.3f %16.3f %16s\n", z->level, z->ratio, z->compress_gbs, z->decompress_gbs,
                    "-");
    std::printf("ecf8 is %.2f%% smaller than zstd -19; decode %.2fx zstd -d (1 thread)\n",
                100.0 * (1.0 - b.ratio / b.z19.ratio), b.dec1 / b.z19.decompress_gbs);
    if (b.threads == 1) return;
    std::printf("%d threads / 1 thread: %.2fx; round by round: median %.2fx, range %.2f-%.2fx\n", b.threads,
                b.decn / b.dec1, b.scaling.median, b.scaling.min, b.scaling.max);
    if (b.measure_ceiling) {
        const Spread c = spread_of(b.ceilings);
        std::printf("%d independent 1-thread decodes / 1 (this machine's ceiling): median %.2fx, range %.2f-%.2fx\n",
                    b.threads, c.median, c.min, c.max);
    } else {
        std::printf("machine ceiling not measured: %d copies of the output would exceed %.0f GiB\n", b.threads - 1,
                    static_cast<double>(kCeilingExtraBytes) / (1 << 30));
    }
}

// Every tensor of the file prepared for decoding and one job batch over all of them into `out`, as the
// runtime decodes a layer; for the machine's ceiling, threads - 1 more batches into copies of their own.
struct DecodeRig {
    std::vector<PreparedTensor> prepared;
    std::vector<uint8_t> out;
    std::vector<DecodeJob> jobs;
    std::vector<std::vector<uint8_t>> copies;
    std::vector<std::vector<DecodeJob>> copy_jobs;

    std::vector<DecodeJob> batch_into(uint8_t* dst) const {
        std::vector<DecodeJob> batch;
        uint64_t at = 0;
        for (const PreparedTensor& t : prepared) {
            batch.push_back({&t, 0, t.numel(), dst + at});
            at += t.decoded_bytes();
        }
        return batch;
    }
    void decode(ThreadPool* pool) const { ecf8_decode_batch_cpu(jobs, pool); }
    // The machine's ceiling for N threads: N threads that share nothing, each decoding the whole batch into
    // its own buffer on one thread. The pool's speed-up can only be judged against it: on a virtual machine
    // with busy neighbours, or whose single core boosts higher, it is well below N.
    void decode_independently() const {
        std::vector<std::thread> others;
        for (const auto& j : copy_jobs) others.emplace_back([&j] { ecf8_decode_batch_cpu(j, nullptr); });
        ecf8_decode_batch_cpu(jobs, nullptr);
        for (auto& t : others) t.join();
    }
};

// Filled in place: the jobs point into rig's vectors.
void prepare_rig(const Workload& w, int copies, DecodeRig& rig) {
    for (size_t i = 0; i < w.blobs.size(); ++i) rig.prepared.push_back(PreparedTensor::prepare(w.blobs[i], w.names[i]));
    rig.out.resize(w.raw_bytes);
    rig.jobs = rig.batch_into(rig.out.data());
    rig.copies.assign(static_cast<size_t>(copies), std::vector<uint8_t>(w.raw_bytes));
    for (auto& c : rig.copies) rig.copy_jobs.push_back(rig.batch_into(c.data()));
}

// Decoders take turns within each round, so a noisy machine slows all of them alike and the ratios between
// them stay meaningful. Fills b's speeds, scaling and ceilings.
void time_rounds(const DecodeRig& rig, ThreadPool& single, ThreadPool& pool, const std::vector<uint8_t>& all,
                 DecodeBench& b) {
    const double gb = static_cast<double>(b.raw_bytes) / 1e9;
    std::vector<uint8_t> back(all.size());
    std::vector<double> t1, tn, tc, t3, t19;
    for (int r = 0; r < b.repeat; ++r) {
        t1.push_back(seconds_of([&] { rig.decode(&single); }));
        tn.push_back(seconds_of([&] { rig.decode(&pool); }));
        if (b.measure_ceiling) tc.push_back(seconds_of([&] { rig.decode_independently(); }));
        t3.push_back(seconds_of([&] { zstd_decompress(b.z3, back); }));
        t19.push_back(seconds_of([&] { zstd_decompress(b.z19, back); }));
    }
    ECF8_CHECK(back == all, "zstd round trip differs");
    for (const auto& c : rig.copies) ECF8_CHECK(c == rig.out, "concurrent decodes of one batch differ");
    b.dec1 = gb / median(t1);
    b.decn = gb / median(tn);
    // Each round's own N-thread speed-up and ceiling: their spread shows how steady the machine was.
    std::vector<double> speedups;
    for (int r = 0; r < b.repeat; ++r) {
        speedups.push_back(t1[r] / tn[r]);
        if (b.measure_ceiling) b.ceilings.push_back(b.threads * t1[r] / tc[r]);
    }
    b.scaling = spread_of(speedups);
    b.z3.decompress_gbs = gb / median(t3);
    b.z19.decompress_gbs = gb / median(t19);
}

}  // namespace

int cmd_bench(const CommandArgs& argv) {
    if (!argv.empty() && argv[0] == "serve") return cmd_bench_serve(argv);
    Args args(argv, {"threads", "repeat"}, {"json"}, "bench");
    args.expect_positional(2, "ecf8 bench decode FILE [--threads N] [--repeat R] [--json]");
    ECF8_CHECK(args.positional()[0] == "decode",
               "ecf8 bench: unknown benchmark '" << args.positional()[0] << "' (known: decode, serve)");
    const std::string& path = args.positional()[1];
    int threads = args.get_threads(static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
    int repeat = std::max(5, args.get_int("repeat", 5));
    ThreadPool pool(threads), single(1);
    Workload w = load_workload(path, pool);

    DecodeBench b;
    b.path = path;
    b.tensors = w.names.size();
    b.raw_bytes = w.raw_bytes;
    b.repeat = repeat;
    b.threads = threads;
    b.measure_ceiling = threads > 1 && static_cast<uint64_t>(threads - 1) * w.raw_bytes <= kCeilingExtraBytes;
    DecodeRig rig;
    prepare_rig(w, b.measure_ceiling ? threads - 1 : 0, rig);
    rig.decode(&single);                                // warm-up, and the bit-exactness check below
    if (b.measure_ceiling) rig.decode_independently();  // the copies' pages are touched before any round is timed
    uint64_t off = 0;
    for (size_t i = 0; i < w.raw.size(); ++i) {
        ECF8_CHECK(std::memcmp(rig.out.data() + off, w.raw[i].data(), w.raw[i].size()) == 0,
                   "tensor '" << w.names[i] << "' decodes differently: refusing to report speed");
        off += w.raw[i].size();
    }
    b.enc1 = static_cast<double>(w.raw_bytes) / 1e9 / median_seconds(3, [&] {
                 for (size_t i = 0; i < w.raw.size(); ++i)
                     encode_tensor(rig.prepared[i].dtype(), w.raw[i].data(), rig.prepared[i].numel(), EncodeOptions{},
                                   nullptr);
             });
    std::vector<uint8_t> all;
    all.reserve(w.raw_bytes);
    for (const auto& r : w.raw) all.insert(all.end(), r.begin(), r.end());
    b.z3 = zstd_compress(all, 3);
    b.z19 = zstd_compress(all, 19);
    time_rounds(rig, single, pool, all, b);
    b.ratio = static_cast<double>(w.blob_bytes) / static_cast<double>(w.raw_bytes);

    if (args.has("json"))
        print_bench_json(b);
    else
        print_bench_text(b);
    return 0;
}

}  // namespace ecf8
