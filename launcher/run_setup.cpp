// Start-up of a run: setup, ranks, agreement.
#include "launcher/run_setup.h"

#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/error.h"
#include "common/file_util.h"
#include "common/log.h"
#include "common/progress.h"
#include "common/thread_pool.h"
#include "kernels/cpu/linear.h"
#include "launcher/deploy_flags.h"
#include "launcher/text_prompt.h"
#include "runtime/backend_registry.h"
#include "runtime/cpu_backend.h"
#include "runtime/mpi_communicator.h"
#include "runtime/requests_io.h"

namespace ecf8 {
namespace {

std::vector<int32_t> parse_ids(const std::string& text) {
    std::vector<int32_t> ids;
    size_t pos = 0;
    while (pos <= text.size()) {
        const size_t comma = std::min(text.find(',', pos), text.size());
        const std::string item = text.substr(pos, comma - pos);
        char* end = nullptr;
        const long long v = std::strtoll(item.c_str(), &end, 10);
        ECF8_CHECK(!item.empty() && end && *end == '\0' && v >= 0 && v <= INT32_MAX,
                   "--prompt-ids: '" << item << "' is not a token id (expected e.g. --prompt-ids 1,2,3)");
        ids.push_back(static_cast<int32_t>(v));
        pos = comma + 1;
    }
    return ids;
}

// config.json's eos_token_id, or -1 when it has none.
int64_t eos_from_config(const std::string& shard_dir) {
    try {
        const auto j = nlohmann::json::parse(read_file(shard_dir + "/config.json"));
        if (j.contains("eos_token_id") && j["eos_token_id"].is_number_integer())
            return j["eos_token_id"].get<int64_t>();
    } catch (const std::exception&) {  // the manifest loader reports a bad config.json
    }
    return -1;
}

// --backend auto|cpu|cuda. One GPU per rank (NCCL refuses two ranks on one device): auto takes CUDA when
// this build has it and the node has a GPU for each of its ranks, and says so when it falls back.
bool use_cuda(const std::string& choice, const NodePlace& place) {
    ECF8_CHECK(choice == "auto" || choice == "cpu" || choice == "cuda",
               "--backend must be auto, cpu or cuda, got '" << choice << "'");
    ECF8_CHECK(choice != "cuda" || cuda_built(), "--backend cuda: this ecf8 was built without CUDA");
    const int devices = cuda_device_count();
    ECF8_CHECK(choice != "cuda" || devices > 0, "--backend cuda: no CUDA device is visible to this rank");
    ECF8_CHECK(choice != "cuda" || place.local_size <= devices,
               "--backend cuda: " << place.local_size << " ranks on this node but " << devices
                                  << " GPU(s); the CUDA backend runs one rank per GPU");
    if (choice == "auto" && devices > 0 && place.local_size > devices && place.local_rank == 0)
        std::fprintf(stderr, "ecf8 run: %d ranks on this node but %d GPU(s): using the CPU backend\n", place.local_size,
                     devices);
    return choice != "cpu" && devices > 0 && place.local_size <= devices;
}

bool has_tokenizer(const std::string& dir) { return std::filesystem::exists(dir + "/tokenizer.json"); }

// What every rank can check about a request before anything starts (the scheduler refuses the rest).
void check_request(const Request& r, const RunSetup& s) {
    const int64_t len = static_cast<int64_t>(r.prompt.size()), max_len = s.deploy.kv_cache.max_model_len;
    const std::string who = s.from_file ? "request '" + r.id + "': " : std::string();
    ECF8_CHECK(len >= 1, who << "the prompt is empty");
    ECF8_CHECK(len < max_len, who << "the prompt has " << len << " tokens; kv_cache.max_model_len " << max_len << " of "
                                  << s.deploy.source << " leaves no room to generate");
    // A request file's ids may be its own (prompt_ids) or the tokenizer's (prompt, messages).
    const char* source = s.from_file ? "the prompt holds" : s.tokenizer ? "the tokenizer gave" : "--prompt-ids holds";
    const char* hint = !s.tokenizer  ? ""
                       : s.from_file ? " (if it came from a text prompt: is --tokenizer the model's own?)"
                                     : "; is --tokenizer the model's own?";
    for (int32_t id : r.prompt)
        ECF8_CHECK(id < s.manifest.model.vocab_size, who << source << " token " << id << ", outside the vocabulary [0, "
                                                         << s.manifest.model.vocab_size << ")" << hint);
}

namespace {

// The command line's options: what to run and how, the sampling defaults and the output paths.
void read_options(const Args& args, bool generated, const NodePlace& place, RunSetup* s) {
    ECF8_CHECK(args.has("config"), "--config C.yaml is required");
    s->from_file = !generated && args.has("requests");
    ECF8_CHECK(
        !s->from_file || !(args.has("prompt-ids") || args.has("prompt") || args.has("chat") || args.has("batch")),
        "--requests FILE gives the prompts: leave out --prompt-ids, --prompt, --chat and --batch");
    ECF8_CHECK(s->from_file || !args.has("output"), "--output FILE goes with --requests FILE");
    s->deploy = DeployConfig::load(args.get("config", ""));
    s->mode = parse_weight_mode(args.get("weights", "ecf8"));
    s->cuda = use_cuda(args.get("backend", "auto"), place);
    // --gemm overrides compute.gemm, so the plan (KV pool, workspace) counts what runs.
    s->yaml_gemm = s->deploy.compute.gemm;
    apply_deploy_flags(args, &s->deploy);
    ECF8_CHECK(s->deploy.compute.gemm != GemmMode::Fp8 || s->cuda,
               (args.has("gemm") ? "--gemm fp8" : s->deploy.source + ": compute.gemm fp8")
                   << " needs the CUDA backend (the CPU backend multiplies in FP32; pass "
                      "--gemm fp32)");
    s->show_special = args.has("show-special");
    s->batch = args.get_int("batch", 1);
    ECF8_CHECK(s->batch >= 1 && s->batch <= s->deploy.kv_cache.max_num_seqs,
               "--batch " << s->batch << " must be in [1, kv_cache.max_num_seqs = " << s->deploy.kv_cache.max_num_seqs
                          << "] of " << s->deploy.source << " (the memory plan sized the KV cache for that many)");
    s->params.max_new_tokens = args.get_int("max-new-tokens", 16);
    s->params.temperature = static_cast<float>(args.get_double("temperature", 0.0));
    s->params.top_p = static_cast<float>(args.get_double("top-p", 1.0));
    s->params.seed = static_cast<uint64_t>(args.get_int("seed", 0));
    s->dump_logits = args.get("dump-logits", "");
    s->output_path = args.get("output", "");
    s->trace_path = args.get("trace", "");
}

// The shards, the tokenizer where text needs it, the prompt and the stop id.
void load_shards_and_prompt(const Args& args, PromptKind kind, bool generated, RunSetup* s) {
    const std::string dir = args.get("shards", s->deploy.output);
    if (kind == PromptKind::Ids && !s->from_file && !generated) s->prompt = parse_ids(args.get("prompt-ids", ""));
    int64_t eos = args.has("eos-id") ? args.get_int("eos-id", -1) : eos_from_config(dir);
    s->manifest = ShardManifest::load(dir);
    s->manifest.check_matches(s->deploy);
    const bool file_has_text = s->from_file && (args.has("tokenizer") || has_tokenizer(s->manifest.source_model));
    if (kind != PromptKind::Ids || file_has_text) {
        const std::string tok_dir = tokenizer_dir(args, s->manifest.source_model);
        s->tokenizer = std::make_shared<const text::Tokenizer>(text::Tokenizer::load(tok_dir));
        if (!s->from_file) s->prompt = text_prompt_ids(args, kind, *s->tokenizer, tok_dir);
        if (!args.has("eos-id") && eos < 0 && s->tokenizer->eos_id()) eos = *s->tokenizer->eos_id();
    }
    const int64_t vocab = s->manifest.model.vocab_size;
    ECF8_CHECK(!args.has("eos-id") || eos == -1 || (eos >= 0 && eos < vocab),
               "--eos-id " << eos << " is outside the vocabulary [0, " << vocab << ") of " << s->manifest.model.source
                           << "; -1 never stops on a token");
    if (eos >= 0) s->params.stop_ids = {static_cast<int32_t>(eos)};
    s->params.validate();
}

// `ecf8 shard` decided the tiers from the memory plan of the YAML then. The run keeps them, and sizes the KV
// pool for them (ShardManifest::rank_plan), but a YAML (or --gemm) whose plan would place weights otherwise
// is worth a warning: re-sharding would give that layout.
void warn_if_tiers_moved(const RunSetup& s, int rank) {
    if (rank != 0) return;
    for (int r = 0; r < s.manifest.world_size(); ++r) {
        const std::string moved = s.manifest.tier_difference(s.deploy, r);
        if (moved.empty()) continue;
        const std::string gemm = s.deploy.compute.gemm == s.yaml_gemm
                                     ? std::string()
                                     : std::string(" with --gemm ") + gemm_mode_name(s.deploy.compute.gemm);
        LOG_WARN(s.deploy.source << gemm << " plans weights on other tiers than the shards in " << s.manifest.dir
                                 << " hold them (rank " << r << ": " << moved
                                 << "); the run keeps the shards' tiers and sizes the KV pool for them; re-shard "
                                    "with ecf8 shard --config "
                                 << s.deploy.source << " for the new layout");
        return;
    }
}

// The ranks mpirun started against the shards', the model's options from the plan, this rank's place.
void check_world(const MpiSession& session, const NodePlace& place, RunSetup* s) {
    const ParallelConfig& p = s->manifest.parallel;
    ECF8_CHECK(s->manifest.world_size() == session.size(),
               s->manifest.dir << " holds shards for " << s->manifest.world_size() << " ranks (tensor_parallel_size "
                               << p.tensor_parallel_size << ", expert_parallel_size " << p.expert_parallel_size
                               << ") but mpirun started " << session.size() << "; run mpirun -np "
                               << s->manifest.world_size() << " or re-shard with the right parallel settings");
    ECF8_CHECK(session.size() == 1 || session.thread_level() >= MPI_THREAD_SERIALIZED,
               "the runtime calls MPI from its comm stream and needs MPI_THREAD_SERIALIZED or better");
    warn_if_tiers_moved(*s, session.rank());
    s->model = ModelOptions::from_plan(s->deploy, s->manifest, plan_format(s->mode));
    s->plan = s->manifest.rank_plan(s->deploy, session.rank(), plan_format(s->mode), &s->keep_decoded);
    s->world = session.world_config(p.tensor_parallel_size, p.expert_parallel_size, p.nodes, p.gpus_per_node,
                                    place.local_rank, place.local_size);
}

// The requests: generated (bench serve), from --requests, or --batch copies of the prompt.
void make_run_requests(const Args& args, const RequestMaker& make_requests, RunSetup* s) {
    if (make_requests) {
        s->requests = make_requests(*s);
    } else if (s->from_file) {
        const std::string path = args.get("requests", "");
        s->requests = parse_requests(read_file(path), path, {s->params}, s->tokenizer.get());
    } else {
        const int64_t need = static_cast<int64_t>(s->prompt.size()) + s->params.max_new_tokens;
        ECF8_CHECK(need <= s->deploy.kv_cache.max_model_len,
                   "prompt (" << s->prompt.size() << " tokens) + --max-new-tokens " << s->params.max_new_tokens
                              << " exceeds kv_cache.max_model_len " << s->deploy.kv_cache.max_model_len << " of "
                              << s->deploy.source);
        for (int b = 0; b < s->batch; ++b) {  // sequence b samples with seed + b
            s->requests.push_back({std::to_string(b), s->prompt, s->params});
            s->requests.back().params.seed = s->params.seed + static_cast<uint64_t>(b);
        }
    }
    for (const Request& r : s->requests) check_request(r, *s);
}

}  // namespace

RunSetup parse_setup(const Args& args, const MpiSession& session, const NodePlace& place,
                     const RequestMaker& make_requests) {
    RunSetup s;
    const bool generated = static_cast<bool>(make_requests);
    read_options(args, generated, place, &s);
    load_shards_and_prompt(args, s.from_file || generated ? PromptKind::Ids : prompt_kind(args), generated, &s);
    check_world(session, place, &s);
    make_run_requests(args, make_requests, &s);
    return s;
}

// --threads N (absent or 0: the codec YAML's threads, else this node's cores shared among the ranks): the
// decode pool's threads and, on the CPU backend, the linear layers' and OpenBLAS's (attention).
int run_threads(const Args& args, const RunSetup& setup, int ranks) {
    const int threads = args.get_threads(0);
    if (threads > 0) return threads;
    if (setup.deploy.codec.threads > 0) return setup.deploy.codec.threads;
    return std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / ranks);
}

// The local part of start-up (no collective: it may fail on this rank alone): the backend, the tracer and the
// shard loaded into the weight store.
void start_rank(const Args& args, const RunSetup& setup, const MpiSession& session, const NodePlace& place,
                RankRig* rig) {
    const int threads = run_threads(args, setup, session.size());
    if (!setup.cuda) {
        rig->backend = std::make_unique<CpuBackend>();
        cpu::cpu_blas_init(threads);
    } else {
        rig->device = place.local_rank;
        rig->backend = make_cuda_backend(rig->device);
    }
    rig->tracer = std::make_unique<Tracer>(session.rank(), !setup.trace_path.empty());
    rig->backend->set_tracer(rig->tracer.get());
    ThreadPool pool(threads);
    rig->store = WeightStore::load(setup.manifest, session.rank(), *rig->backend, setup.mode, &pool, setup.keep_decoded,
                                   setup.plan.expert_area);
}

// The collective part, after every rank started: the communicator between the ranks (MPI_Comm_dup, or the
// NCCL bootstrap).
void connect_ranks(const RunSetup& setup, const MpiSession& session, RankRig* rig) {
    rig->control = MpiCommunicator::world();
    if (!setup.cuda) {
        rig->comm = MpiCommunicator::world();
        return;
    }
    if (session.size() == 1) return;
    rig->comm = make_nccl_communicator(MPI_COMM_WORLD, rig->device);
}

}  // namespace

std::unique_ptr<Model> make_model(const RunSetup& setup, const RankRig& rig) {
    auto model = std::make_unique<Model>(setup.manifest.model, setup.world, rig.comm.get(), setup.model, *rig.backend);
    return model;
}

std::string gpu_memory_note(const RankRig& rig) {
    size_t free_bytes = 0, total_bytes = 0;
    if (!device_memory_info(*rig.backend, &free_bytes, &total_bytes)) return "";
    return "; GPU " + std::to_string(rig.device) + ": " + format_bytes(double(total_bytes - free_bytes)) + " used, " +
           format_bytes(double(free_bytes)) + " free of " + format_bytes(double(total_bytes));
}

// True on every rank when `ok` is true on every rank.
bool all_ranks_ok(bool ok) {
    int mine = ok ? 1 : 0, all = 0;
    MPI_CHECK(MPI_Allreduce(&mine, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD));
    return all == 1;
}

// After a failed agreement, on every rank: the lowest failed rank and its error (up to 4 KiB of it).
std::pair<int, std::string> first_failure(const std::string& error, int rank, int size) {
    int mine = error.empty() ? size : rank, failed = size;
    MPI_CHECK(MPI_Allreduce(&mine, &failed, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD));
    int len = rank == failed ? static_cast<int>(std::min<size_t>(error.size(), 4096)) : 0;
    MPI_CHECK(MPI_Bcast(&len, 1, MPI_INT, failed, MPI_COMM_WORLD));
    std::string what = rank == failed ? error.substr(0, static_cast<size_t>(len)) : std::string(len, ' ');
    MPI_CHECK(MPI_Bcast(what.data(), len, MPI_CHAR, failed, MPI_COMM_WORLD));
    return {failed, what};
}

// Every rank's string on rank 0 (empty elsewhere). Lengths travel as 64-bit and the bytes point to point in
// pieces of at most 1 GiB, so a long trace cannot overflow MPI's int counts.
std::vector<std::string> gather_strings(const std::string& mine, int rank, int size) {
    constexpr size_t kPiece = size_t{1} << 30;
    int64_t len = static_cast<int64_t>(mine.size());
    std::vector<int64_t> lens(size);
    MPI_CHECK(MPI_Gather(&len, 1, MPI_INT64_T, lens.data(), 1, MPI_INT64_T, 0, MPI_COMM_WORLD));
    std::vector<std::string> out;
    if (rank != 0) {
        for (size_t at = 0; at < mine.size(); at += kPiece)
            MPI_CHECK(MPI_Send(mine.data() + at, static_cast<int>(std::min(kPiece, mine.size() - at)), MPI_CHAR, 0, 0,
                               MPI_COMM_WORLD));
        return out;
    }
    out.resize(size);
    out[0] = mine;
    for (int r = 1; r < size; ++r) {
        out[r].resize(static_cast<size_t>(lens[r]));
        for (size_t at = 0; at < out[r].size(); at += kPiece)
            MPI_CHECK(MPI_Recv(out[r].data() + at, static_cast<int>(std::min(kPiece, out[r].size() - at)), MPI_CHAR, r,
                               0, MPI_COMM_WORLD, MPI_STATUS_IGNORE));
    }
    return out;
}

NodePlace node_place() {
    MPI_Comm node = MPI_COMM_NULL;
    MPI_CHECK(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node));
    NodePlace p;
    MPI_CHECK(MPI_Comm_rank(node, &p.local_rank));
    MPI_CHECK(MPI_Comm_size(node, &p.local_size));
    MPI_CHECK(MPI_Comm_free(&node));
    return p;
}

void abort_job(const char* command, int rank, const std::exception& e) {
    std::fprintf(stderr, "ecf8 %s: error on rank %d: %s\n", command, rank, e.what());
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
    std::abort();  // MPI_Abort does not return
}

double start_run(const Args& args, const MpiSession& session, const RequestMaker& make_requests, RunSetup* setup,
                 RankRig* rig) {
    const NodePlace place = node_place();  // collective: before anything that may fail on one rank only
    // Set-up on every rank with no collective in it, then agreement: nobody starts a collective unless
    // everybody is ready, so a rank that fails alone cannot leave the others waiting in one.
    std::string error;
    const auto load_start = std::chrono::steady_clock::now();
    try {
        *setup = parse_setup(args, session, place, make_requests);
        start_rank(args, *setup, session, place, rig);
    } catch (const std::exception& e) {
        error = e.what();
    }
    if (!all_ranks_ok(error.empty())) {
        if (rig->backend) rig->backend->set_tracer(nullptr);
        // Every rank prints the first failure itself: mpirun may end the job as soon as one rank exits.
        const auto [failed, what] = first_failure(error, session.rank(), session.size());
        if (!error.empty()) throw Error(error);
        throw Error("stopping: rank " + std::to_string(failed) + " failed to start: " + what);
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - load_start).count();
    rig->tracer->reset_origin();  // just after the agreement (a collective), so the ranks' timelines line up
    try {
        connect_ranks(*setup, session, rig);
    } catch (const std::exception& e) {
        abort_job("start-up", session.rank(), e);  // a peer may be inside the bootstrap
    }
    return seconds;
}

}  // namespace ecf8
