// Streaming detokenization: text is emitted as tokens arrive, never half of a UTF-8 character.
#pragma once

#include <cstdint>
#include <string>

#include "tokenizer/tokenizer.h"

namespace ecf8::text {

class StreamingDetokenizer {
public:
    // skip_special_tokens hides special tokens (as Hugging Face's decode does).
    StreamingDetokenizer(const Tokenizer& tokenizer, bool skip_special_tokens);

    // The text that `id` completes; empty while a UTF-8 character is still incomplete.
    std::string push(int32_t id);
    // What is left: bytes of an unfinished character become U+FFFD. The detokenizer is then empty.
    std::string finish();

private:
    const Tokenizer* tokenizer_;
    bool skip_special_;
    std::string pending_;  // bytes of a character not yet complete
};

}  // namespace ecf8::text
