// The byte-level BPE model of tokenizer.json: a vocabulary, merges ranked by their order, and the merge
// loop that always applies the lowest-ranked adjacent pair, leftmost first (Hugging Face's order).
// Words arrive as raw bytes (pretokenizer.h); each byte starts as the token of its byte-level character.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace ecf8::text {

// Merges as an open-addressing hash table from a pair of token ids to (rank, merged id).
class MergeTable {
public:
    struct Merge {
        int32_t rank = -1;  // -1: the pair does not merge
        int32_t merged = -1;
    };
    void build(const std::vector<std::pair<uint64_t, Merge>>& merges);
    Merge find(int32_t left, int32_t right) const {
        const uint64_t key = pair_key(left, right);
        for (size_t slot = hash(key);; slot = (slot + 1) & mask_) {
            const Slot& s = slots_[slot];
            if (s.key == key) return s.merge;
            if (s.key == kEmpty) return {};
        }
    }
    static uint64_t pair_key(int32_t left, int32_t right) {
        return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
    }

private:
    static constexpr uint64_t kEmpty = ~0ull;
    struct Slot {
        uint64_t key = kEmpty;
        Merge merge;
    };
    size_t hash(uint64_t key) const { return static_cast<size_t>((key * 0x9E3779B97F4A7C15ull) >> shift_); }
    std::vector<Slot> slots_{1};
    size_t mask_ = 0;
    int shift_ = 63;
};

// The two merge loops, exposed so a test can check that they agree: a rescan of the pairs for short
// words, a heap for long ones. Both rewrite `ids` in place.
void merge_by_rescan(const MergeTable& merges, std::vector<int32_t>& ids);
void merge_by_heap(const MergeTable& merges, std::vector<int32_t>& ids);

class WordCache;

class BpeModel {
public:
    // `model` is tokenizer.json's "model" object; errors name `source` and the field.
    static BpeModel from_json(const nlohmann::json& model, const std::string& source);
    BpeModel(BpeModel&&) noexcept;
    BpeModel& operator=(BpeModel&&) noexcept;
    ~BpeModel();

    // Appends the ids of one word (raw bytes, not empty). Thread-safe: the word cache locks.
    void encode_word(std::string_view word, std::vector<int32_t>& out) const;

    std::optional<int32_t> token_id(std::string_view written) const;  // the vocabulary's spelling
    // The vocabulary's spelling of each id; empty where no token has the id.
    const std::vector<std::string>& tokens() const { return tokens_; }
    const MergeTable& merges() const { return merges_; }
    size_t entry_count() const { return vocab_.size(); }  // tokens in the vocabulary (ids may have holes)

private:
    BpeModel();
    void merge_word(std::string_view word, std::vector<int32_t>& ids) const;

    std::unordered_map<std::string, int32_t> vocab_;      // spelling (byte-level characters) -> id
    std::unordered_map<std::string, int32_t> raw_vocab_;  // raw bytes -> id, for ignore_merges
    std::vector<std::string> tokens_;
    std::array<int32_t, 256> byte_ids_{};  // -1: the byte's character is not in the vocabulary
    MergeTable merges_;
    std::optional<int32_t> unk_id_;
    bool fuse_unk_ = false;
    bool ignore_merges_ = false;
    std::unique_ptr<WordCache> cache_;
};

}  // namespace ecf8::text
