// A request and its result: what a client submits to the Engine (runtime/engine.h) and gets back, and what
// runtime/requests_io.h reads and writes as JSON Lines. Plain data with no dependency on the model, so the
// request parser builds (and is fuzzed) on its own.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ecf8 {

inline constexpr size_t kMaxStopStrings = 32, kMaxStopStringBytes = 1024;

struct SamplingParams {
    int max_new_tokens = 16;
    float temperature = 0.0f;  // <= 0: greedy
    float top_p = 1.0f;
    uint64_t seed = 0;
    std::vector<int32_t> stop_ids;  // generation ends after any of these (it is returned)
    // Generation ends once the output's text holds any of these (the engine then needs the tokenizer,
    // runtime/stop_strings.h); the tokens are returned, the text stops before the string.
    std::vector<std::string> stop;
    void validate() const;  // throws naming the field
};

struct Request {
    std::string id;
    std::vector<int32_t> prompt;
    SamplingParams params;
};

enum class FinishReason { None, Length, Stop };
const char* finish_reason_name(FinishReason r);  // "length", "stop"

struct RequestResult {
    std::string id;
    std::vector<int32_t> output;  // the generated tokens (a stop token included)
    FinishReason finish = FinishReason::None;
    std::string stop_string;  // the stop string that ended it (finish Stop), else empty
    int64_t prompt_tokens = 0;
    double arrival_s = 0, first_token_s = 0, finish_s = 0;  // since the engine started
};

}  // namespace ecf8
