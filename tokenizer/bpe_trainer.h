// Byte-pair-encoding training: from pre-tokenized words and their counts, learns merges by repeatedly joining
// the most frequent adjacent pair of tokens. Pair counts are kept up to date incrementally (only the words
// that hold the merged pair are revisited), so tens of thousands of merges take well under a second on a
// few hundred KB of text.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace ecf8::text {

struct BpeTrainerInput {
    // Each word is a sequence of alphabet symbols written as one string (e.g. byte-level characters), with
    // the number of times it occurs. Every UTF-8 character of a word must be in `alphabet`.
    std::vector<std::pair<std::string, int64_t>> words;
    std::vector<std::string> alphabet;  // the initial tokens, one UTF-8 character each
    int max_new_tokens = 0;             // stop when this many tokens beyond the alphabet were made
    int64_t min_pair_count = 2;         // stop when no pair occurs this often
};

struct BpeTrainerResult {
    std::vector<std::pair<std::string, std::string>> merges;  // in the order learned (rank order)
    // Tokens the merges made, in order of first appearance. Fewer than merges when a merge spells a token
    // that an earlier merge already made (it then maps to that token, as Hugging Face's trainer does).
    std::vector<std::string> new_tokens;
};

// Deterministic: ties between equally frequent pairs go to the pair of earlier-made tokens (lower left id,
// then lower right id, ids numbering the alphabet first and new tokens in order).
BpeTrainerResult train_bpe(const BpeTrainerInput& input);

}  // namespace ecf8::text
