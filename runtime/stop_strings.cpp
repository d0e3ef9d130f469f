// Stop strings over a request's streamed text.
#include "runtime/stop_strings.h"

#include <algorithm>

namespace ecf8 {

StopStringMatcher::StopStringMatcher(const text::Tokenizer& tokenizer, bool skip_special,
                                     std::vector<std::string> stops)
    : detok_(tokenizer, skip_special), stops_(std::move(stops)) {
    for (const std::string& s : stops_) longest_ = std::max(longest_, s.size());
}

const std::string* StopStringMatcher::push(int32_t id) {
    const std::string piece = detok_.push(id);
    if (piece.empty()) return nullptr;
    // Only a match that ends in the new piece is new: search from longest_ - 1 bytes before it.
    const size_t from = text_.size() >= longest_ ? text_.size() - (longest_ - 1) : 0;
    text_ += piece;
    const std::string* best = nullptr;
    size_t best_at = std::string::npos;
    for (const std::string& s : stops_) {
        const size_t at = text_.find(s, from);
        if (at < best_at) best = &s, best_at = at;
    }
    return best;
}

std::string result_text(const RequestResult& r, const text::Tokenizer& tokenizer, bool skip_special) {
    std::string text = tokenizer.decode(r.output, skip_special);
    if (!r.stop_string.empty()) text = text.substr(0, text.find(r.stop_string));
    return text;
}

}  // namespace ecf8
