// Generation: batched prefill and decode over any forward function (Model::forward on resident weights, or
// a Pipeline with just-in-time weights), with greedy or seeded temperature/top-p sampling and stops on EOS
// or on a token budget.
//
// Step 0 runs every prompt token of every sequence as one batch (prefill); each later step appends one token
// per unfinished sequence (decode). A finished sequence leaves the batch. Sampling of sequence s uses seed
// (options.seed + s) and the index of the token it generates as counter (kernels/cpu/sampling.h), so a run
// is reproducible and does not depend on batch composition.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "runtime/model.h"

namespace ecf8 {

struct GenerationOptions {
    int max_new_tokens = 16;
    float temperature = 0.0f;  // <= 0: greedy
    float top_p = 1.0f;
    uint64_t seed = 0;
    int64_t eos_token_id = -1;  // < 0: never stop on a token
    bool keep_logits = false;   // keep every step's logits (for --dump-logits and tests)
    // Called with (sequence, token) as each token is sampled, in sequence order within a step (streaming).
    std::function<void(size_t, int32_t)> on_token;
    void validate() const;  // throws ecf8::Error naming the option
};

struct GenerationStep {
    int sequences = 0;   // sequences in the batch
    int64_t tokens = 0;  // tokens the forward processed
    double seconds = 0;  // wall time of the forward and sampling
};

struct GenerationResult {
    std::vector<std::vector<int32_t>> generated;  // per sequence, the new tokens (EOS included when hit)
    std::vector<bool> stopped_on_eos;
    std::vector<GenerationStep> steps;
    // With keep_logits: per step, [sequences in that step's batch, vocab] in sequence order.
    std::vector<std::vector<float>> logits;
};

// forward(tokens per sequence, caches) -> logits of each sequence's last token, [B, vocab].
using ForwardFn =
    std::function<std::vector<float>(const std::vector<std::vector<int32_t>>&, const std::vector<KvCache*>&)>;

// Generates for each prompt. caches must hold one fresh cache per prompt; vocab is the logits' row length.
GenerationResult generate(const ForwardFn& forward, const std::vector<std::vector<int32_t>>& prompts,
                          const std::vector<KvCache*>& caches, int64_t vocab, const GenerationOptions& options);

}  // namespace ecf8
