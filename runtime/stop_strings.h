// Stop strings (SamplingParams::stop): the engine ends a request once the text of its output holds one of
// them, as OpenAI's and vLLM's `stop` do. The text is the output's detokenization (special tokens hidden or
// not, as the results show them); a string may span tokens, and it is found once the character that completes
// it is complete. The tokens are all returned, the text stops before the string.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/request.h"
#include "tokenizer/detokenizer.h"
#include "tokenizer/tokenizer.h"

namespace ecf8 {

class StopStringMatcher {
public:
    StopStringMatcher(const text::Tokenizer& tokenizer, bool skip_special, std::vector<std::string> stops);
    // After the request's next output token: the stop string its text now holds (the one that starts first),
    // or nullptr.
    const std::string* push(int32_t id);

private:
    text::StreamingDetokenizer detok_;
    std::vector<std::string> stops_;
    std::string text_;
    size_t longest_ = 0;
};

// The text of a result: its output decoded, cut before its stop string when one ended it.
std::string result_text(const RequestResult& r, const text::Tokenizer& tokenizer, bool skip_special);

}  // namespace ecf8
