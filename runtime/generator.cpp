// generate(): the prefill + decode loop.
#include "runtime/generator.h"

#include <chrono>

#include "common/error.h"
#include "kernels/cpu/sampling.h"

namespace ecf8 {

void GenerationOptions::validate() const {
    ECF8_CHECK(max_new_tokens >= 1, "max_new_tokens must be >= 1, got " << max_new_tokens);
    ECF8_CHECK(top_p > 0.0f && top_p <= 1.0f, "top_p must be in (0, 1], got " << top_p);
    ECF8_CHECK(temperature >= 0.0f, "temperature must be >= 0, got " << temperature);
}

GenerationResult generate(const ForwardFn& forward, const std::vector<std::vector<int32_t>>& prompts,
                          const std::vector<KvCache*>& caches, int64_t vocab, const GenerationOptions& options) {
    options.validate();
    ECF8_CHECK(!prompts.empty() && prompts.size() == caches.size(),
               "generate: " << prompts.size() << " prompts for " << caches.size() << " caches");
    const size_t n = prompts.size();
    GenerationResult result;
    result.generated.resize(n);
    result.stopped_on_eos.assign(n, false);

    std::vector<size_t> active(n);  // sequences still generating, in order
    for (size_t s = 0; s < n; ++s) active[s] = s;
    std::vector<std::vector<int32_t>> batch_tokens = prompts;
    while (!active.empty()) {
        std::vector<KvCache*> batch_caches;
        int64_t tokens = 0;
        for (size_t i = 0; i < active.size(); ++i) {
            batch_caches.push_back(caches[active[i]]);
            tokens += static_cast<int64_t>(batch_tokens[i].size());
        }
        const auto start = std::chrono::steady_clock::now();
        std::vector<float> logits = forward(batch_tokens, batch_caches);
        ECF8_CHECK(
            logits.size() == active.size() * static_cast<size_t>(vocab),
            "forward returned " << logits.size() << " logits for " << active.size() << " sequences of " << vocab);
        std::vector<size_t> still;
        std::vector<std::vector<int32_t>> next;
        for (size_t i = 0; i < active.size(); ++i) {
            const size_t s = active[i];
            const uint64_t counter = result.generated[s].size();
            const int32_t token = static_cast<int32_t>(cpu::sample_top_p(
                logits.data() + i * vocab, vocab, options.temperature, options.top_p, options.seed + s, counter));
            result.generated[s].push_back(token);
            if (options.on_token) options.on_token(s, token);
            const bool eos = options.eos_token_id >= 0 && token == options.eos_token_id;
            result.stopped_on_eos[s] = eos;
            if (!eos && static_cast<int>(result.generated[s].size()) < options.max_new_tokens) {
                still.push_back(s);
                next.push_back({token});
            }
        }
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        result.steps.push_back({static_cast<int>(active.size()), tokens, seconds});
        if (options.keep_logits) result.logits.push_back(std::move(logits));
        active = std::move(still);
        batch_tokens = std::move(next);
    }
    return result;
}

}  // namespace ecf8
