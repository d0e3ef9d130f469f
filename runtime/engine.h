// Engine: continuous batching over the model, in the spirit of vLLM's LLMEngine. Requests are submitted on
// rank 0, where the Scheduler (runtime/scheduler.h) decides each step; rank 0 broadcasts the step to every
// rank over a host communicator, every rank runs the same forward (so every rank's KV pool takes and frees
// the same blocks), and rank 0 samples each finished chunk's next token and streams it out.
//
// Sampling of a request uses its own seed and the index of the token it generates (kernels/cpu/sampling.h),
// and a token's computation does not depend on the other rows of its step, so a request gets the same tokens
// whatever else is in the batch, however its prompt was chunked, and after a preemption.
//
// Use: rank 0 submits, then calls step() until idle() and finish(); the other ranks call step() until it
// returns false.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/thread_pool.h"
#include "runtime/communicator.h"
#include "runtime/model.h"
#include "runtime/scheduler.h"
#include "runtime/stop_strings.h"

namespace ecf8 {

// One step as run: its sequences, token rows, and the forward's wall time.
struct EngineStep {
    int sequences = 0;
    int64_t tokens = 0;
    double seconds = 0;
    bool prefill() const { return tokens > sequences; }  // some sequence fed more than its one decode token
};

struct EngineStats {
    std::vector<EngineStep> step_log;
    int64_t steps = 0;
    int64_t tokens = 0;            // token rows run through the model
    int64_t peak_blocks_used = 0;  // of the KV pool
    int64_t preemptions = 0;
    double forward_seconds = 0;
};

class Engine {
public:
    // forward(tokens per sequence, caches, output) -> for each sequence's last token its logits ([B, vocab]) or
    // its greedy token (Pipeline::step). The engine asks for greedy tokens when every sequence it samples in
    // the step is greedy and nobody listens to on_logits, so the step waits for token ids, not logits; the
    // other ranks, which do not sample, always do. control: host collectives between the ranks (MPI), null
    // for one rank; its rank 0 schedules.
    using Forward =
        std::function<StepResult(const std::vector<std::vector<int32_t>>&, const std::vector<KvCache*>&, StepOutput)>;
    Engine(Model& model, Forward forward, Communicator* control);

    bool is_scheduler() const { return rank_ == 0; }
    // Rank 0: queues a request (its arrival is now); throws naming the request when it can never run.
    void submit(Request request);
    bool idle() const { return scheduler_.idle(); }
    // Every rank: one step, scheduled on rank 0 and broadcast. False, on every rank, once rank 0 has called
    // finish() (rank 0 itself gets false when idle).
    bool step();
    // Rank 0: tells the other ranks that the run is over.
    void finish();
    double now() const;  // seconds since the engine started

    std::function<void(const Request&, int32_t token)> on_token;  // rank 0, as each token is sampled
    std::function<void(const RequestResult&)> on_finish;          // rank 0, as each request ends
    // Rank 0, before each sampling: the logits the token is drawn from ([vocab]).
    std::function<void(const Request&, const float* logits, int64_t vocab)> on_logits;
    // Rank 0: threads that draw a step's temperature rows (0: the host's cores per rank, at most 16).
    int sampling_threads = 0;
    // Rank 0: the tokenizer that requests' stop strings are matched with (runtime/stop_strings.h), their text
    // decoded with special tokens hidden or not; submit refuses stop strings without it.
    void set_stop_text(const text::Tokenizer* tokenizer, bool skip_special);
    const EngineStats& stats() const { return stats_; }
    const Scheduler& scheduler() const { return scheduler_; }

private:
    std::vector<int64_t> encode(const StepPlan& plan) const;
    StepPlan decode(const std::vector<int64_t>& words) const;
    std::vector<int64_t> broadcast(std::vector<int64_t> words);
    StepOutput output_for(const StepPlan& plan) const;
    void sample(const StepPlan& plan, const StepResult& out);
    // The sampled rows' tokens drawn from their logits ([seqs, vocab]); -1 for rows that do not sample.
    std::vector<int32_t> draw_tokens(const StepPlan& plan, const std::vector<float>& logits);

    Model& model_;
    Forward forward_;
    Communicator* control_;
    int rank_ = 0;
    Scheduler scheduler_;
    std::map<int64_t, KvCache> caches_;                   // per running sequence
    std::map<int64_t, RequestResult> results_;            // rank 0, per sequence not yet finished
    std::map<int64_t, StopStringMatcher> stop_matchers_;  // rank 0, per unfinished sequence with stop strings
    const text::Tokenizer* stop_tokenizer_ = nullptr;
    bool stop_skip_special_ = true;
    EngineStats stats_;
    double start_ = 0;
    std::unique_ptr<ThreadPool> sampling_pool_;  // rank 0, made at the first step that samples several rows
};

// The Scheduler's limits for a model: its step limits and KV pool.
SchedulerLimits scheduler_limits(const Model& model);

}  // namespace ecf8
