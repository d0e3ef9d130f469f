// Streaming detokenization (detokenizer.h). The bytes of each token are appended to what is pending;
// everything up to a trailing, still completable UTF-8 prefix is given out, invalid bytes as U+FFFD.
// Replacement is prefix-stable (a byte is invalid or not whatever follows, except for such a trailing
// prefix), so the pieces concatenate to exactly what decode() gives for all the ids.
#include "tokenizer/detokenizer.h"

#include "tokenizer/utf8.h"

namespace ecf8::text {

StreamingDetokenizer::StreamingDetokenizer(const Tokenizer& tokenizer, bool skip_special_tokens)
    : tokenizer_(&tokenizer), skip_special_(skip_special_tokens) {}

std::string StreamingDetokenizer::push(int32_t id) {
    const std::string bytes = tokenizer_->token_bytes(id);  // checks the id
    if (skip_special_ && tokenizer_->is_special(id)) return "";
    pending_ += bytes;
    // Find where a trailing incomplete character starts (at most 3 bytes back).
    size_t keep_from = pending_.size();
    for (size_t back = 1; back <= 3 && back <= pending_.size(); ++back) {
        const size_t start = pending_.size() - back;
        const Utf8Step step = utf8_step(std::string_view(pending_).substr(start));
        if (step.truncated && step.length == back) {
            keep_from = start;
            break;
        }
    }
    std::string out = replace_invalid_utf8(std::string_view(pending_).substr(0, keep_from));
    pending_.erase(0, keep_from);
    return out;
}

std::string StreamingDetokenizer::finish() {
    std::string out = replace_invalid_utf8(pending_);
    pending_.clear();
    return out;
}

}  // namespace ecf8::text
