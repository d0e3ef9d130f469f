// `ecf8 bench serve`: serving throughput and latency under mpirun, in the spirit of vLLM's serving benchmark.
// A workload of random-token prompts (lengths drawn uniformly around --input-len and --output-len, fixed by
// --seed) goes through the engine once per concurrency level, on one loaded model: requests arrive at
// --request-rate (a Poisson process; inf: all at once) and at most `concurrency` are in flight. Each level
// reports output tokens/s, time to first token and time per output token (median, p99), the peak of KV
// blocks in use and the preemptions. --weights raw runs the same shards with the original FP8 bytes.
// Times are wall-clock on this machine: compare levels and weight modes of one run, not machines.
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <thread>

#include "common/error.h"
#include "common/file_util.h"
#include "launcher/args.h"
#include "launcher/commands.h"
#include "launcher/run_setup.h"
#include "runtime/pipeline.h"

namespace ecf8 {
namespace {

struct Workload {
    int64_t input_len = 32, output_len = 16;
    double range_ratio = 0.5;                               // lengths uniform in [len * (1 - r), len * (1 + r)]
    double rate = std::numeric_limits<double>::infinity();  // requests per second
    std::vector<int> concurrency = {1, 4, 16, 64};
    int num_prompts = 0;  // per level; 0: max(4, 2 x concurrency)
    uint64_t seed = 0;
};

std::vector<int> parse_levels(const std::string& text) {
    std::vector<int> out;
    std::stringstream in(text);
    for (std::string item; std::getline(in, item, ',');) {
        char* end = nullptr;
        const long v = std::strtol(item.c_str(), &end, 10);
        ECF8_CHECK(!item.empty() && *end == '\0' && v >= 1 && v <= 65536,
                   "--concurrency: '" << item << "' is not a positive count (expected e.g. 1,4,16,64)");
        out.push_back(static_cast<int>(v));
    }
    ECF8_CHECK(!out.empty(), "--concurrency needs at least one level");
    return out;
}

Workload parse_workload(const Args& args) {
    Workload w;
    w.input_len = args.get_int("input-len", 32);
    w.output_len = args.get_int("output-len", 16);
    ECF8_CHECK(w.input_len >= 1 && w.output_len >= 1, "--input-len and --output-len must be >= 1");
    const std::string ratio = args.get("range-ratio", "0.5"), rate = args.get("request-rate", "inf");
    char* end = nullptr;
    w.range_ratio = std::strtod(ratio.c_str(), &end);
    ECF8_CHECK(*end == '\0' && w.range_ratio >= 0 && w.range_ratio < 1, "--range-ratio must be in [0, 1)");
    if (rate != "inf") {
        w.rate = std::strtod(rate.c_str(), &end);
        ECF8_CHECK(*end == '\0' && w.rate > 0, "--request-rate must be a positive number or inf, got '" << rate << "'");
    }
    w.concurrency = parse_levels(args.get("concurrency", "1,4,16,64"));
    w.num_prompts = args.get_int("num-prompts", 0);
    ECF8_CHECK(w.num_prompts >= 0, "--num-prompts must be >= 0");
    w.seed = static_cast<uint64_t>(args.get_int("seed", 0));
    return w;
}

int prompts_for(const Workload& w, int concurrency) {
    return w.num_prompts > 0 ? w.num_prompts : std::max(4, 2 * concurrency);
}

// Every level's requests, one list: ids "c<concurrency>-<i>", greedy, no stop token (outputs run their length).
std::vector<Request> make_workload(const Workload& w, const RunSetup& s) {
    std::mt19937_64 rng(w.seed);
    auto draw = [&](int64_t len) {
        const int64_t lo = std::max<int64_t>(1, std::llround(double(len) * (1 - w.range_ratio)));
        const int64_t hi = std::max<int64_t>(lo, std::llround(double(len) * (1 + w.range_ratio)));
        return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
    };
    std::uniform_int_distribution<int32_t> token(0, static_cast<int32_t>(s.manifest.model.vocab_size - 1));
    std::vector<Request> out;
    for (int c : w.concurrency) {
        for (int i = 0; i < prompts_for(w, c); ++i) {
            Request r;
            r.id = "c" + std::to_string(c) + "-" + std::to_string(i);
            const int64_t in = draw(w.input_len), n_out = draw(w.output_len);
            ECF8_CHECK(in + n_out <= s.deploy.kv_cache.max_model_len,
                       "a request of " << in << " + " << n_out << " tokens exceeds kv_cache.max_model_len "
                                       << s.deploy.kv_cache.max_model_len << " of " << s.deploy.source
                                       << "; lower --input-len / --output-len / --range-ratio");
            for (int64_t t = 0; t < in; ++t) r.prompt.push_back(token(rng));
            r.params.max_new_tokens = static_cast<int>(n_out);
            out.push_back(std::move(r));
        }
    }
    return out;
}

struct LevelResult {
    int concurrency = 0, requests = 0;
    int64_t output_tokens = 0, peak_blocks = 0, preemptions = 0, steps = 0;
    double seconds = 0;
    std::vector<double> ttft, tpot;  // seconds, per request
};

double percentile(std::vector<double> v, double p) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    return v[std::min(v.size() - 1, static_cast<size_t>(std::ceil(p * double(v.size())) - 1))];
}

// Rank 0 drives one level: arrivals, the concurrency cap, steps; the other ranks step until it ends.
LevelResult run_level(Model& model, const Engine::Forward& forward, Communicator* control,
                      const std::vector<Request>& requests, int concurrency, const Workload& w) {
    Engine engine(model, forward, control);
    LevelResult out;
    out.concurrency = concurrency;
    out.requests = static_cast<int>(requests.size());
    int in_flight = 0;
    engine.on_finish = [&](const RequestResult& r) {
        --in_flight;
        out.output_tokens += static_cast<int64_t>(r.output.size());
        out.ttft.push_back(r.first_token_s - r.arrival_s);
        if (r.output.size() > 1) out.tpot.push_back((r.finish_s - r.first_token_s) / double(r.output.size() - 1));
    };
    if (!engine.is_scheduler()) {
        while (engine.step()) {
        }
        return out;
    }
    std::mt19937_64 rng(w.seed + static_cast<uint64_t>(concurrency));
    std::exponential_distribution<double> gap(std::isinf(w.rate) ? 1.0 : w.rate);
    std::vector<double> arrival(requests.size(), 0.0);
    for (size_t i = 1; i < arrival.size(); ++i) arrival[i] = arrival[i - 1] + (std::isinf(w.rate) ? 0.0 : gap(rng));
    const double start = engine.now();
    size_t next = 0;
    for (;;) {
        while (next < requests.size() && in_flight < concurrency && start + arrival[next] <= engine.now()) {
            engine.submit(requests[next++]);
            ++in_flight;
        }
        if (engine.idle()) {
            if (next == requests.size()) break;
            const double wait = start + arrival[next] - engine.now();
            if (wait > 0) std::this_thread::sleep_for(std::chrono::duration<double>(wait));
            continue;
        }
        engine.step();
    }
    engine.finish();
    out.seconds = engine.now() - start;
    out.peak_blocks = engine.stats().peak_blocks_used;
    out.preemptions = engine.stats().preemptions;
    out.steps = engine.stats().steps;
    return out;
}

void print_levels(const RunSetup& s, const Workload& w, const std::vector<LevelResult>& levels) {
    const std::string kept = s.plan.decoded_experts > 0
                                 ? " (rank 0 keeps " + std::to_string(s.plan.decoded_experts) + " of " +
                                       std::to_string(s.plan.routed_experts) + " (layer, routed expert) pairs decoded)"
                                 : "";
    std::printf("weights: %s%s; kv pool %" PRId64 " blocks of %" PRId64 " tokens (%s); max_num_seqs %" PRId64
                ", max_num_batched_tokens %" PRId64 "\n",
                weight_mode_name(s.mode), kept.c_str(), s.model.kv.blocks, s.model.kv.block_tokens,
                kv_dtype_name(s.model.kv.dtype), s.model.max_step_seqs, s.model.max_step_tokens);
    std::printf("workload: input %" PRId64 " and output %" PRId64
                " tokens (uniform within +-%.0f%%), rate %s, seed %" PRIu64 "\n\n",
                w.input_len, w.output_len, 100 * w.range_ratio,
                std::isinf(w.rate) ? "inf (all at once)" : (std::to_string(w.rate) + " req/s").c_str(), w.seed);
    for (const LevelResult& l : levels)
        if (l.concurrency > s.model.max_step_seqs) {
            std::printf("note: levels above max_num_seqs %" PRId64
                        " run at most that many requests at once; the others wait in the scheduler's queue, and "
                        "their wait counts in TTFT\n\n",
                        s.model.max_step_seqs);
            break;
        }
    std::printf("%11s %8s %10s %11s %10s %10s %10s %10s %9s %7s\n", "concurrency", "requests", "out tok/s",
                "TTFT med ms", "TTFT p99", "TPOT med", "TPOT p99", "KV blocks", "preempt", "steps");
    for (const LevelResult& l : levels)
        std::printf("%11d %8d %10.2f %11.1f %10.1f %10.1f %10.1f %10" PRId64 " %9" PRId64 " %7" PRId64 "\n",
                    l.concurrency, l.requests, double(l.output_tokens) / l.seconds, 1e3 * percentile(l.ttft, 0.5),
                    1e3 * percentile(l.ttft, 0.99), 1e3 * percentile(l.tpot, 0.5), 1e3 * percentile(l.tpot, 0.99),
                    l.peak_blocks, l.preemptions, l.steps);
    if (levels.size() > 1 && levels[0].seconds > 0)
        for (const LevelResult& l : levels)
            if (l.concurrency != levels[0].concurrency)
                std::printf(
                    "concurrency %d: %.2fx the output tokens/s of concurrency %d\n", l.concurrency,
                    (double(l.output_tokens) / l.seconds) / (double(levels[0].output_tokens) / levels[0].seconds),
                    levels[0].concurrency);
}

nlohmann::json levels_json(const RunSetup& s, const std::vector<LevelResult>& levels) {
    nlohmann::json out = {{"weights", weight_mode_name(s.mode)}, {"kv_blocks", s.model.kv.blocks}, {"levels", {}}};
    for (const LevelResult& l : levels)
        out["levels"].push_back(
            {{"concurrency", l.concurrency},
             {"requests", l.requests},
             {"output_tokens", l.output_tokens},
             {"seconds", l.seconds},
             {"output_tokens_per_s", double(l.output_tokens) / l.seconds},
             {"ttft_ms", {{"median", 1e3 * percentile(l.ttft, 0.5)}, {"p99", 1e3 * percentile(l.ttft, 0.99)}}},
             {"tpot_ms", {{"median", 1e3 * percentile(l.tpot, 0.5)}, {"p99", 1e3 * percentile(l.tpot, 0.99)}}},
             {"peak_kv_blocks", l.peak_blocks},
             {"preemptions", l.preemptions},
             {"steps", l.steps}});
    return out;
}

}  // namespace

int cmd_bench_serve(const CommandArgs& argv) {
    Args args(argv,
              {"config", "shards", "weights", "backend", "gemm", "decoded-experts-gb", "expert-area", "threads",
               "input-len", "output-len", "range-ratio", "request-rate", "concurrency", "num-prompts", "seed", "json"},
              {}, "bench serve");
    args.expect_positional(1, "mpirun -np N ecf8 bench serve --config C.yaml [--concurrency 1,4,16,64] ...");
    const Workload w = parse_workload(args);
    MpiSession session;
    const int rank = session.rank();
    RunSetup setup;
    RankRig rig;
    start_run(
        args, session, [&](const RunSetup& s) { return make_workload(w, s); }, &setup, &rig);
    try {
        std::unique_ptr<Model> model = make_model(setup, rig);
        Pipeline pipeline(*model, *rig.store, *rig.backend);
        const Engine::Forward forward = [&](const auto& t, const auto& c, StepOutput out) {
            return pipeline.step(t, c, out);
        };
        // A warm-up request, not counted: first-step costs (the CUDA decoder's task lists) stay out of level 1.
        SamplingParams four;
        four.max_new_tokens = 4;
        run_level(*model, forward, rig.control.get(), {{"warm-up", {1, 2, 3, 4}, four}}, 1, w);
        std::vector<LevelResult> levels;
        size_t first = 0;
        for (int c : w.concurrency) {
            const size_t n = static_cast<size_t>(prompts_for(w, c));
            const std::vector<Request> level(setup.requests.begin() + first, setup.requests.begin() + first + n);
            first += n;
            if (rank == 0) std::fprintf(stderr, "bench serve: concurrency %d, %zu requests\n", c, n);
            levels.push_back(run_level(*model, forward, rig.control.get(), level, c, w));
        }
        if (rank == 0) {
            print_levels(setup, w, levels);
            if (args.has("json")) {
                write_file_atomic(args.get("json", ""), levels_json(setup, levels).dump(2) + "\n");
                std::printf("json: %s\n", args.get("json", "").c_str());
            }
            std::fflush(stdout);
        }
    } catch (const std::exception& e) {
        abort_job("bench serve", rank, e);
    }
    return 0;
}

}  // namespace ecf8
