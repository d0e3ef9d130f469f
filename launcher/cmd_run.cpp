// `ecf8 run`: generation under mpirun. Every rank loads its shard into a WeightStore (weights stay ECF8 in
// their tiers, or raw with --weights raw; launcher/run_setup.h), and the engine (runtime/engine.h) serves
// the prompt or the request file through the pipelined forward (runtime/pipeline.h) on the CUDA backend
// (one GPU per rank: local rank -> device) or the CPU backend; rank 0 prints the tokens, per-step timings
// and each rank's memory. An error after start-up on any rank aborts the whole job (MPI_Abort).
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/error.h"
#include "common/file_util.h"
#include "common/progress.h"
#include "common/thread_pool.h"
#include "kernels/cpu/linear.h"
#include "launcher/args.h"
#include "launcher/commands.h"
#include "launcher/mpi_world.h"
#include "launcher/run_setup.h"
#include "launcher/text_prompt.h"
#include "runtime/backend_registry.h"
#include "runtime/cpu_backend.h"
#include "runtime/engine.h"
#include "runtime/mpi_communicator.h"
#include "runtime/pipeline.h"
#include "runtime/requests_io.h"
#include "runtime/stop_strings.h"
#include "runtime/trace.h"
#include "runtime/weight_store.h"
#include "sharding/memory_plan.h"

namespace ecf8 {
namespace {

// What rank 0 collects while the engine runs.
struct RunResults {
    std::vector<RequestResult> results;  // in request order
    EngineStats stats;
    std::string logits;  // --dump-logits: each sampled row, float32, in the order sampled
};

void print_report(const RunSetup& s, const RunResults& r, const std::vector<std::string>& rank_lines,
                  const WeightStoreStats& stats, double load_seconds) {
    uint64_t raw = 0, stored = 0;
    for (const ManifestRank& mr : s.manifest.ranks) raw += mr.raw_bytes, stored += mr.stored_bytes;
    std::printf("model: %s (%" PRId64 " layers, %" PRId64 " routed experts, vocab %" PRId64 ")\n",
                s.manifest.model.source.c_str(), s.manifest.model.num_hidden_layers, s.manifest.model.n_routed_experts,
                s.manifest.model.vocab_size);
    std::printf("shards: %s, %d ranks (tp %d, ep %d); ECF8 %s of %s raw = %.2f%% (%.2f%% saved)\n",
                s.manifest.dir.c_str(), s.world.world_size, s.world.tp_size, s.world.ep_size,
                format_bytes(double(stored)).c_str(), format_bytes(double(raw)).c_str(), 100.0 * stored / raw,
                100.0 - 100.0 * stored / raw);
    std::printf("backend: %s\n", !s.cuda ? "cpu"
                                 : s.deploy.compute.gemm == GemmMode::Fp8
                                     ? "cuda (one GPU per rank), FP8 GEMMs (cuBLASLt)"
                                     : "cuda (one GPU per rank), FP32 GEMMs");
    const KvPoolOptions& kv = s.model.kv;
    const int64_t per_seq = s.model.limits().max_blocks();
    std::printf("kv cache: %s, %" PRId64 " blocks of %" PRId64 " tokens per rank (%s), %" PRId64
                " sequences of %" PRId64 " tokens at once\n",
                kv_dtype_name(kv.dtype), kv.blocks, kv.block_tokens,
                format_bytes(double(kv_block_bytes(s.manifest.model, kv) * kv.blocks)).c_str(), kv.blocks / per_seq,
                s.model.max_seq_len);
    std::printf("weights: %s (%s); loaded in %.2f s\n", weight_mode_name(s.mode),
                s.mode == WeightMode::Ecf8  ? "kept compressed, decoded just in time per layer"
                : s.mode == WeightMode::Raw ? "original FP8 bytes, used in place"
                                            : "original bytes copied into the decode slots",
                load_seconds);
    const RankMemory& rank0 = s.plan;  // printed by rank 0
    if (rank0.expert_area == ExpertArea::Half)
        std::printf(
            "  rank 0's routed experts decode into a half expert area (memory.expert_area %s): four expert "
            "groups a step\n",
            expert_area_name(s.deploy.memory.expert_area));
    if (rank0.decoded_experts > 0)
        std::printf("  %" PRId64 " of rank 0's %" PRId64 " (layer, expert) pairs of routed experts kept decoded (%s)\n",
                    rank0.decoded_experts, rank0.routed_experts,
                    format_bytes(double(rank0.decoded_expert_bytes)).c_str());
    for (const std::string& line : rank_lines) std::printf("  %s\n", line.c_str());
    std::printf("\n%-6s %6s %8s %10s %10s\n", "step", "batch", "tokens", "ms", "tokens/s");
    double total = 0, decode_time = 0;
    int64_t decode_tokens = 0;
    const std::vector<EngineStep>& steps = r.stats.step_log;
    constexpr size_t kShownSteps = 40;  // a long run prints its first steps; the totals cover all
    for (size_t i = 0; i < steps.size(); ++i) {
        const EngineStep& st = steps[i];
        if (i < kShownSteps)
            std::printf("%-6s %6d %8" PRId64 " %10.2f %10.1f\n", st.prefill() ? "prefill" : std::to_string(i).c_str(),
                        st.sequences, st.tokens, st.seconds * 1e3, st.tokens / st.seconds);
        total += st.seconds;
        if (!st.prefill()) decode_time += st.seconds, decode_tokens += st.tokens;
    }
    if (steps.size() > kShownSteps) std::printf("... %zu steps in all\n", steps.size());
    // A request file's results go to --output; its summary line (report_run) replaces the listing.
    const bool listed = !(s.from_file && !s.output_path.empty());
    if (listed) std::printf("\n");
    for (size_t q = 0; listed && q < r.results.size(); ++q) {
        const RequestResult& res = r.results[q];
        std::printf("sequence %zu:", q);
        for (int32_t t : res.output) std::printf(" %d", t);
        std::printf("%s\n", res.finish != FinishReason::Stop ? ""
                            : res.stop_string.empty()        ? "  [eos]"
                                                             : "  [stop string]");
        if (s.tokenizer && r.results.size() > 1)
            std::printf("  text: %s\n", result_text(res, *s.tokenizer, !s.show_special).c_str());
    }
    if (r.stats.preemptions > 0)
        std::printf("kv cache: %" PRId64 " preemptions (sequences prefilled again when blocks ran out)\n",
                    r.stats.preemptions);
    std::printf(
        "\nrank 0: %.2f s in %zu steps; decode steps %.1f tokens/s; %s share of step time %.1f%% "
        "(%" PRIu64 " layer decodes, %s; routed experts decode on the device, as picked)\n",
        total, steps.size(), decode_time > 0 ? decode_tokens / decode_time : 0.0,
        s.mode == WeightMode::Ecf8 ? "decode" : "copy", total > 0 ? 100.0 * stats.decode_seconds / total : 0.0,
        stats.layers_decoded, format_bytes(double(stats.bytes_decoded)).c_str());
}

// Gathers every rank's memory line (and trace) to rank 0, which prints the report and writes the files.
void report_run(const RunSetup& setup, const MpiSession& session, RankRig& rig, const RunResults& result,
                const std::string& gpu_memory, double load_seconds) {
    const int rank = session.rank();
    const WeightStoreStats stats = rig.store->stats();
    char line[512];
    std::snprintf(line, sizeof(line),
                  "rank %d: %s on device tier, %s on pinned host tier, %s decoded resident, %s decode slots, "
                  "%s staging%s",
                  rank, format_bytes(double(stats.device_bytes)).c_str(),
                  format_bytes(double(stats.host_bytes)).c_str(), format_bytes(double(stats.resident_bytes)).c_str(),
                  format_bytes(double(stats.slot_bytes)).c_str(), format_bytes(double(stats.staging_bytes)).c_str(),
                  gpu_memory.c_str());
    const std::vector<std::string> lines = gather_strings(line, rank, session.size());
    rig.backend->set_tracer(nullptr);
    const std::vector<std::string> traces =
        gather_strings(setup.trace_path.empty() ? std::string() : rig.tracer->to_json(), rank, session.size());
    if (rank != 0) return;
    print_report(setup, result, lines, stats, load_seconds);
    if (!setup.dump_logits.empty()) {
        write_file_atomic(setup.dump_logits, result.logits);
        std::printf("logits: %s (%zu rows of %" PRId64 ", float32)\n", setup.dump_logits.c_str(),
                    result.logits.size() / sizeof(float) / setup.manifest.model.vocab_size,
                    setup.manifest.model.vocab_size);
    }
    if (!setup.output_path.empty()) {
        std::string jsonl;
        for (const RequestResult& r : result.results)
            jsonl += result_line(r, setup.tokenizer.get(), !setup.show_special);
        write_file_atomic(setup.output_path, jsonl);
        int64_t out_tokens = 0, stopped = 0;
        for (const RequestResult& r : result.results) {
            out_tokens += static_cast<int64_t>(r.output.size());
            stopped += r.finish == FinishReason::Stop;
        }
        std::printf("results: %s (%zu requests, JSON Lines): %" PRId64 " output tokens; %" PRId64
                    " ended on a stop id or string, %" PRId64 " at their length\n",
                    setup.output_path.c_str(), result.results.size(), out_tokens, stopped,
                    static_cast<int64_t>(result.results.size()) - stopped);
    }
    if (!setup.trace_path.empty()) {
        write_file_atomic(setup.trace_path, merge_trace_json(traces));
        std::printf("trace: %s (open in https://ui.perfetto.dev or chrome://tracing)\n", setup.trace_path.c_str());
    }
    std::fflush(stdout);
}

// Rank 0 with a text prompt: announces the prompt and streams sequence 0's text as it is generated.
std::unique_ptr<TextStream> start_text_stream(const RunSetup& setup, int rank) {
    if (rank != 0 || !setup.tokenizer) return nullptr;
    if (setup.from_file) return nullptr;
    std::printf("prompt: %zu tokens%s\noutput: ", setup.prompt.size(),
                setup.batch > 1 ? " (streaming sequence 0; every sequence's text follows the timings)" : "");
    std::fflush(stdout);
    return std::make_unique<TextStream>(*setup.tokenizer, setup.show_special);
}

// Rank 0's progress through a request file, on stderr: a bar on a terminal, else a line every 10 s (logs of
// long runs), both with the requests finished, running and waiting and the output tokens/s so far.
class RequestProgress {
public:
    explicit RequestProgress(size_t total) : total_(total), bar_("requests", total, "req") {}
    void finished(const RequestResult& r) {
        ++done_;
        tokens_ += static_cast<int64_t>(r.output.size());
        bar_.advance(1);
    }
    void after_step(const Engine& engine) {
        if (ProgressBar::enabled_for_stderr()) return;
        const double now = engine.now();
        if (now - last_line_ < kLineSeconds) return;
        last_line_ = now;
        std::fprintf(stderr,
                     "progress: %zu of %zu requests finished, %zu running, %zu waiting; %" PRId64
                     " output tokens, %.1f tokens/s, %.0f s\n",
                     done_, total_, engine.scheduler().running(), engine.scheduler().waiting(), tokens_,
                     now > 0 ? double(tokens_) / now : 0.0, now);
    }
    void finish() { bar_.finish(); }

private:
    static constexpr double kLineSeconds = 10;
    size_t total_, done_ = 0;
    int64_t tokens_ = 0;
    double last_line_ = 0;
    ProgressBar bar_;
};

// Runs every request through the engine: rank 0 submits them and steps until all have finished, the other
// ranks step until rank 0 says the run is over. Rank 0 streams sequence 0's text (stream non-null) and
// returns the results.
RunResults serve(const RunSetup& setup, Engine& engine, std::unique_ptr<TextStream> stream) {
    RunResults out;
    std::map<std::string, size_t> order;
    for (size_t i = 0; i < setup.requests.size(); ++i) order[setup.requests[i].id] = i;
    out.results.resize(setup.requests.size());
    std::unique_ptr<RequestProgress> progress;
    if (engine.is_scheduler() && setup.from_file) progress = std::make_unique<RequestProgress>(setup.requests.size());
    engine.on_finish = [&](const RequestResult& r) {
        out.results[order.at(r.id)] = r;
        if (progress) progress->finished(r);
    };
    if (stream)
        engine.on_token = [&](const Request& r, int32_t token) {
            if (order.at(r.id) == 0) stream->push(token);
        };
    if (!setup.dump_logits.empty())
        engine.on_logits = [&](const Request&, const float* logits, int64_t vocab) {
            out.logits.append(reinterpret_cast<const char*>(logits), static_cast<size_t>(vocab) * sizeof(float));
        };
    if (engine.is_scheduler()) {
        for (const Request& r : setup.requests) engine.submit(r);
        while (engine.step()) {
            if (progress) progress->after_step(engine);
        }
        engine.finish();
        if (progress) progress->finish();
    } else {
        while (engine.step()) {
        }
    }
    if (stream) stream->finish();
    out.stats = engine.stats();
    return out;
}

}  // namespace

int cmd_run(const CommandArgs& argv) {
    Args args(argv, {"config",         "shards",
                     "prompt-ids",     "prompt",
                     "chat",           "system",
                     "tokenizer",      "batch",
                     "requests",       "output",
                     "max-new-tokens", "weights",
                     "temperature",    "top-p",
                     "seed",           "eos-id",
                     "dump-logits",    "trace",
                     "threads",        "backend",
                     "gemm",           "decoded-experts-gb",
                     "expert-area"},
              {"show-special"}, "run");
    args.expect_positional(
        0,
        "mpirun -np N ecf8 run --config C.yaml --chat MESSAGE | --prompt TEXT | --prompt-ids 1,2,3 | "
        "--requests FILE.jsonl");
    MpiSession session;
    const int rank = session.rank();
    RunSetup setup;
    RankRig rig;
    const double load_seconds = start_run(args, session, nullptr, &setup, &rig);
    try {
        std::unique_ptr<Model> model = make_model(setup, rig);
        Pipeline pipeline(*model, *rig.store, *rig.backend);
        rig.store->reset_counters();
        int64_t step = 0;
        auto forward = [&](const std::vector<std::vector<int32_t>>& t, const std::vector<KvCache*>& c, StepOutput out) {
            TraceScope span(rig.tracer.get(), Tracer::kHost, "step",
                            {{"step", step}, {"sequences", static_cast<int64_t>(t.size())}});
            ++step;
            return pipeline.step(t, c, out);
        };
        const std::string gpu_memory = gpu_memory_note(rig);  // after load and the KV pool
        Engine engine(*model, forward, rig.control.get());
        if (setup.tokenizer) engine.set_stop_text(setup.tokenizer.get(), !setup.show_special);
        const RunResults result = serve(setup, engine, start_text_stream(setup, rank));
        report_run(setup, session, rig, result, gpu_memory, load_seconds);
    } catch (const std::exception& e) {
        abort_job("run", rank, e);
    }
    return 0;
}

}  // namespace ecf8
