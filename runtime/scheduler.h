// Scheduler: continuous batching over the paged KV pool, in the spirit of vLLM's scheduler. Host logic only
// (it runs on rank 0; runtime/engine.h broadcasts what it decides).
//
// Each step gets a budget of max_num_batched_tokens token rows and max_num_seqs sequences:
//   - running sequences first, in admission order: a sequence still prefilling gets its next chunk (as much
//     of its prompt as the budget left allows), a generating one its one decode token;
//   - then waiting requests, first come first served, while the budget, max_num_seqs and free KV blocks
//     allow; a prompt longer than the budget is prefilled in chunks over several steps.
// When a running sequence needs a block and none is free, the most recently admitted running sequence is
// preempted: its blocks go back to the pool and it waits at the head of the queue, to be prefilled again
// from its prompt and the tokens it has generated so far (recompute; its outputs are kept). So running out
// of blocks queues work; it never fails. A request that could never fit (its prompt and output need more
// blocks than the whole pool) is refused at submit.
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "runtime/request.h"

namespace ecf8 {

struct SchedulerLimits {
    int64_t max_num_seqs = 1;
    int64_t max_num_batched_tokens = 1;
    int64_t max_model_len = 1;
    int64_t block_tokens = 1;
    int64_t total_blocks = 1;
    void validate() const;
};

// One sequence the scheduler tracks. `tokens` is the prompt followed by every generated token; `cached` of
// them are in the KV cache.
struct Sequence {
    int64_t seq_id = 0;  // the engine's handle, unique per run
    Request request;
    std::vector<int32_t> tokens;
    int64_t prompt_len = 0;
    int64_t cached = 0;
    int64_t blocks = 0;  // KV blocks it holds
    int64_t generated() const { return static_cast<int64_t>(tokens.size()) - prompt_len; }
};

// What one step runs: per sequence, the tokens to feed (a prefill chunk or one decode token), and whether
// its logits are sampled (the chunk completes what is cached up to its last token).
struct ScheduledSeq {
    int64_t seq_id = 0;
    std::vector<int32_t> tokens;
    bool sample = false;
};

struct StepPlan {
    std::vector<int64_t> released;  // sequences whose KV blocks go back before the step (finished, preempted)
    std::vector<ScheduledSeq> seqs;
    int64_t tokens() const;
};

class Scheduler {
public:
    explicit Scheduler(const SchedulerLimits& limits);

    // Queues a request; throws naming the request when it can never run (empty prompt, prompt beyond
    // max_model_len, or more KV blocks than the pool has).
    int64_t submit(Request request);
    bool idle() const { return waiting_.empty() && running_.empty(); }
    size_t waiting() const { return waiting_.size(); }
    size_t running() const { return running_.size(); }
    int64_t free_blocks() const { return free_blocks_; }
    int64_t preemptions() const { return preemptions_; }

    // The next step (empty when idle). Blocks are counted as the Model will take them.
    StepPlan schedule();
    // After the step: seq's sampled token (scheduled with sample = true). Returns the finish reason; a
    // finished sequence leaves at once, and its blocks are released before the next step.
    FinishReason append(int64_t seq_id, int32_t token);
    // Ends a running sequence now (a stop string in its text): it leaves, and its blocks are released before
    // the next step.
    void finish(int64_t seq_id);
    // A running sequence (throws for another id).
    const Sequence& running_sequence(int64_t seq_id) const;

private:
    int64_t blocks_for(int64_t tokens) const { return (tokens + limits_.block_tokens - 1) / limits_.block_tokens; }
    // Takes the blocks s needs to cache `cached` tokens; false, taking none, when too few are free.
    bool grow(Sequence& s, int64_t cached);
    // Preempts running_[i]: its blocks back, to the head of the queue, out of the plan if it was in it.
    void preempt(size_t i, StepPlan& plan, int64_t& budget);
    // Schedules running_[i]'s next tokens within the budget, preempting the newest sequences for blocks.
    // False when running_[i] itself had to be preempted.
    bool schedule_running(size_t i, StepPlan& plan, int64_t& budget);

    SchedulerLimits limits_;
    int64_t next_id_ = 0;
    int64_t free_blocks_ = 0;
    int64_t preemptions_ = 0;
    std::deque<Sequence> waiting_;
    std::vector<Sequence> running_;         // admission order
    std::vector<int64_t> pending_release_;  // finished since the last schedule
};

}  // namespace ecf8
