// The engine's step: schedule (rank 0), broadcast, forward (every rank), sample (rank 0).
#include "runtime/engine.h"

#include <algorithm>
#include <chrono>
#include <optional>
#include <thread>

#include "common/error.h"
#include "kernels/cpu/sampling.h"

namespace ecf8 {
namespace {

double wall_seconds() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

constexpr int64_t kStep = 1, kStop = 0;

}  // namespace

SchedulerLimits scheduler_limits(const Model& model) {
    const ModelOptions& o = model.options();
    return {o.max_step_seqs, o.max_step_tokens, o.max_seq_len, o.kv.block_tokens, o.kv.blocks};
}

Engine::Engine(Model& model, Forward forward, Communicator* control)
    : model_(model),
      forward_(std::move(forward)),
      control_(control),
      rank_(control ? control->rank() : 0),
      scheduler_(scheduler_limits(model)),
      start_(wall_seconds()) {
    ECF8_CHECK(control_ != nullptr || model.world().world_size == 1,
               "the engine of a world of " << model.world().world_size << " ranks needs a control communicator");
}

double Engine::now() const { return wall_seconds() - start_; }

void Engine::submit(Request request) {
    ECF8_CHECK(is_scheduler(), "requests are submitted on rank 0, which schedules");
    for (int32_t t : request.prompt)
        ECF8_CHECK(t >= 0 && t < model_.config().vocab_size, "request '" << request.id << "': token id " << t
                                                                         << " is outside the vocabulary [0, "
                                                                         << model_.config().vocab_size << ")");
    ECF8_CHECK(request.params.stop.empty() || stop_tokenizer_ != nullptr,
               "request '" << request.id << "': stop strings need the model's tokenizer (--tokenizer)");
    std::optional<StopStringMatcher> matcher;
    if (!request.params.stop.empty()) matcher.emplace(*stop_tokenizer_, stop_skip_special_, request.params.stop);
    RequestResult r;
    r.id = request.id;
    r.prompt_tokens = static_cast<int64_t>(request.prompt.size());
    r.arrival_s = now();
    const int64_t seq = scheduler_.submit(std::move(request));
    results_[seq] = std::move(r);
    if (matcher) stop_matchers_.emplace(seq, std::move(*matcher));
}

void Engine::set_stop_text(const text::Tokenizer* tokenizer, bool skip_special) {
    stop_tokenizer_ = tokenizer;
    stop_skip_special_ = skip_special;
}

// [kStep, released count, released ids.., seq count, (seq id, token count, sample, tokens..)..]
std::vector<int64_t> Engine::encode(const StepPlan& plan) const {
    std::vector<int64_t> w = {kStep, static_cast<int64_t>(plan.released.size())};
    w.insert(w.end(), plan.released.begin(), plan.released.end());
    w.push_back(static_cast<int64_t>(plan.seqs.size()));
    for (const ScheduledSeq& s : plan.seqs) {
        w.insert(w.end(), {s.seq_id, static_cast<int64_t>(s.tokens.size()), s.sample ? 1 : 0});
        w.insert(w.end(), s.tokens.begin(), s.tokens.end());
    }
    return w;
}

StepPlan Engine::decode(const std::vector<int64_t>& w) const {
    StepPlan plan;
    size_t at = 1;
    auto next = [&]() {
        ECF8_CHECK(at < w.size(), "engine: a truncated step from rank 0");
        return w[at++];
    };
    for (int64_t n = next(); n > 0; --n) plan.released.push_back(next());
    for (int64_t n = next(); n > 0; --n) {
        ScheduledSeq s;
        s.seq_id = next();
        const int64_t tokens = next();
        s.sample = next() != 0;
        for (int64_t i = 0; i < tokens; ++i) s.tokens.push_back(static_cast<int32_t>(next()));
        plan.seqs.push_back(std::move(s));
    }
    return plan;
}

std::vector<int64_t> Engine::broadcast(std::vector<int64_t> words) {
    if (control_ == nullptr || control_->size() == 1) return words;
    int64_t n = static_cast<int64_t>(words.size());
    control_->broadcast(&n, 1, ElemType::I64, 0);
    words.resize(static_cast<size_t>(n));
    control_->broadcast(words.data(), words.size(), ElemType::I64, 0);
    return words;
}

void Engine::finish() {
    ECF8_CHECK(is_scheduler(), "finish() is rank 0's");
    broadcast({kStop});
}

bool Engine::step() {
    std::vector<int64_t> words;
    if (is_scheduler()) {
        if (idle()) return false;
        const StepPlan plan = scheduler_.schedule();
        // Submit refuses what could never fit, so a step with work waiting always runs something.
        ECF8_CHECK(!plan.seqs.empty() || !plan.released.empty() || scheduler_.running() > 0,
                   "engine: the scheduler ran nothing with " << scheduler_.waiting() << " requests waiting");
        words = encode(plan);
    }
    words = broadcast(std::move(words));
    if (words.at(0) == kStop) return false;
    const StepPlan plan = decode(words);
    for (int64_t id : plan.released) caches_.erase(id);  // the blocks go back to the pool
    if (plan.seqs.empty()) return true;
    std::vector<std::vector<int32_t>> tokens;
    std::vector<KvCache*> caches;
    for (const ScheduledSeq& s : plan.seqs) {
        auto it = caches_.try_emplace(s.seq_id, model_.new_cache()).first;
        tokens.push_back(s.tokens);
        caches.push_back(&it->second);
    }
    const double t0 = wall_seconds();
    const StepResult out = forward_(tokens, caches, output_for(plan));
    const double seconds = wall_seconds() - t0;
    stats_.forward_seconds += seconds;
    stats_.step_log.push_back({static_cast<int>(plan.seqs.size()), plan.tokens(), seconds});
    ++stats_.steps;
    stats_.tokens += plan.tokens();
    const KvPool& pool = model_.kv_pool();
    stats_.peak_blocks_used = std::max(stats_.peak_blocks_used, pool.blocks() - pool.free_blocks());
    if (is_scheduler()) sample(plan, out);
    return true;
}

StepOutput Engine::output_for(const StepPlan& plan) const {
    if (!is_scheduler()) return StepOutput::GreedyIds;  // nothing to sample: the fewest bytes back
    if (on_logits) return StepOutput::Logits;
    for (const ScheduledSeq& s : plan.seqs)
        if (s.sample && scheduler_.running_sequence(s.seq_id).request.params.temperature > 0.0f)
            return StepOutput::Logits;
    return StepOutput::GreedyIds;
}

std::vector<int32_t> Engine::draw_tokens(const StepPlan& plan, const std::vector<float>& logits) {
    const int64_t vocab = model_.config().vocab_size;
    std::vector<size_t> rows;
    for (size_t i = 0; i < plan.seqs.size(); ++i)
        if (plan.seqs[i].sample) rows.push_back(i);
    std::vector<int32_t> drawn(plan.seqs.size(), -1);
    // Rows are independent and each takes about a millisecond at DeepSeek's vocabulary, so a batch of them
    // is spread over the host's cores (the ranks' compute is idle while rank 0 samples).
    if (rows.size() > 1 && sampling_pool_ == nullptr) {
        const int per_rank = static_cast<int>(std::thread::hardware_concurrency()) / model_.world().gpus_per_node;
        sampling_pool_ =
            std::make_unique<ThreadPool>(sampling_threads > 0 ? sampling_threads : std::clamp(per_rank, 1, 16));
    }
    auto draw = [&](size_t r) {
        const size_t i = rows[r];
        const Sequence& seq = scheduler_.running_sequence(plan.seqs[i].seq_id);
        const SamplingParams& p = seq.request.params;
        drawn[i] = static_cast<int32_t>(
            cpu::sample_top_p(logits.data() + i * vocab, vocab, p.temperature, p.top_p, p.seed, seq.generated()));
    };
    if (rows.size() > 1)
        sampling_pool_->parallel_for(rows.size(), draw);
    else if (rows.size() == 1)
        draw(0);
    return drawn;
}

void Engine::sample(const StepPlan& plan, const StepResult& out) {
    const int64_t vocab = model_.config().vocab_size;
    const bool greedy = !out.ids.empty();
    ECF8_CHECK(greedy ? out.ids.size() == plan.seqs.size()
                      : out.logits.size() == plan.seqs.size() * static_cast<size_t>(vocab),
               "engine: " << (greedy ? out.ids.size() : out.logits.size()) << (greedy ? " tokens" : " logits")
                          << " for " << plan.seqs.size() << " sequences of " << vocab);
    const std::vector<int32_t> drawn = greedy ? out.ids : draw_tokens(plan, out.logits);
    for (size_t i = 0; i < plan.seqs.size(); ++i) {
        const ScheduledSeq& s = plan.seqs[i];
        if (!s.sample) continue;  // a prefill chunk short of the end of what is to be cached
        const Sequence& seq = scheduler_.running_sequence(s.seq_id);
        if (on_logits) on_logits(seq.request, greedy ? nullptr : out.logits.data() + i * vocab, vocab);
        const int32_t token = drawn[i];
        RequestResult& r = results_.at(s.seq_id);
        if (r.output.empty()) r.first_token_s = now();
        r.output.push_back(token);
        if (on_token) on_token(seq.request, token);
        FinishReason why = scheduler_.append(s.seq_id, token);  // may end the sequence
        const auto matcher = stop_matchers_.find(s.seq_id);
        if (matcher != stop_matchers_.end()) {
            const std::string* stop = matcher->second.push(token);
            // A stop string outranks the length limit that the same token reached, as in vLLM.
            if (stop != nullptr && why != FinishReason::Stop) {
                if (why == FinishReason::None) scheduler_.finish(s.seq_id);
                why = FinishReason::Stop;
                r.stop_string = *stop;
            }
            if (why != FinishReason::None) stop_matchers_.erase(matcher);
        }
        if (why == FinishReason::None) continue;
        r.finish = why;
        r.finish_s = now();
        if (on_finish) on_finish(r);
        results_.erase(s.seq_id);
    }
    stats_.preemptions = scheduler_.preemptions();
}

}  // namespace ecf8
