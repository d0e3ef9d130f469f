// The continuous-batching scheduler's decisions, host logic only: the token budget and chunked prefill,
// decode tokens before prefill chunks, admission by max_num_seqs and free blocks, preemption of the newest
// sequence when blocks run out (recompute from prompt and outputs), finish reasons, ending a sequence early,
// refused requests; and random workloads against a model's view of the cache.
#include <gtest/gtest.h>

#include <map>
#include <numeric>
#include <random>

#include "common/error.h"
#include "runtime/scheduler.h"

namespace ecf8 {
namespace {

Request request(const std::string& id, int64_t prompt_len, int max_new_tokens) {
    Request r;
    r.id = id;
    r.prompt.resize(static_cast<size_t>(prompt_len));
    std::iota(r.prompt.begin(), r.prompt.end(), 1);
    r.params.max_new_tokens = max_new_tokens;
    return r;
}

SchedulerLimits limits(int64_t seqs, int64_t tokens, int64_t blocks, int64_t block_tokens = 4, int64_t max_len = 1024) {
    return {seqs, tokens, max_len, block_tokens, blocks};
}

// Samples token 7 for every sequence the plan asks to sample.
void sample_all(Scheduler& s, const StepPlan& plan) {
    for (const ScheduledSeq& q : plan.seqs)
        if (q.sample) s.append(q.seq_id, 7);
}

TEST(Scheduler, LongPromptsArePrefilledInChunksWithinTheTokenBudget) {
    Scheduler s(limits(4, 8, 100));
    const int64_t id = s.submit(request("a", 20, 2));
    std::vector<int64_t> chunks;
    for (int step = 0; step < 3; ++step) {
        const StepPlan plan = s.schedule();
        ASSERT_EQ(plan.seqs.size(), 1u);
        EXPECT_EQ(plan.seqs[0].seq_id, id);
        chunks.push_back(static_cast<int64_t>(plan.seqs[0].tokens.size()));
        EXPECT_EQ(plan.seqs[0].sample, step == 2);  // only the chunk that completes the prompt is sampled
        sample_all(s, plan);
    }
    EXPECT_EQ(chunks, (std::vector<int64_t>{8, 8, 4}));
    const StepPlan decode = s.schedule();
    ASSERT_EQ(decode.seqs.size(), 1u);
    EXPECT_EQ(decode.seqs[0].tokens, std::vector<int32_t>{7});  // the sampled token is fed back
    EXPECT_EQ(s.append(id, 9), FinishReason::Length);
    EXPECT_TRUE(s.idle());
    EXPECT_EQ(s.schedule().released, std::vector<int64_t>{id});  // its blocks go back before the next step
}

TEST(Scheduler, DecodeTokensComeBeforePrefillChunksAndNewRequestsJoin) {
    Scheduler s(limits(3, 6, 100));
    const int64_t a = s.submit(request("a", 2, 5));
    sample_all(s, s.schedule());  // a: prefilled and sampled
    const int64_t b = s.submit(request("b", 10, 5));
    const int64_t c = s.submit(request("c", 3, 5));
    StepPlan plan = s.schedule();
    ASSERT_EQ(plan.seqs.size(), 2u);  // a's decode token, then b's first chunk of 5; c waits for budget
    EXPECT_EQ(plan.seqs[0].seq_id, a);
    EXPECT_EQ(plan.seqs[0].tokens.size(), 1u);
    EXPECT_EQ(plan.seqs[1].seq_id, b);
    EXPECT_EQ(plan.seqs[1].tokens.size(), 5u);
    EXPECT_EQ(plan.tokens(), 6);
    sample_all(s, plan);
    plan = s.schedule();  // a decodes, b's last 5, c gets no budget this step
    ASSERT_EQ(plan.seqs.size(), 2u);
    EXPECT_EQ(plan.seqs[1].seq_id, b);
    EXPECT_TRUE(plan.seqs[1].sample);
    sample_all(s, plan);
    plan = s.schedule();  // a and b decode, c's prompt joins
    ASSERT_EQ(plan.seqs.size(), 3u);
    EXPECT_EQ(plan.seqs[2].seq_id, c);
    EXPECT_EQ(plan.seqs[2].tokens.size(), 3u);
}

TEST(Scheduler, AdmissionStopsAtMaxNumSeqsAndFreeBlocks) {
    Scheduler by_seqs(limits(2, 100, 100));
    for (int i = 0; i < 3; ++i) by_seqs.submit(request("r" + std::to_string(i), 4, 3));
    EXPECT_EQ(by_seqs.schedule().seqs.size(), 2u);
    EXPECT_EQ(by_seqs.waiting(), 1u);

    Scheduler by_blocks(limits(8, 100, 3));  // 3 blocks of 4 tokens
    by_blocks.submit(request("x", 8, 3));    // 2 blocks
    by_blocks.submit(request("y", 8, 3));    // 2 more: must wait
    EXPECT_EQ(by_blocks.schedule().seqs.size(), 1u);
    EXPECT_EQ(by_blocks.free_blocks(), 1);
    EXPECT_EQ(by_blocks.waiting(), 1u);
}

TEST(Scheduler, RunningOutOfBlocksPreemptsTheNewestAndRecomputesIt) {
    Scheduler s(limits(4, 100, 4));  // 4 blocks of 4 tokens
    const int64_t a = s.submit(request("a", 4, 8));
    const int64_t b = s.submit(request("b", 4, 8));
    sample_all(s, s.schedule());  // both prefilled: 1 block each (2 free)
    EXPECT_EQ(s.free_blocks(), 2);
    // Each decode step caches one more token; position 4 takes each a second block, and position 8 would
    // take a third: b, the newest, gives its two back and waits at the head of the queue.
    StepPlan plan;
    for (int step = 0; step < 10 && s.preemptions() == 0; ++step) {
        plan = s.schedule();
        if (s.preemptions() == 0) sample_all(s, plan);
    }
    ASSERT_EQ(s.preemptions(), 1);
    EXPECT_EQ(plan.released, std::vector<int64_t>{b});
    ASSERT_EQ(plan.seqs.size(), 1u);
    EXPECT_EQ(plan.seqs[0].seq_id, a);
    EXPECT_EQ(s.waiting(), 1u);
    EXPECT_EQ(s.running_sequence(a).blocks, 3);
    sample_all(s, plan);
    // Once a finishes, b comes back and is prefilled again from its prompt and its 3 outputs.
    StepPlan next;
    while ((next = s.schedule()).seqs.size() == 1 && next.seqs[0].seq_id == a) sample_all(s, next);
    ASSERT_EQ(next.seqs.size(), 1u);
    EXPECT_EQ(next.seqs[0].seq_id, b);
    EXPECT_EQ(next.seqs[0].tokens, (std::vector<int32_t>{1, 2, 3, 4, 7, 7, 7, 7, 7}));
    EXPECT_TRUE(next.seqs[0].sample);
}

TEST(Scheduler, StopTokensAndMaxModelLenEndSequences) {
    Scheduler s(limits(4, 100, 100, 4, 6));
    Request r = request("stop", 2, 10);
    r.params.stop_ids = {42};
    const int64_t stop = s.submit(r);
    const int64_t full = s.submit(request("full", 4, 10));
    const StepPlan plan = s.schedule();
    ASSERT_EQ(plan.seqs.size(), 2u);
    EXPECT_EQ(s.append(stop, 42), FinishReason::Stop);
    EXPECT_EQ(s.append(full, 1), FinishReason::None);  // 5 of max_model_len 6
    sample_all(s, s.schedule());                       // "full" reaches 6 tokens
    EXPECT_TRUE(s.idle());
}

TEST(Scheduler, FinishEndsARunningSequenceAndReleasesItsBlocks) {
    Scheduler s(limits(4, 100, 10, 4));
    const int64_t a = s.submit(request("a", 6, 10));  // 2 blocks
    const int64_t b = s.submit(request("b", 3, 10));  // 1 block
    sample_all(s, s.schedule());
    EXPECT_EQ(s.free_blocks(), 7);
    s.finish(a);  // a stop string in its text
    EXPECT_EQ(s.free_blocks(), 9);
    EXPECT_THROW(s.finish(a), Error);  // no longer running
    const StepPlan next = s.schedule();
    EXPECT_EQ(next.released, std::vector<int64_t>{a});
    ASSERT_EQ(next.seqs.size(), 1u);
    EXPECT_EQ(next.seqs[0].seq_id, b);
}

TEST(Scheduler, RequestsThatCanNeverRunAreRefused) {
    Scheduler s(limits(4, 100, 2, 4, 64));
    EXPECT_THROW(s.submit(request("empty", 0, 1)), Error);
    EXPECT_THROW(s.submit(request("too-long", 64, 1)), Error);  // no room to generate
    EXPECT_THROW(s.submit(request("too-big", 6, 8)), Error);    // 14 tokens need 4 blocks of a pool of 2
    Request bad = request("bad-top-p", 2, 1);
    bad.params.top_p = 0;
    EXPECT_THROW(s.submit(bad), Error);
    EXPECT_NO_THROW(s.submit(request("fits", 4, 4)));
    EXPECT_THROW(Scheduler(limits(8, 4, 10)), Error);  // budget below max_num_seqs
}

// What the Model sees of a schedule: per sequence, the tokens fed since it was (re)admitted, which must be
// its prompt and outputs in order, and the KV blocks they take from a pool of the scheduler's size.
struct ModelView {
    std::map<int64_t, std::vector<int32_t>> cached;
    int64_t block_tokens = 1, blocks_used = 0;
    int64_t blocks_for(size_t tokens) const { return (static_cast<int64_t>(tokens) + block_tokens - 1) / block_tokens; }
    void release(int64_t id) {
        blocks_used -= blocks_for(cached[id].size());
        cached[id].clear();
    }
    void feed(int64_t id, const std::vector<int32_t>& tokens) {
        blocks_used -= blocks_for(cached[id].size());
        cached[id].insert(cached[id].end(), tokens.begin(), tokens.end());
        blocks_used += blocks_for(cached[id].size());
    }
};

SchedulerLimits random_limits(std::mt19937& rng) {
    auto draw = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
    SchedulerLimits l;
    l.max_num_seqs = draw(1, 6);
    l.max_num_batched_tokens = draw(l.max_num_seqs, 40);
    l.max_model_len = draw(24, 96);
    l.block_tokens = draw(1, 8);
    const int64_t one_sequence = (l.max_model_len + l.block_tokens - 1) / l.block_tokens;
    l.total_blocks = draw(std::max<int64_t>(1, one_sequence / 2), one_sequence * 3);  // from half a sequence
    return l;
}

// One random workload: up to 24 requests arriving over the steps, with prompts of 1 token to max_model_len
// - 1 (past the token budget, and some past the pool), outputs of 1 to 40 tokens and now and then a stop
// token. Every step is checked against the limits and the model's view; at the end every request has
// finished as its outputs say and every block is back.
class RandomWorkload {
public:
    explicit RandomWorkload(uint32_t seed) : seed_(seed), rng_(seed), limits_(random_limits(rng_)), s_(limits_) {
        model_.block_tokens = limits_.block_tokens;
    }

    // Returns the preemptions.
    int64_t run() {
        const int total = static_cast<int>(draw(1, 24));
        int submitted = 0;
        for (int step = 0; submitted < total || !s_.idle(); ++step) {
            EXPECT_LT(step, 20000) << "seed " << seed_ << ": the workload did not finish";
            for (int k = static_cast<int>(draw(0, 2)); k > 0 && submitted < total; --k) submit(submitted++);
            const StepPlan plan = s_.schedule();
            check(plan);
            if (!testing::Test::HasFailure()) sample(plan);
            if (testing::Test::HasFailure()) return s_.preemptions();  // the first bad step says enough
        }
        for (int64_t id : s_.schedule().released) model_.release(id);
        EXPECT_EQ(finished_, requests_.size()) << "seed " << seed_;
        EXPECT_EQ(s_.free_blocks(), limits_.total_blocks) << "seed " << seed_;
        EXPECT_EQ(model_.blocks_used, 0) << "seed " << seed_;
        return s_.preemptions();
    }

private:
    int64_t draw(int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng_); }

    void submit(int n) {
        Request r = request("r" + std::to_string(n), draw(1, limits_.max_model_len - 1), static_cast<int>(draw(1, 40)));
        if (draw(0, 3) == 0) r.params.stop_ids = {static_cast<int32_t>(draw(0, 9))};
        const int64_t most = std::min<int64_t>(r.prompt.size() + r.params.max_new_tokens, limits_.max_model_len);
        if (model_.blocks_for(static_cast<size_t>(most)) > limits_.total_blocks) {
            EXPECT_THROW(s_.submit(r), Error) << "seed " << seed_;
            return;
        }
        const int64_t id = s_.submit(r);
        tokens_[id] = r.prompt;
        requests_[id] = r;
    }

    void check(const StepPlan& plan) {
        for (int64_t id : plan.released) model_.release(id);
        EXPECT_LE(plan.tokens(), limits_.max_num_batched_tokens) << "seed " << seed_;
        EXPECT_LE(static_cast<int64_t>(plan.seqs.size()), limits_.max_num_seqs) << "seed " << seed_;
        for (const ScheduledSeq& q : plan.seqs) {
            EXPECT_FALSE(q.tokens.empty()) << "seed " << seed_;
            model_.feed(q.seq_id, q.tokens);
            const std::vector<int32_t>& fed = model_.cached[q.seq_id];
            const std::vector<int32_t>& known = tokens_[q.seq_id];
            EXPECT_LE(fed.size(), known.size()) << "seed " << seed_ << ": fed past the known tokens";
            if (fed.size() > known.size()) return;
            EXPECT_TRUE(std::equal(fed.begin(), fed.end(), known.begin())) << "seed " << seed_ << ": fed out of order";
            EXPECT_EQ(q.sample, fed.size() == known.size()) << "seed " << seed_;
        }
        EXPECT_LE(model_.blocks_used, limits_.total_blocks) << "seed " << seed_ << ": the model ran out of blocks";
        EXPECT_EQ(model_.blocks_used + s_.free_blocks(), limits_.total_blocks) << "seed " << seed_;
    }

    // Draws a token (0-9) for every sampled sequence and checks the finish reason the scheduler gives.
    void sample(const StepPlan& plan) {
        for (const ScheduledSeq& q : plan.seqs) {
            if (!q.sample) continue;
            const int32_t t = static_cast<int32_t>(draw(0, 9));
            std::vector<int32_t>& all = tokens_[q.seq_id];
            all.push_back(t);
            const SamplingParams& p = requests_[q.seq_id].params;
            const int64_t outputs = static_cast<int64_t>(all.size() - requests_[q.seq_id].prompt.size());
            const bool stop = std::count(p.stop_ids.begin(), p.stop_ids.end(), t) > 0;
            const bool length =
                outputs >= p.max_new_tokens || static_cast<int64_t>(all.size()) >= limits_.max_model_len;
            const FinishReason r = s_.append(q.seq_id, t);
            EXPECT_EQ(r, stop ? FinishReason::Stop : (length ? FinishReason::Length : FinishReason::None))
                << "seed " << seed_;
            if (r != FinishReason::None) ++finished_;
        }
    }

    uint32_t seed_;
    std::mt19937 rng_;
    SchedulerLimits limits_;
    Scheduler s_;
    ModelView model_;
    std::map<int64_t, std::vector<int32_t>> tokens_;  // prompt and outputs of each request, as sampled
    std::map<int64_t, Request> requests_;
    size_t finished_ = 0;
};

TEST(Scheduler, RandomWorkloadsKeepTheLimitsAndTheModelsViewAndFinish) {
    int64_t preemptions = 0;
    for (uint32_t seed = 0; seed < 400; ++seed) {
        preemptions += RandomWorkload(seed).run();
        if (testing::Test::HasFailure()) break;
    }
    EXPECT_GT(preemptions, 0);  // the pools are small enough that some workloads preempt
}

}  // namespace
}  // namespace ecf8
