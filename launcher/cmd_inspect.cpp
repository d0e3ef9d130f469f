// `ecf8 inspect`: per-tensor table (or JSON) of sizes, bits per weight, exponent entropy and overheads,
// and an optional SVG figure.
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "codec/stats.h"
#include "common/error.h"
#include "common/log.h"
#include "common/progress.h"
#include "common/thread_pool.h"
#include "launcher/args.h"
#include "launcher/commands.h"
#include "launcher/inspect.h"
#include "launcher/svg_plot.h"

namespace ecf8 {
namespace {

std::string shape_text(const std::vector<int64_t>& shape) {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i) {
        if (i) s += ',';
        s += std::to_string(shape[i]);
    }
    return s + "]";
}

struct Totals {
    uint64_t numel = 0, raw = 0, stored = 0, coded_numel = 0, coded_raw = 0, coded_stored = 0;
    double bound_weighted = 0;  // sum of bound_bits * numel over coded tensors
};

Totals totals_of(const std::vector<TensorStats>& stats) {
    Totals t;
    for (const TensorStats& s : stats) {
        t.numel += s.numel;
        t.raw += s.raw_bytes;
        t.stored += s.stored_bytes;
        if (!s.ecf8) continue;
        t.coded_numel += s.numel;
        t.coded_raw += s.raw_bytes;
        t.coded_stored += s.stored_bytes;
        t.bound_weighted += s.bound_bits * static_cast<double>(s.numel);
    }
    return t;
}

}  // namespace

void print_inspect_table(const std::string& path, const std::vector<TensorStats>& stats) {
    std::printf("%s\n%-44s %-8s %-16s %11s %11s %7s %6s %7s %7s %8s %8s\n", path.c_str(), "tensor", "dtype", "shape",
                "raw B", "stored B", "bits/w", "H(exp)", "bound", "excess", "books B", "sync B");
    for (const TensorStats& s : stats) {
        std::string name = s.name;
        if (name.size() > 44) name.replace(0, name.size() - 41, "...");
        if (s.ecf8 && s.numel)
            std::printf("%-44s %-8s %-16s %11llu %11llu %7.3f %6.3f %7.3f %+7.3f %8llu %8llu%s\n", name.c_str(),
                        dtype_name(s.dtype), shape_text(s.shape).c_str(), (unsigned long long)s.raw_bytes,
                        (unsigned long long)s.stored_bytes, s.bits_per_weight, s.exponent_entropy, s.bound_bits,
                        s.bits_per_weight - s.bound_bits, (unsigned long long)s.codebook_bytes,
                        (unsigned long long)s.sync_bytes, s.stored_raw ? "  (stored raw)" : "");
        else
            std::printf("%-44s %-8s %-16s %11llu %11llu %7s %6s %7s %7s %8s %8s\n", name.c_str(), dtype_name(s.dtype),
                        shape_text(s.shape).c_str(), (unsigned long long)s.raw_bytes,
                        (unsigned long long)s.stored_bytes, "-", "-", "-", "-", "-", "-");
    }
    Totals t = totals_of(stats);
    double cn = static_cast<double>(t.coded_numel);
    std::printf("\ntotal: %zu tensors, %s -> %s (%.2f%% of raw, %.2f%% saved)\n", stats.size(),
                format_bytes(static_cast<double>(t.raw)).c_str(), format_bytes(static_cast<double>(t.stored)).c_str(),
                t.raw ? 100.0 * static_cast<double>(t.stored) / static_cast<double>(t.raw) : 100.0,
                t.raw ? 100.0 - 100.0 * static_cast<double>(t.stored) / static_cast<double>(t.raw) : 0.0);
    if (t.coded_numel)
        std::printf("coded tensors: %.4f bits/weight on average against a bound of %.4f (excess %+.4f)\n",
                    8.0 * static_cast<double>(t.coded_stored) / cn, t.bound_weighted / cn,
                    8.0 * static_cast<double>(t.coded_stored) / cn - t.bound_weighted / cn);
}

namespace {

nlohmann::json to_json(const std::string& path, const std::vector<TensorStats>& stats) {
    nlohmann::json j;
    j["file"] = path;
    j["tensors"] = nlohmann::json::array();
    for (const TensorStats& s : stats) {
        nlohmann::json t = {{"name", s.name},
                            {"dtype", dtype_name(s.dtype)},
                            {"shape", s.shape},
                            {"encoding", s.ecf8 ? (s.stored_raw ? "ecf8-raw" : "ecf8") : "raw"},
                            {"numel", s.numel},
                            {"raw_bytes", s.raw_bytes},
                            {"stored_bytes", s.stored_bytes},
                            {"bits_per_weight", s.bits_per_weight}};
        if (exponent_bits_of(s.dtype)) {
            t["exponent_entropy_bits"] = s.exponent_entropy;
            t["bound_bits_per_weight"] = s.bound_bits;
        }
        if (s.ecf8)
            t["overhead_bytes"] = {{"header", s.header_bytes}, {"codebooks", s.codebook_bytes}, {"sync", s.sync_bytes}};
        j["tensors"].push_back(t);
    }
    Totals t = totals_of(stats);
    j["totals"] = {{"tensors", stats.size()},
                   {"raw_bytes", t.raw},
                   {"stored_bytes", t.stored},
                   {"ratio", t.raw ? static_cast<double>(t.stored) / static_cast<double>(t.raw) : 1.0}};
    if (t.coded_numel) {
        double cn = static_cast<double>(t.coded_numel);
        j["totals"]["coded_bits_per_weight"] = 8.0 * static_cast<double>(t.coded_stored) / cn;
        j["totals"]["coded_bound_bits_per_weight"] = t.bound_weighted / cn;
    }
    return j;
}

}  // namespace

// Opens FILE as a compressed container; an uncompressed file is compressed to a temporary file first.
std::vector<TensorStats> inspect_stats(const std::string& path, int threads) {
    std::string target = path;
    std::string tmp;
    if (!CompressedFile::is_compressed(SafetensorsFile::open(path))) {
        tmp = "/tmp/ecf8-inspect-" + std::to_string(getpid()) + ".safetensors";
        CompressOptions opt;
        opt.threads = threads;
        compress_file(path, tmp, opt);
        target = tmp;
    }
    std::vector<TensorStats> stats;
    try {
        CompressedFile cf = CompressedFile::open(target);
        ThreadPool pool(threads);
        for (const TensorRecord& r : cf.records()) stats.push_back(analyze_tensor(cf, r, &pool));
    } catch (...) {
        if (!tmp.empty()) std::remove(tmp.c_str());
        throw;
    }
    if (!tmp.empty()) std::remove(tmp.c_str());
    return stats;
}

int cmd_inspect(const CommandArgs& argv) {
    Args args(argv, {"plot", "threads"}, {"json"}, "inspect");
    args.expect_positional(1, "ecf8 inspect FILE [--json] [--plot OUT.svg]");
    const std::string& path = args.positional()[0];
    std::vector<TensorStats> stats = inspect_stats(path, args.get_threads(0));
    if (args.has("json"))
        std::printf("%s\n", to_json(path, stats).dump(2).c_str());
    else
        print_inspect_table(path, stats);
    if (args.has("plot")) {
        const std::string out = args.get("plot", "");
        std::ofstream f(out);
        ECF8_CHECK(f.good(), "cannot write plot file " << out);
        f << render_inspect_svg(stats, "ecf8 inspect: " + path);
        ECF8_CHECK(f.good(), "failed writing plot file " << out);
        LOG_INFO("wrote " << out);
    }
    return 0;
}

}  // namespace ecf8
