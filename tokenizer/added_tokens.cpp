// Matching of added tokens (added_tokens.h).
#include "tokenizer/added_tokens.h"

#include "tokenizer/regex.h"
#include "tokenizer/utf8.h"

namespace ecf8::text {

namespace {

// Unicode White_Space, what Rust's regex \s (used by Hugging Face for lstrip / rstrip) matches.
bool is_white_space(char32_t c) {
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

// Rust's regex \w, which decides single_word: alphabetic, marks, decimal digits, connector
// punctuation and the joiners.
bool is_word_char(std::string_view one_char) {
    static const Regex word_char(R"(\A[\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\x{200C}\x{200D}])", "added token matcher");
    size_t begin = 0, end = 0;
    return word_char.find(one_char, 0, begin, end);
}

// Byte offset where the last character of text[0, end) starts.
size_t last_char_start(std::string_view text, size_t end) {
    size_t i = end - 1;
    while (i > 0 && (static_cast<unsigned char>(text[i]) & 0xC0) == 0x80) --i;
    return i;
}

// Start of the whitespace run that ends at `end`.
size_t whitespace_run_start(std::string_view text, size_t end) {
    while (end > 0) {
        const size_t start = last_char_start(text, end);
        size_t length = 0;
        if (!is_white_space(decode_code_point(text.substr(start), length))) break;
        end = start;
    }
    return end;
}

// End of the whitespace run that starts at `begin`.
size_t whitespace_run_end(std::string_view text, size_t begin) {
    while (begin < text.size()) {
        size_t length = 0;
        if (!is_white_space(decode_code_point(text.substr(begin), length))) break;
        begin += length;
    }
    return begin;
}

}  // namespace

AddedTokenMatcher::AddedTokenMatcher() : nodes_(1) { root_.fill(-1); }

void AddedTokenMatcher::add(const AddedToken& token) {
    if (token.content.empty()) return;
    int32_t node = 0;
    for (size_t i = 0; i < token.content.size(); ++i) {
        const auto byte = static_cast<uint8_t>(token.content[i]);
        int32_t child = child_of(node, byte);
        if (child < 0) {
            child = static_cast<int32_t>(nodes_.size());
            nodes_.emplace_back();
            if (node == 0) {
                root_[byte] = child;
            } else {
                nodes_[static_cast<size_t>(node)].edges.emplace_back(byte, child);
            }
        }
        node = child;
    }
    // The first token of a content wins, as the first pattern of an Aho-Corasick automaton does.
    if (nodes_[static_cast<size_t>(node)].token < 0) {
        nodes_[static_cast<size_t>(node)].token = static_cast<int32_t>(tokens_.size());
        tokens_.push_back(token);
    }
}

int32_t AddedTokenMatcher::child_of(int32_t node, uint8_t byte) const {
    if (node == 0) return root_[byte];
    for (const auto& [b, c] : nodes_[static_cast<size_t>(node)].edges) {
        if (b == byte) return c;
    }
    return -1;
}

int32_t AddedTokenMatcher::longest_at(std::string_view text, size_t pos, size_t& length) const {
    int32_t node = root_[static_cast<uint8_t>(text[pos])];
    int32_t best = -1;
    for (size_t i = pos + 1; node >= 0; ++i) {
        const Node& n = nodes_[static_cast<size_t>(node)];
        if (n.token >= 0) {
            best = n.token;
            length = i - pos;
        }
        if (i == text.size()) break;
        node = child_of(node, static_cast<uint8_t>(text[i]));
    }
    return best;
}

bool AddedTokenMatcher::accepts(const AddedToken& token, std::string_view text, size_t begin, size_t end) const {
    if (!token.single_word) return true;
    if (begin > 0) {
        const size_t start = last_char_start(text, begin);
        if (is_word_char(text.substr(start, begin - start))) return false;
    }
    if (end < text.size()) {
        const Utf8Step step = utf8_step(text.substr(end));
        if (is_word_char(text.substr(end, step.length))) return false;
    }
    return true;
}

void AddedTokenMatcher::split(std::string_view text, FunctionRef<void(std::string_view)> on_text,
                              FunctionRef<void(int32_t)> on_token) const {
    size_t text_from = 0;  // where the text not yet given out starts
    size_t pos = 0;
    while (pos < text.size()) {
        if (root_[static_cast<uint8_t>(text[pos])] < 0) {
            ++pos;
            continue;
        }
        size_t length = 0;
        const int32_t index = longest_at(text, pos, length);
        if (index < 0) {
            ++pos;
            continue;
        }
        const AddedToken& token = tokens_[static_cast<size_t>(index)];
        size_t begin = pos, end = pos + length;
        pos = end;  // the search goes on after the match, even when flags discard it or take spaces
        if (!accepts(token, text, begin, end)) continue;
        if (token.lstrip) begin = std::max(whitespace_run_start(text, begin), text_from);
        if (token.rstrip) end = whitespace_run_end(text, end);
        if (text_from < begin) on_text(text.substr(text_from, begin - text_from));
        on_token(token.id);
        text_from = end;
    }
    if (text_from < text.size()) on_text(text.substr(text_from));
}

}  // namespace ecf8::text
