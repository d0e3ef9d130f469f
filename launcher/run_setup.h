// The start-up shared by `ecf8 run` and `ecf8 bench serve` under mpirun: the command line and YAML read into
// a RunSetup, each rank's backend and shard (RankRig), and the agreement between the ranks.
//
// Failure handling: start-up (arguments, YAML, manifest, world size, loading and verifying the shard) holds
// no collective, and the ranks then agree on whether all succeeded, so a missing or corrupt shard on one
// rank stops every rank with an error instead of leaving the others waiting in a collective. The
// collectives of start-up (the communicators: MPI_Comm_dup or the NCCL bootstrap) come after that agreement;
// from there on, an error on any rank aborts the whole job (MPI_Abort).
#pragma once

#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "launcher/args.h"
#include "launcher/mpi_world.h"
#include "runtime/backend.h"
#include "runtime/communicator.h"
#include "runtime/engine.h"
#include "runtime/trace.h"
#include "runtime/weight_store.h"
#include "tokenizer/tokenizer.h"

namespace ecf8 {

// True on every rank when `ok` is true on every rank.
bool all_ranks_ok(bool ok);
// Every rank's string on rank 0 (empty elsewhere).
std::vector<std::string> gather_strings(const std::string& mine, int rank, int size);

// Where this rank sits on its node (MPI's shared-memory split): its index and the node's rank count.
struct NodePlace {
    int local_rank = 0;
    int local_size = 1;
};
NodePlace node_place();  // collective

struct RunSetup {
    DeployConfig deploy;
    ShardManifest manifest;
    WorldConfig world;
    WeightMode mode = WeightMode::Ecf8;
    SamplingParams params;                             // the command line's (a request file's lines may override them)
    std::vector<int32_t> prompt;                       // --prompt-ids, --prompt or --chat
    std::vector<Request> requests;                     // the prompt --batch times, or --requests FILE's lines
    bool from_file = false;                            // --requests
    std::string output_path;                           // --output: results as JSON Lines
    std::shared_ptr<const text::Tokenizer> tokenizer;  // with --prompt / --chat, or for a file's text prompts
    bool show_special = false;
    int batch = 1;
    bool cuda = false;
    GemmMode yaml_gemm = GemmMode::Fp32;  // the YAML's compute.gemm, which the shards' placement was planned with
    std::string dump_logits, trace_path;
    ModelOptions model;              // the step limits and the KV pool, from the YAML and the plan
    RankMemory plan;                 // this rank's memory plan (ShardManifest::rank_plan)
    std::vector<bool> keep_decoded;  // per tensor of this rank: a routed expert the plan keeps decoded
};

// A run's requests made from its setup (bench serve's workload) instead of a prompt or --requests.
using RequestMaker = std::function<std::vector<Request>(const RunSetup&)>;

// What a rank holds once started. backend is declared first so that it is destroyed last: the communicator
// (NCCL), the store's buffers and the tracer all go before it.
struct RankRig {
    std::unique_ptr<Backend> backend;
    std::unique_ptr<Communicator> comm;
    std::unique_ptr<Communicator> control;  // host collectives of the engine (MPI), beside the model's
    std::unique_ptr<Tracer> tracer;
    std::unique_ptr<WeightStore> store;
    int device = -1;  // CUDA: this rank's GPU
};

// Every rank: reads the setup and loads the shard (make_requests, when set, gives the requests), then the
// ranks agree; a rank that failed throws its error, the others the first failed rank's (mpirun may end the
// job when one rank exits, so each says what failed). Then the communicators. Returns the load time in s.
double start_run(const Args& args, const MpiSession& session, const RequestMaker& make_requests, RunSetup* setup,
                 RankRig* rig);
std::unique_ptr<Model> make_model(const RunSetup& setup, const RankRig& rig);
// After start-up, an error on one rank: peers may be inside a collective, so it ends the whole job.
[[noreturn]] void abort_job(const char* command, int rank, const std::exception& e);
// "; GPU d: X used, Y free of Z" on the CUDA backend, "" on the CPU.
std::string gpu_memory_note(const RankRig& rig);

}  // namespace ecf8
