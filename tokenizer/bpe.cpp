// Byte-level BPE (bpe.h): loading the vocabulary and merges, the two merge loops and the word cache.
#include "tokenizer/bpe.h"

#include <algorithm>
#include <bit>
#include <climits>
#include <cstring>
#include <mutex>

#include "common/error.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/json_fields.h"

namespace ecf8::text {

// ---------------------------------------------------------------------------------------------------
// Merge table and merge loops

void MergeTable::build(const std::vector<std::pair<uint64_t, Merge>>& merges) {
    size_t capacity = 16;
    while (capacity < merges.size() * 2) capacity *= 2;
    slots_.assign(capacity, Slot{});
    mask_ = capacity - 1;
    shift_ = 64 - std::countr_zero(capacity);
    for (const auto& [key, merge] : merges) {
        size_t slot = hash(key);
        while (slots_[slot].key != kEmpty && slots_[slot].key != key) slot = (slot + 1) & mask_;
        slots_[slot] = {key, merge};  // a repeated pair keeps its last rank, as Hugging Face's map does
    }
}

void merge_by_rescan(const MergeTable& merges, std::vector<int32_t>& ids) {
    size_t n = ids.size();
    if (n < 2) return;
    thread_local std::vector<MergeTable::Merge> pairs;  // pairs[i]: ids[i] followed by ids[i + 1]
    pairs.resize(n - 1);
    auto rank_of = [&](size_t i) { return pairs[i].rank < 0 ? INT32_MAX : pairs[i].rank; };
    for (size_t i = 0; i + 1 < n; ++i) pairs[i] = merges.find(ids[i], ids[i + 1]);
    while (n > 1) {
        size_t best = 0;
        for (size_t i = 1; i + 1 < n; ++i) {
            if (rank_of(i) < rank_of(best)) best = i;
        }
        if (pairs[best].rank < 0) break;
        ids[best] = pairs[best].merged;
        std::copy(ids.begin() + static_cast<ptrdiff_t>(best) + 2, ids.begin() + static_cast<ptrdiff_t>(n),
                  ids.begin() + static_cast<ptrdiff_t>(best) + 1);
        std::copy(pairs.begin() + static_cast<ptrdiff_t>(best) + 1, pairs.begin() + static_cast<ptrdiff_t>(n) - 1,
                  pairs.begin() + static_cast<ptrdiff_t>(best));
        --n;
        if (best + 1 < n) pairs[best] = merges.find(ids[best], ids[best + 1]);
        if (best > 0) pairs[best - 1] = merges.find(ids[best - 1], ids[best]);
    }
    ids.resize(n);
}

void merge_by_heap(const MergeTable& merges, std::vector<int32_t>& ids) {
    const auto n = static_cast<int32_t>(ids.size());
    if (n < 2) return;
    struct Symbol {
        int32_t id, prev, next;
        bool alive;
    };
    struct Candidate {  // a pair starting at symbol `pos`; lowest rank first, then leftmost
        int32_t rank, pos;
        bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
    };
    thread_local std::vector<Symbol> symbols;
    thread_local std::vector<Candidate> heap;
    symbols.resize(static_cast<size_t>(n));
    heap.clear();
    auto push = [&](int32_t pos) {
        const Symbol& left = symbols[static_cast<size_t>(pos)];
        if (left.next < 0) return;
        const auto m = merges.find(left.id, symbols[static_cast<size_t>(left.next)].id);
        if (m.rank < 0) return;
        heap.push_back({m.rank, pos});
        std::push_heap(heap.begin(), heap.end(), std::greater<>());
    };
    for (int32_t i = 0; i < n; ++i)
        symbols[static_cast<size_t>(i)] = {ids[static_cast<size_t>(i)], i - 1, i + 1 < n ? i + 1 : -1, true};
    for (int32_t i = 0; i + 1 < n; ++i) push(i);
    while (!heap.empty()) {
        std::pop_heap(heap.begin(), heap.end(), std::greater<>());
        const Candidate top = heap.back();
        heap.pop_back();
        Symbol& left = symbols[static_cast<size_t>(top.pos)];
        if (!left.alive || left.next < 0) continue;
        Symbol& right = symbols[static_cast<size_t>(left.next)];
        const auto m = merges.find(left.id, right.id);
        if (m.rank != top.rank) continue;  // stale: one side has merged since
        left.id = m.merged;
        right.alive = false;
        left.next = right.next;
        if (right.next >= 0) symbols[static_cast<size_t>(right.next)].prev = top.pos;
        if (left.prev >= 0) push(left.prev);
        push(top.pos);
    }
    ids.clear();
    for (int32_t i = 0; i >= 0; i = symbols[static_cast<size_t>(i)].next)
        ids.push_back(symbols[static_cast<size_t>(i)].id);
}

// ---------------------------------------------------------------------------------------------------
// Word cache: direct-mapped, fixed-size slots (no allocation per word), striped locks so that encode
// can be called from many threads.

class WordCache {
public:
    static constexpr size_t kMaxWord = 30;
    static constexpr size_t kMaxIds = 8;

    WordCache() : slots_(kSlots) {}

    bool lookup(std::string_view word, uint64_t hash, std::vector<int32_t>& out) const {
        const Slot& slot = slots_[hash & (kSlots - 1)];
        std::lock_guard lock(locks_[hash % kLocks]);
        if (slot.hash != hash || slot.word_length != word.size() ||
            std::memcmp(slot.word, word.data(), word.size()) != 0) {
            return false;
        }
        out.insert(out.end(), slot.ids, slot.ids + slot.id_count);
        return true;
    }

    void store(std::string_view word, uint64_t hash, std::span<const int32_t> ids) {
        if (word.size() > kMaxWord || ids.size() > kMaxIds) return;
        Slot& slot = slots_[hash & (kSlots - 1)];
        std::lock_guard lock(locks_[hash % kLocks]);
        slot.hash = hash;
        slot.word_length = static_cast<uint8_t>(word.size());
        slot.id_count = static_cast<uint8_t>(ids.size());
        std::memcpy(slot.word, word.data(), word.size());
        std::copy(ids.begin(), ids.end(), slot.ids);
    }

private:
    static constexpr size_t kSlots = size_t{1} << 15;
    static constexpr size_t kLocks = 61;  // prime, so lock stripes do not follow slot bits
    struct Slot {
        uint64_t hash = 0;
        uint8_t word_length = 0;  // 0: empty (words are never empty)
        uint8_t id_count = 0;
        char word[kMaxWord];
        int32_t ids[kMaxIds];
    };
    std::vector<Slot> slots_;
    mutable std::array<std::mutex, kLocks> locks_;
};

// ---------------------------------------------------------------------------------------------------
// BpeModel

BpeModel::BpeModel() : cache_(std::make_unique<WordCache>()) {}
BpeModel::BpeModel(BpeModel&&) noexcept = default;
BpeModel& BpeModel::operator=(BpeModel&&) noexcept = default;
BpeModel::~BpeModel() = default;

std::optional<int32_t> BpeModel::token_id(std::string_view written) const {
    const auto it = vocab_.find(std::string(written));
    if (it == vocab_.end()) return std::nullopt;
    return it->second;
}

void BpeModel::merge_word(std::string_view word, std::vector<int32_t>& ids) const {
    ids.clear();
    bool previous_unk = false;
    for (const char c : word) {
        const int32_t id = byte_ids_[static_cast<unsigned char>(c)];
        if (id >= 0) {
            ids.push_back(id);
            previous_unk = false;
        } else if (unk_id_ && !(fuse_unk_ && previous_unk)) {  // a byte the vocabulary lacks
            ids.push_back(*unk_id_);
            previous_unk = true;
        }
    }
    // The rescan costs O(n^2) but is faster than the heap for the short words that dominate.
    constexpr size_t kRescanLimit = 48;
    if (ids.size() <= kRescanLimit) {
        merge_by_rescan(merges_, ids);
    } else {
        merge_by_heap(merges_, ids);
    }
}

void BpeModel::encode_word(std::string_view word, std::vector<int32_t>& out) const {
    if (word.size() == 1 && byte_ids_[static_cast<unsigned char>(word[0])] >= 0) {
        out.push_back(byte_ids_[static_cast<unsigned char>(word[0])]);
        return;
    }
    if (ignore_merges_) {
        const auto it = raw_vocab_.find(std::string(word));
        if (it != raw_vocab_.end()) {
            out.push_back(it->second);
            return;
        }
    }
    const bool cacheable = word.size() <= WordCache::kMaxWord;
    const uint64_t hash = cacheable ? std::hash<std::string_view>{}(word) : 0;
    if (cacheable && cache_->lookup(word, hash, out)) return;
    thread_local std::vector<int32_t> ids;
    merge_word(word, ids);
    if (cacheable) cache_->store(word, hash, ids);
    out.insert(out.end(), ids.begin(), ids.end());
}

namespace {

// A merges entry: "left right" (the original format) or ["left", "right"] (tokenizers >= 0.20).
std::pair<std::string, std::string> merge_sides(const nlohmann::json& entry, size_t index, const std::string& source) {
    const std::string path = "model.merges[" + std::to_string(index) + "]";
    if (entry.is_string()) {
        const std::string text = entry.get<std::string>();
        const size_t space = text.find(' ');
        ECF8_CHECK(space != std::string::npos && text.find(' ', space + 1) == std::string::npos,
                   field_path(source, path) << " = '" << text << "' must be two tokens separated by one space");
        return {text.substr(0, space), text.substr(space + 1)};
    }
    ECF8_CHECK(entry.is_array() && entry.size() == 2 && entry[0].is_string() && entry[1].is_string(),
               field_path(source, path) << " must be \"a b\" or [\"a\", \"b\"], not " << entry.dump());
    return {entry[0].get<std::string>(), entry[1].get<std::string>()};
}

void check_unsupported_options(const nlohmann::json& model, const std::string& source) {
    const auto dropout = model.find("dropout");
    ECF8_CHECK(dropout == model.end() || dropout->is_null() || (dropout->is_number() && dropout->get<double>() == 0.0),
               field_path(source, "model.dropout") << ": BPE dropout is not supported (only null or 0)");
    for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
        const auto it = model.find(key);
        ECF8_CHECK(it == model.end() || it->is_null() || (it->is_string() && it->get<std::string>().empty()),
                   field_path(source, std::string("model.") + key) << " is not supported (only null or empty)");
    }
    ECF8_CHECK(!json_bool_or(model, "byte_fallback", false, source, "model.byte_fallback"),
               field_path(source, "model.byte_fallback") << ": byte_fallback is not supported");
}

}  // namespace

BpeModel BpeModel::from_json(const nlohmann::json& model, const std::string& source) {
    check_unsupported_options(model, source);
    BpeModel bpe;
    const auto& vocab = json_field(model, "vocab", source, "model.vocab");
    ECF8_CHECK(vocab.is_object(), field_path(source, "model.vocab") << " must be an object of token: id");
    int32_t max_id = -1;
    for (const auto& [token, id_json] : vocab.items()) {
        const int32_t id = json_id(id_json, source, "model.vocab[\"" + token + "\"]");
        ECF8_CHECK(id < kMaxTokenId, field_path(source, "model.vocab[\"" + token + "\"]")
                                         << " = " << id << " is implausibly large");
        bpe.vocab_.emplace(token, id);
        max_id = std::max(max_id, id);
    }
    bpe.tokens_.assign(static_cast<size_t>(max_id + 1), std::string());
    for (const auto& [token, id] : bpe.vocab_) {
        bpe.tokens_[static_cast<size_t>(id)] = token;
        if (auto raw = from_byte_level(token)) bpe.raw_vocab_.emplace(std::move(*raw), id);
    }
    for (int b = 0; b < 256; ++b) {
        const auto id = bpe.token_id(to_byte_level(std::string(1, static_cast<char>(b))));
        bpe.byte_ids_[static_cast<size_t>(b)] = id ? *id : -1;
    }

    const auto& merges = json_field(model, "merges", source, "model.merges");
    ECF8_CHECK(merges.is_array(), field_path(source, "model.merges") << " must be a list");
    std::vector<std::pair<uint64_t, MergeTable::Merge>> table;
    table.reserve(merges.size());
    for (size_t i = 0; i < merges.size(); ++i) {
        const auto [left, right] = merge_sides(merges[i], i, source);
        const auto left_id = bpe.token_id(left), right_id = bpe.token_id(right), merged_id = bpe.token_id(left + right);
        ECF8_CHECK(left_id && right_id && merged_id, field_path(source, "model.merges[" + std::to_string(i) + "]")
                                                         << ": '" << left << "', '" << right << "' or '" << left
                                                         << right << "' is not in model.vocab");
        table.push_back({MergeTable::pair_key(*left_id, *right_id), {static_cast<int32_t>(i), *merged_id}});
    }
    bpe.merges_.build(table);

    const auto unk = model.find("unk_token");
    if (unk != model.end() && !unk->is_null()) {
        ECF8_CHECK(unk->is_string(), field_path(source, "model.unk_token") << " must be a string or null");
        bpe.unk_id_ = bpe.token_id(unk->get<std::string>());
        ECF8_CHECK(bpe.unk_id_, field_path(source, "model.unk_token")
                                    << " '" << unk->get<std::string>() << "' is not in model.vocab");
    }
    bpe.fuse_unk_ = json_bool_or(model, "fuse_unk", false, source, "model.fuse_unk");
    bpe.ignore_merges_ = json_bool_or(model, "ignore_merges", false, source, "model.ignore_merges");
    return bpe;
}

}  // namespace ecf8::text
