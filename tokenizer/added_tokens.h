// Added tokens (special or not) of tokenizer.json, found in raw text before pre-tokenization the way
// Hugging Face's AddedVocabulary finds them: leftmost match, longest at that position (Aho-Corasick
// LeftmostLongest), then the token's single_word / lstrip / rstrip flags. Tokens with normalized=false
// are matched first, on the whole text; tokens with normalized=true then on the text between those.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/function_ref.h"

namespace ecf8::text {

struct AddedToken {
    std::string content;
    int32_t id = 0;
    bool special = false;
    bool lstrip = false;       // takes the whitespace on its left
    bool rstrip = false;       // takes the whitespace on its right
    bool single_word = false;  // matches only where no word character touches it
    bool normalized = true;    // matched after normalization, in the second pass
};

// One pass: a byte trie of the tokens' contents.
class AddedTokenMatcher {
public:
    AddedTokenMatcher();
    void add(const AddedToken& token);

    // Calls on_text with the (non-empty) text between tokens and on_token with each token found, in order.
    void split(std::string_view text, FunctionRef<void(std::string_view)> on_text,
               FunctionRef<void(int32_t)> on_token) const;

private:
    struct Node {
        int32_t token = -1;                              // index in tokens_ when a content ends here
        std::vector<std::pair<uint8_t, int32_t>> edges;  // byte -> child (the root uses root_ instead)
    };
    // The trie node after `node` on `byte`, or -1.
    int32_t child_of(int32_t node, uint8_t byte) const;
    // The longest content starting at text[pos]: its token index and length, or -1.
    int32_t longest_at(std::string_view text, size_t pos, size_t& length) const;
    bool accepts(const AddedToken& token, std::string_view text, size_t begin, size_t end) const;

    std::vector<Node> nodes_;
    std::array<int32_t, 256> root_{};  // the root's children, dense: every text byte is looked up here
    std::vector<AddedToken> tokens_;
};

}  // namespace ecf8::text
