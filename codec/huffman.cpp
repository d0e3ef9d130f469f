// Package-merge (Larmore & Hirschberg) in O(n * max_len), tracking only which merged items are leaves:
// at every level the selected leaves are a prefix of the weight-sorted symbols, so counting them per
// level gives each symbol's code length without materialising packages.
#include "codec/huffman.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <vector>

#include "common/error.h"

namespace ecf8 {

void build_code_lengths(const uint64_t freq[kAlphabetSize], int max_len, uint8_t lengths[kAlphabetSize]) {
    ECF8_CHECK(max_len >= 1 && max_len <= 15, "code length cap " << max_len << " is outside 1..15");
    std::fill(lengths, lengths + kAlphabetSize, 0);
    std::vector<int> symbols;
    for (int s = 0; s < kAlphabetSize; ++s)
        if (freq[s]) symbols.push_back(s);
    const size_t n = symbols.size();
    if (n == 0) return;
    if (n == 1) {  // a lone symbol still needs one bit so the table has no hole
        lengths[symbols[0]] = 1;
        lengths[symbols[0] == 0 ? 1 : 0] = 1;
        return;
    }
    ECF8_CHECK(n <= (size_t{1} << max_len), n << " symbols cannot be coded within " << max_len << " bits");
    std::stable_sort(symbols.begin(), symbols.end(), [&](int a, int b) { return freq[a] < freq[b]; });

    // leaf_flags[level] marks, in merge order, whether each item at that level is a leaf.
    std::vector<std::vector<uint8_t>> leaf_flags(max_len + 1);
    std::vector<uint64_t> packages, merged;
    for (int level = max_len; level >= 1; --level) {
        merged.clear();
        auto& flags = leaf_flags[level];
        flags.clear();
        size_t li = 0, pi = 0;
        while (li < n || pi < packages.size()) {
            bool take_leaf = pi >= packages.size() || (li < n && freq[symbols[li]] <= packages[pi]);
            merged.push_back(take_leaf ? freq[symbols[li++]] : packages[pi++]);
            flags.push_back(take_leaf);
        }
        packages.clear();
        for (size_t i = 0; i + 1 < merged.size(); i += 2) packages.push_back(merged[i] + merged[i + 1]);
    }
    size_t take = 2 * n - 2;
    for (int level = 1; level <= max_len && take > 0; ++level) {
        const auto& flags = leaf_flags[level];
        size_t leaves = 0;
        for (size_t i = 0; i < take; ++i) leaves += flags[i];
        for (size_t i = 0; i < leaves; ++i) ++lengths[symbols[i]];
        take = 2 * (take - leaves);
    }
}

void canonical_codes(const uint8_t lengths[kAlphabetSize], uint32_t codes[kAlphabetSize]) {
    std::array<int, kAlphabetSize> order;
    for (int s = 0; s < kAlphabetSize; ++s) order[s] = s;
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return lengths[a] < lengths[b]; });
    uint32_t code = 0;
    int prev_len = 0;
    for (int s : order) {
        codes[s] = 0;
        if (lengths[s] == 0) continue;
        if (prev_len) code = (code + 1) << (lengths[s] - prev_len);
        prev_len = lengths[s];
        codes[s] = code;
    }
}

bool is_complete_code(const uint8_t lengths[kAlphabetSize], int max_len) {
    uint64_t kraft = 0;  // in units of 2^-max_len
    bool any = false;
    for (int s = 0; s < kAlphabetSize; ++s) {
        if (lengths[s] == 0) continue;
        if (lengths[s] > max_len) return false;
        any = true;
        kraft += uint64_t{1} << (max_len - lengths[s]);
    }
    return !any || kraft == (uint64_t{1} << max_len);
}

uint64_t coded_bits(const uint64_t freq[kAlphabetSize], const uint8_t lengths[kAlphabetSize]) {
    uint64_t bits = 0;
    for (int s = 0; s < kAlphabetSize; ++s) bits += freq[s] * lengths[s];
    return bits;
}

double histogram_entropy(const uint64_t freq[kAlphabetSize]) {
    double total = 0;
    for (int s = 0; s < kAlphabetSize; ++s) total += static_cast<double>(freq[s]);
    if (total == 0) return 0;
    double h = 0;
    for (int s = 0; s < kAlphabetSize; ++s) {
        if (!freq[s]) continue;
        double p = static_cast<double>(freq[s]) / total;
        h -= p * std::log2(p);
    }
    return h;
}

}  // namespace ecf8
