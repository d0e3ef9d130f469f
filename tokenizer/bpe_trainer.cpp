// BPE training with incremental pair counts: a pair -> count table, a pair -> words index, and a max-heap
// of (count, pair) whose stale entries are skipped when popped.
#include "tokenizer/bpe_trainer.h"

#include <algorithm>
#include <queue>
#include <string_view>
#include <unordered_map>

#include "common/error.h"
#include "tokenizer/utf8.h"

namespace ecf8::text {
namespace {

using TokenId = uint32_t;
using PairKey = uint64_t;

PairKey pair_key(TokenId left, TokenId right) { return (static_cast<PairKey>(left) << 32) | right; }
TokenId left_of(PairKey key) { return static_cast<TokenId>(key >> 32); }
TokenId right_of(PairKey key) { return static_cast<TokenId>(key & 0xffffffffu); }

struct HeapEntry {
    int64_t count;
    PairKey pair;
    // Max-heap order: higher count first, then the lower pair key (earlier-made tokens).
    bool operator<(const HeapEntry& other) const {
        return count != other.count ? count < other.count : pair > other.pair;
    }
};

class Trainer {
public:
    explicit Trainer(const BpeTrainerInput& input) : input_(input) {
        for (const std::string& symbol : input.alphabet) add_token(symbol);
        ECF8_CHECK(token_ids_.size() == input.alphabet.size(), "BPE alphabet has repeated symbols");
        for (const auto& [word, count] : input.words) add_word(word, count);
        for (const auto& [pair, count] : pair_counts_) heap_.push({count, pair});
    }

    BpeTrainerResult run() {
        BpeTrainerResult result;
        while (static_cast<int>(result.new_tokens.size()) < input_.max_new_tokens && !heap_.empty()) {
            const HeapEntry top = heap_.top();
            heap_.pop();
            const auto it = pair_counts_.find(top.pair);
            if (it == pair_counts_.end() || it->second != top.count) continue;  // stale entry
            if (top.count < input_.min_pair_count) break;
            // Copies: add_token may grow tokens_.
            const std::string left = tokens_[left_of(top.pair)], right = tokens_[right_of(top.pair)];
            result.merges.emplace_back(left, right);
            const size_t before = tokens_.size();
            const TokenId merged = add_token(left + right);
            if (tokens_.size() > before) result.new_tokens.push_back(tokens_[merged]);
            merge_everywhere(top.pair, merged);
        }
        return result;
    }

private:
    TokenId add_token(const std::string& token) {
        const auto [it, inserted] = token_ids_.emplace(token, static_cast<TokenId>(tokens_.size()));
        if (inserted) tokens_.push_back(token);
        return it->second;
    }

    void add_word(std::string_view word, int64_t count) {
        std::vector<TokenId> symbols;
        for (size_t at = 0; at < word.size();) {
            const size_t length = utf8_step(word.substr(at)).length;
            const auto it = token_ids_.find(std::string(word.substr(at, length)));
            ECF8_CHECK(it != token_ids_.end() && it->second < input_.alphabet.size(),
                       "BPE training word '" << word << "' has a character outside the alphabet");
            symbols.push_back(it->second);
            at += length;
        }
        const auto index = static_cast<int32_t>(words_.size());
        for (size_t i = 0; i + 1 < symbols.size(); ++i) {
            const PairKey pair = pair_key(symbols[i], symbols[i + 1]);
            pair_counts_[pair] += count;
            note_word(pair, index);
        }
        words_.push_back(std::move(symbols));
        word_counts_.push_back(count);
    }

    void note_word(PairKey pair, int32_t word) {
        std::vector<int32_t>& list = pair_words_[pair];
        if (list.empty() || list.back() != word) list.push_back(word);
    }

    // Replaces every occurrence of `pair` (left to right, not overlapping) in the words that hold it, and
    // moves the pair counts by the difference between each word's pairs before and after.
    void merge_everywhere(PairKey pair, TokenId merged) {
        std::vector<int32_t> candidates = std::move(pair_words_[pair]);
        pair_words_.erase(pair);
        std::sort(candidates.begin(), candidates.end());
        candidates.erase(std::unique(candidates.begin(), candidates.end()), candidates.end());
        std::unordered_map<PairKey, int64_t> changes;
        for (const int32_t word : candidates) merge_in_word(word, pair, merged, changes);
        for (const auto& [changed, delta] : changes) {
            if (delta == 0) continue;
            const int64_t count = (pair_counts_[changed] += delta);
            if (count > 0) {
                heap_.push({count, changed});
            } else {
                pair_counts_.erase(changed);
            }
        }
    }

    void merge_in_word(int32_t word, PairKey pair, TokenId merged, std::unordered_map<PairKey, int64_t>& changes) {
        std::vector<TokenId>& symbols = words_[word];
        std::vector<TokenId> out;
        out.reserve(symbols.size());
        for (size_t i = 0; i < symbols.size(); ++i) {
            if (i + 1 < symbols.size() && pair_key(symbols[i], symbols[i + 1]) == pair) {
                out.push_back(merged);
                ++i;
            } else {
                out.push_back(symbols[i]);
            }
        }
        if (out.size() == symbols.size()) return;  // a stale index entry: the pair left this word earlier
        const int64_t count = word_counts_[word];
        for (size_t i = 0; i + 1 < symbols.size(); ++i) changes[pair_key(symbols[i], symbols[i + 1])] -= count;
        for (size_t i = 0; i + 1 < out.size(); ++i) {
            const PairKey after = pair_key(out[i], out[i + 1]);
            changes[after] += count;
            note_word(after, word);
        }
        symbols = std::move(out);
    }

    const BpeTrainerInput& input_;
    std::vector<std::string> tokens_;  // id -> token
    std::unordered_map<std::string, TokenId> token_ids_;
    std::vector<std::vector<TokenId>> words_;
    std::vector<int64_t> word_counts_;
    std::unordered_map<PairKey, int64_t> pair_counts_;
    std::unordered_map<PairKey, std::vector<int32_t>> pair_words_;  // may list a word the pair has left
    std::priority_queue<HeapEntry> heap_;
};

}  // namespace

BpeTrainerResult train_bpe(const BpeTrainerInput& input) {
    ECF8_CHECK(input.max_new_tokens >= 0, "BPE training: max_new_tokens " << input.max_new_tokens << " < 0");
    ECF8_CHECK(input.min_pair_count >= 1, "BPE training: min_pair_count must be at least 1");
    return Trainer(input).run();
}

}  // namespace ecf8::text
