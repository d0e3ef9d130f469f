// The continuous-batching scheduler: admission, chunked prefill, decode and preemption by recompute.
#include "runtime/scheduler.h"

#include <algorithm>

#include "common/error.h"

namespace ecf8 {

void SchedulerLimits::validate() const {
    ECF8_CHECK(max_num_seqs >= 1, "scheduler: max_num_seqs must be >= 1, got " << max_num_seqs);
    ECF8_CHECK(max_num_batched_tokens >= max_num_seqs, "scheduler: max_num_batched_tokens "
                                                           << max_num_batched_tokens << " must be >= max_num_seqs "
                                                           << max_num_seqs);
    ECF8_CHECK(max_model_len >= 2, "scheduler: max_model_len must be >= 2, got " << max_model_len);
    ECF8_CHECK(block_tokens >= 1 && total_blocks >= 1,
               "scheduler: the KV pool needs blocks of >= 1 token, got " << total_blocks << " of " << block_tokens);
}

int64_t StepPlan::tokens() const {
    int64_t n = 0;
    for (const ScheduledSeq& s : seqs) n += static_cast<int64_t>(s.tokens.size());
    return n;
}

Scheduler::Scheduler(const SchedulerLimits& limits) : limits_(limits), free_blocks_(limits.total_blocks) {
    limits_.validate();
}

int64_t Scheduler::submit(Request request) {
    request.params.validate();
    const int64_t len = static_cast<int64_t>(request.prompt.size());
    ECF8_CHECK(len >= 1, "request '" << request.id << "': the prompt is empty");
    ECF8_CHECK(len < limits_.max_model_len, "request '" << request.id << "': the prompt has " << len
                                                        << " tokens; max_model_len " << limits_.max_model_len
                                                        << " leaves no room to generate");
    const int64_t most = std::min(len + request.params.max_new_tokens, limits_.max_model_len);
    ECF8_CHECK(blocks_for(most) <= limits_.total_blocks, "request '" << request.id << "': " << most << " tokens need "
                                                                     << blocks_for(most) << " KV blocks, the pool has "
                                                                     << limits_.total_blocks);
    Sequence s;
    s.seq_id = next_id_++;
    s.tokens = request.prompt;
    s.prompt_len = len;
    s.request = std::move(request);
    waiting_.push_back(std::move(s));
    return waiting_.back().seq_id;
}

bool Scheduler::grow(Sequence& s, int64_t cached) {
    const int64_t need = blocks_for(cached) - s.blocks;
    if (need <= 0) return true;
    if (need > free_blocks_) return false;
    free_blocks_ -= need;
    s.blocks += need;
    return true;
}

void Scheduler::preempt(size_t i, StepPlan& plan, int64_t& budget) {
    Sequence s = std::move(running_[i]);
    running_.erase(running_.begin() + static_cast<std::ptrdiff_t>(i));
    for (auto it = plan.seqs.begin(); it != plan.seqs.end(); ++it) {
        if (it->seq_id != s.seq_id) continue;
        budget += static_cast<int64_t>(it->tokens.size());
        plan.seqs.erase(it);
        break;
    }
    free_blocks_ += s.blocks;
    s.blocks = 0;
    s.cached = 0;  // its prompt and outputs so far are prefilled again when it is readmitted
    plan.released.push_back(s.seq_id);
    waiting_.push_front(std::move(s));
    ++preemptions_;
}

bool Scheduler::schedule_running(size_t i, StepPlan& plan, int64_t& budget) {
    const int64_t id = running_[i].seq_id;
    const int64_t left = static_cast<int64_t>(running_[i].tokens.size()) - running_[i].cached;
    const int64_t n = std::min(left, budget);
    if (n <= 0) return true;  // no budget left this step: it waits, keeping its blocks
    while (!grow(running_[i], running_[i].cached + n)) {
        // The newest sequence gives its blocks back (it may be this one).
        const size_t victim = running_.size() - 1;
        preempt(victim, plan, budget);
        if (victim == i) return false;
    }
    Sequence& s = running_[i];
    ECF8_CHECK(s.seq_id == id, "scheduler: sequence order changed while scheduling");
    const auto first = s.tokens.begin() + s.cached;
    plan.seqs.push_back({s.seq_id, std::vector<int32_t>(first, first + n), s.cached + n == int64_t(s.tokens.size())});
    s.cached += n;
    budget -= n;
    return true;
}

StepPlan Scheduler::schedule() {
    StepPlan plan;
    plan.released = std::move(pending_release_);
    pending_release_.clear();
    int64_t budget = limits_.max_num_batched_tokens;
    const int64_t preemptions_before = preemptions_;
    // Decode tokens first, so a long prefill never stalls the sequences already generating; then the
    // prefill chunks of running sequences, in admission order.
    for (const bool decoding : {true, false}) {
        for (size_t i = 0; i < running_.size();) {
            const Sequence& s = running_[i];
            const bool is_decode = static_cast<int64_t>(s.tokens.size()) - s.cached == 1 && s.generated() > 0;
            const bool done = std::any_of(plan.seqs.begin(), plan.seqs.end(),
                                          [&](const ScheduledSeq& q) { return q.seq_id == s.seq_id; });
            if (is_decode != decoding || done) {
                ++i;
                continue;
            }
            if (schedule_running(i, plan, budget)) ++i;
        }
    }
    // Admission: first come first served, while nothing was preempted this step.
    const bool preempted = preemptions_ != preemptions_before;
    while (!preempted && !waiting_.empty() && budget > 0 &&
           static_cast<int64_t>(running_.size()) < limits_.max_num_seqs) {
        Sequence& w = waiting_.front();
        const int64_t n = std::min(static_cast<int64_t>(w.tokens.size()), budget);
        if (blocks_for(n) > free_blocks_) break;
        running_.push_back(std::move(w));
        waiting_.pop_front();
        // The check above leaves it the blocks it needs; should that ever fail, it is back at the head of
        // the queue, and trying again in this step would loop.
        if (!schedule_running(running_.size() - 1, plan, budget)) break;
    }
    return plan;
}

FinishReason Scheduler::append(int64_t seq_id, int32_t token) {
    auto it = std::find_if(running_.begin(), running_.end(), [&](const Sequence& s) { return s.seq_id == seq_id; });
    ECF8_CHECK(it != running_.end(), "scheduler: sequence " << seq_id << " is not running");
    it->tokens.push_back(token);
    const SamplingParams& p = it->request.params;
    FinishReason r = FinishReason::None;
    if (std::find(p.stop_ids.begin(), p.stop_ids.end(), token) != p.stop_ids.end())
        r = FinishReason::Stop;
    else if (it->generated() >= p.max_new_tokens || static_cast<int64_t>(it->tokens.size()) >= limits_.max_model_len)
        r = FinishReason::Length;
    if (r != FinishReason::None) finish(seq_id);
    return r;
}

void Scheduler::finish(int64_t seq_id) {
    auto it = std::find_if(running_.begin(), running_.end(), [&](const Sequence& s) { return s.seq_id == seq_id; });
    ECF8_CHECK(it != running_.end(), "scheduler: sequence " << seq_id << " is not running");
    free_blocks_ += it->blocks;
    pending_release_.push_back(seq_id);
    running_.erase(it);
}

const Sequence& Scheduler::running_sequence(int64_t seq_id) const {
    auto it = std::find_if(running_.begin(), running_.end(), [&](const Sequence& s) { return s.seq_id == seq_id; });
    ECF8_CHECK(it != running_.end(), "scheduler: sequence " << seq_id << " is not running");
    return *it;
}

}  // namespace ecf8
