// Package-merge gives complete, length-limited codes whose cost equals unrestricted Huffman when the cap
// does not bind, and never beats it when it does.
#include <gtest/gtest.h>

#include <queue>
#include <random>

#include "codec/decode_table.h"
#include "codec/huffman.h"
#include "codec_test_util.h"

namespace {

uint64_t huffman_cost(const uint64_t freq[256]) {
    std::priority_queue<uint64_t, std::vector<uint64_t>, std::greater<>> q;
    for (int s = 0; s < 256; ++s)
        if (freq[s]) q.push(freq[s]);
    if (q.size() == 1) return q.top();
    uint64_t cost = 0;
    while (q.size() > 1) {
        uint64_t a = q.top();
        q.pop();
        uint64_t b = q.top();
        q.pop();
        cost += a + b;
        q.push(a + b);
    }
    return cost;
}

TEST(Huffman, MatchesUnlimitedHuffmanWhenCapIsLoose) {
    std::mt19937_64 rng(ecf8::test::test_seed());
    for (int trial = 0; trial < 200; ++trial) {
        uint64_t freq[256] = {};
        int used = 2 + static_cast<int>(rng() % 40);
        for (int i = 0; i < used; ++i) freq[rng() % 256] += 1 + rng() % 1000;
        uint8_t lengths[256];
        ecf8::build_code_lengths(freq, 15, lengths);
        ASSERT_TRUE(ecf8::is_complete_code(lengths, 15));
        EXPECT_EQ(ecf8::coded_bits(freq, lengths), huffman_cost(freq)) << "trial " << trial;
    }
}

TEST(Huffman, RespectsCapAndStaysComplete) {
    uint64_t freq[256];
    for (int s = 0; s < 256; ++s) freq[s] = uint64_t{1} << (s % 40);  // wildly skewed: Huffman would go deep
    for (int cap : {8, 9, 10, 11, 12}) {
        uint8_t lengths[256];
        ecf8::build_code_lengths(freq, cap, lengths);
        EXPECT_TRUE(ecf8::is_complete_code(lengths, cap)) << "cap " << cap;
        for (int s = 0; s < 256; ++s) EXPECT_LE(lengths[s], cap);
        EXPECT_GE(ecf8::coded_bits(freq, lengths), huffman_cost(freq));
    }
}

TEST(Huffman, LimitedCodeIsOptimalForSmallAlphabets) {
    // Exhaustive check: every complete code with lengths <= cap over 4 symbols.
    std::mt19937_64 rng(ecf8::test::test_seed() + 1);
    for (int trial = 0; trial < 100; ++trial) {
        uint64_t freq[256] = {};
        for (int s = 0; s < 4; ++s) freq[s] = 1 + rng() % (s == 0 ? 100000 : 10);
        const int cap = 2 + trial % 2;
        uint8_t lengths[256];
        ecf8::build_code_lengths(freq, cap, lengths);
        uint64_t best = UINT64_MAX;
        for (int a = 1; a <= cap; ++a)
            for (int b = 1; b <= cap; ++b)
                for (int c = 1; c <= cap; ++c)
                    for (int d = 1; d <= cap; ++d) {
                        uint8_t l[256] = {static_cast<uint8_t>(a), static_cast<uint8_t>(b), static_cast<uint8_t>(c),
                                          static_cast<uint8_t>(d)};
                        if (ecf8::is_complete_code(l, cap)) best = std::min(best, ecf8::coded_bits(freq, l));
                    }
        EXPECT_EQ(ecf8::coded_bits(freq, lengths), best) << "trial " << trial;
    }
}

TEST(Huffman, SingleAndEmptyAlphabets) {
    uint64_t freq[256] = {};
    uint8_t lengths[256];
    ecf8::build_code_lengths(freq, 12, lengths);
    for (int s = 0; s < 256; ++s) EXPECT_EQ(lengths[s], 0);
    freq[0] = 5;
    ecf8::build_code_lengths(freq, 12, lengths);
    EXPECT_EQ(lengths[0], 1);
    EXPECT_EQ(lengths[1], 1);
    EXPECT_TRUE(ecf8::is_complete_code(lengths, 12));
}

TEST(DecodeTable, EveryEntryDecodesItsCode) {
    uint64_t freq[256];
    for (int s = 0; s < 256; ++s) freq[s] = 1 + (s * 2654435761u) % 5000;
    uint8_t lengths[256];
    ecf8::build_code_lengths(freq, 11, lengths);
    uint32_t codes[256];
    ecf8::build_encode_codes(lengths, codes);
    std::vector<uint16_t> table(1 << 11, 0xFFFF);
    ecf8::build_decode_table(lengths, 11, table.data());
    for (uint16_t e : table) EXPECT_NE(e, 0xFFFF) << "hole in a complete code's table";
    for (int s = 0; s < 256; ++s) {
        uint16_t e = table[codes[s]];
        EXPECT_EQ(e & 0xFF, s);
        EXPECT_EQ(e >> 8, lengths[s]);
    }
}

}  // namespace
