// Unit tests of the tokenizer core on hand-made tokenizer.json files: BPE merges, added tokens and their
// flags, decode, invalid UTF-8 and streaming detokenization. Expected ids were produced by Hugging Face
// tokenizers 0.23 on the same files (tiny_tokenizer.h); compare_hf.py checks DeepSeek's real files.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <random>
#include <thread>

#include "common/error.h"
#include "tests/tokenizer/tiny_tokenizer.h"
#include "tokenizer/bpe.h"
#include "tokenizer/detokenizer.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace ecf8::text {
namespace {

using testing::tiny_tokenizer;
using testing::TinyAdded;
using Ids = std::vector<int32_t>;

const std::vector<std::string> kMerges = {"a b", "ab c", "b c", "a a", "h i", "Ġ h", "Ġh i"};

// Added tokens 263-271, with every flag.
std::vector<TinyAdded> flagged_tokens() {
    return {
        {.content = "<s>", .special = true, .normalized = false},
        {.content = "<mask>", .lstrip = true, .rstrip = true, .single_word = true},
        {.content = "<x>", .special = true, .normalized = false},
        {.content = "<x>y", .special = true, .normalized = false},
        {.content = "zz", .normalized = false},
        {.content = "zzz"},
        {.content = "<r>", .normalized = false, .rstrip = true},
        {.content = "<l>", .normalized = false, .lstrip = true},
        {.content = "<w>", .normalized = false, .single_word = true},
    };
}

Tokenizer tiny(const std::vector<TinyAdded>& added = flagged_tokens(), const std::string& config = "") {
    return Tokenizer::from_json(tiny_tokenizer(kMerges, added).dump(), config, "tiny.json");
}

TEST(Bpe, MergesByRankThenLeftmost) {
    const Tokenizer t = tiny();
    EXPECT_EQ(t.encode("abc", false), (Ids{257}));
    EXPECT_EQ(t.encode("bcab", false), (Ids{258, 256}));  // "a b" (rank 0) before "b c" (rank 2)
    EXPECT_EQ(t.encode("aaa", false), (Ids{259, 97}));    // equal ranks: the leftmost pair first
    EXPECT_EQ(t.encode("hi hi", false), (Ids{260, 32, 260}));
    EXPECT_EQ(t.encode("", false), Ids{});
}

TEST(Bpe, PairFormOfMergesIsAccepted) {
    nlohmann::json j = tiny_tokenizer(kMerges);
    nlohmann::json pairs = nlohmann::json::array();
    for (const auto& m : kMerges) pairs.push_back({m.substr(0, m.find(' ')), m.substr(m.find(' ') + 1)});
    j["model"]["merges"] = pairs;
    const Tokenizer t = Tokenizer::from_json(j.dump(), "", "pairs.json");
    EXPECT_EQ(t.encode("bcab", false), (Ids{258, 256}));
}

// The rescan loop (short words) and the heap loop (long words) must merge identically.
TEST(Bpe, RescanAndHeapAgree) {
    const unsigned seed = std::random_device{}();
    std::printf("seed %u\n", seed);
    std::mt19937 rng(seed);
    for (int round = 0; round < 20; ++round) {
        std::vector<std::pair<uint64_t, MergeTable::Merge>> merges;
        int32_t next_id = 4;
        for (int rank = 0; rank < 60; ++rank) {  // pairs over a small alphabet, so merges chain often
            const auto left = static_cast<int32_t>(rng() % static_cast<unsigned>(next_id));
            const auto right = static_cast<int32_t>(rng() % static_cast<unsigned>(next_id));
            merges.push_back({MergeTable::pair_key(left, right), {rank, next_id++}});
        }
        MergeTable table;
        table.build(merges);
        for (int word = 0; word < 50; ++word) {
            std::vector<int32_t> ids(1 + rng() % 200);
            for (auto& id : ids) id = static_cast<int32_t>(rng() % 4);
            std::vector<int32_t> by_heap = ids;
            merge_by_rescan(table, ids);
            merge_by_heap(table, by_heap);
            ASSERT_EQ(ids, by_heap) << "seed " << seed << " round " << round;
        }
    }
}

TEST(AddedTokens, LongestMatchFirst) {
    const Tokenizer t = tiny();
    EXPECT_EQ(t.encode("<x>yz", false), (Ids{266, 122}));
    EXPECT_EQ(t.encode("<x>z", false), (Ids{265, 122}));
    EXPECT_EQ(t.encode("<s>hi<s>", false), (Ids{263, 260, 263}));
}

TEST(AddedTokens, NonNormalizedTokensAreMatchedBeforeNormalizedOnes) {
    const Tokenizer t = tiny();
    EXPECT_EQ(t.encode("zzzz", false), (Ids{267, 267}));  // "zz" (not normalized) wins over "zzz"
    EXPECT_EQ(t.encode("zzz", false), (Ids{267, 122}));
}

TEST(AddedTokens, SingleWordLstripRstrip) {
    const Tokenizer t = tiny();
    EXPECT_EQ(t.encode("<mask> My name <mask> A<mask> <mask>ony <mask>", false),
              (Ids{264, 77, 121, 32, 110, 97, 109, 101, 264, 65,  60,  109, 97, 115,
                   107, 62, 32,  60, 109, 97, 115, 107, 62,  111, 110, 121, 264}));
    EXPECT_EQ(t.encode("Hi <mask> there\t<mask>\t<mask>\u2000", false),
              (Ids{72, 105, 264, 116, 104, 101, 114, 101, 264, 264}));
    EXPECT_EQ(t.encode("a <r>  b", false), (Ids{97, 32, 269, 98}));
    EXPECT_EQ(t.encode("a  <l> b", false), (Ids{97, 270, 32, 98}));
    EXPECT_EQ(t.encode("x  <l><l>  <r>  <r> y", false), (Ids{120, 270, 270, 32, 32, 269, 269, 121}));
    EXPECT_EQ(t.encode("a<w>b <w> <w>,\u00e9<w>", false),
              (Ids{97, 60, 119, 62, 98, 32, 271, 32, 271, 44, 195, 169, 60, 119, 62}));
}

TEST(AddedTokens, LookupAndSpecialFlags) {
    const Tokenizer t = tiny();
    EXPECT_EQ(t.token_id("<s>"), 263);
    EXPECT_EQ(t.token_id("Ġhi"), 262);
    EXPECT_EQ(t.token_id("nope"), std::nullopt);
    EXPECT_TRUE(t.is_special(263));
    EXPECT_FALSE(t.is_special(264));
    EXPECT_FALSE(t.is_special(99999));
    EXPECT_EQ(t.vocab_size(), 272);
    EXPECT_EQ(t.token_bytes(262), " hi");
    EXPECT_EQ(t.token_bytes(263), "<s>");
}

TEST(Encode, InvalidUtf8IsReplacedFirst) {
    const Tokenizer t = tiny();
    EXPECT_EQ(t.encode("a\xff"
                       "b",
                       false),
              (Ids{97, 239, 191, 189, 98}));
    EXPECT_EQ(t.encode("a\xff"
                       "b",
                       false),
              t.encode("a\uFFFD"
                       "b",
                       false));
    EXPECT_EQ(t.encode("\xe4\xb8", false), t.encode("\uFFFD", false));
}

TEST(Utf8, ReplacementMatchesPython) {
    // Python: bytes.decode("utf-8", errors="replace"), one U+FFFD per maximal invalid subpart.
    const std::string r(kReplacementChar);
    EXPECT_EQ(replace_invalid_utf8("\xF0\x9F\x98"), r);
    EXPECT_EQ(replace_invalid_utf8("\xE0\x80\xAF"), r + r + r);
    EXPECT_EQ(replace_invalid_utf8("\xED\xA0\x80"), r + r + r);
    EXPECT_EQ(replace_invalid_utf8("\xF4\x90\x80\x80"), r + r + r + r);
    EXPECT_EQ(replace_invalid_utf8("\xC3("), r + "(");
    EXPECT_EQ(replace_invalid_utf8("\xE4\xB8\xE4\xB8\xAD"), r + "\xE4\xB8\xAD");
    EXPECT_EQ(replace_invalid_utf8("\xC0\xAF"), r + r);
    EXPECT_EQ(replace_invalid_utf8("ok \xF0\x9F\x98\x80"), "ok \xF0\x9F\x98\x80");
    EXPECT_TRUE(is_valid_utf8("\xF4\x8F\xBF\xBF"));
    EXPECT_FALSE(is_valid_utf8("\xF4\x90\x80\x80"));
}

TEST(Decode, BytesSpecialsAndErrors) {
    const Tokenizer t = tiny();
    const Ids ids = t.encode("<s>hi abc<mask>", false);
    EXPECT_EQ(t.decode(ids), "<s>hi abc<mask>");
    EXPECT_EQ(t.decode(ids, true), "hi abc<mask>");  // <mask> is not special
    EXPECT_EQ(t.decode(Ids{0xE4, 0xB8}), std::string(kReplacementChar));
    EXPECT_EQ(t.decode(Ids{0xE4, 263, 0xB8, 0xAD}, true), "\xE4\xB8\xAD");  // skipped tokens join the bytes
    try {
        (void)t.decode(Ids{97, 5000});
        FAIL() << "an id outside the vocabulary must throw";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("5000"), std::string::npos) << e.what();
    }
    EXPECT_THROW((void)t.decode(Ids{-1}), Error);
}

// Pushing ids one at a time never gives half a character, and the pieces add up to decode().
void expect_stream_matches_decode(const Tokenizer& t, const Ids& ids, bool skip_special) {
    StreamingDetokenizer stream(t, skip_special);
    std::string joined;
    for (const int32_t id : ids) {
        const std::string piece = stream.push(id);
        EXPECT_TRUE(is_valid_utf8(piece));
        joined += piece;
    }
    joined += stream.finish();
    EXPECT_EQ(joined, t.decode(ids, skip_special));
}

TEST(StreamingDetokenizer, NeverSplitsACharacter) {
    const Tokenizer t = tiny();
    for (const std::string text : {"👨‍👩‍👧‍👦 家族 🇯🇵!", "中文和日本語のテキスト",
                                   "abc<s>é\xCC\x81z", "a\xff\xe4\xb8 b"}) {
        const Ids ids = t.encode(text, false);
        ASSERT_GT(ids.size(), 3u);
        expect_stream_matches_decode(t, ids, false);
        expect_stream_matches_decode(t, ids, true);
    }
    StreamingDetokenizer stream(t, false);
    EXPECT_EQ(stream.push(0xF0), "");
    EXPECT_EQ(stream.push(0x9F), "");
    EXPECT_EQ(stream.push(0x98), "");
    EXPECT_EQ(stream.push(0x80), "\xF0\x9F\x98\x80");
    EXPECT_EQ(stream.push(0xE4), "");
    EXPECT_EQ(stream.push('a'), std::string(kReplacementChar) + "a");  // broken before 'a'
    EXPECT_EQ(stream.push(0xE4), "");
    EXPECT_EQ(stream.finish(), std::string(kReplacementChar));
    EXPECT_EQ(stream.finish(), "");
}

// encode is const and shares the word cache between threads: concurrent results equal serial ones.
TEST(Encode, ConcurrentCallsAgree) {
    const Tokenizer t = tiny();
    std::vector<std::string> texts;
    for (int i = 0; i < 200; ++i)
        texts.push_back("abc bcab hi " + std::to_string(i * 7919) + " zzz<s>aaa" + std::string(i % 13, 'a'));
    std::vector<Ids> serial;
    for (const auto& text : texts) serial.push_back(t.encode(text, false));
    std::vector<std::thread> threads;
    std::atomic<int> mismatches{0};
    for (int k = 0; k < 4; ++k) {
        threads.emplace_back([&, k] {
            for (int round = 0; round < 20; ++round) {
                for (size_t i = 0; i < texts.size(); ++i) {
                    const size_t j = (i * 31 + static_cast<size_t>(k + round)) % texts.size();
                    if (t.encode(texts[j], false) != serial[j]) ++mismatches;
                }
            }
        });
    }
    for (auto& thread : threads) thread.join();
    EXPECT_EQ(mismatches.load(), 0);
}

TEST(Config, BosEosTemplateAndPostProcessor) {
    nlohmann::json j = tiny_tokenizer(kMerges, flagged_tokens());
    const std::string config = R"({"add_bos_token": true, "bos_token": {"__type": "AddedToken", "content": "<s>"},
        "eos_token": "<x>", "chat_template": [{"name": "tool_use", "template": "T"},
        {"name": "default", "template": "{{ bos_token }}"}]})";
    // add_bos_token alone adds nothing: Hugging Face follows tokenizer.json's post_processor.
    Tokenizer plain = Tokenizer::from_json(j.dump(), config, "tiny.json");
    EXPECT_EQ(plain.bos_id(), 263);
    EXPECT_EQ(plain.eos_id(), 265);
    EXPECT_EQ(plain.bos_token(), "<s>");
    EXPECT_EQ(plain.eos_token(), "<x>");
    EXPECT_EQ(plain.chat_template(), "{{ bos_token }}");
    EXPECT_FALSE(plain.add_bos());
    EXPECT_EQ(plain.encode("hi", true), (Ids{260}));
    // A DeepSeek-V3-style TemplateProcessing adds bos.
    j["post_processor"] = nlohmann::json::parse(R"({"type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [], "special_tokens": {"<s>": {"id": "<s>", "ids": [263], "tokens": ["<s>"]}}})");
    Tokenizer with_bos = Tokenizer::from_json(j.dump(), config, "tiny.json");
    EXPECT_TRUE(with_bos.add_bos());
    EXPECT_FALSE(with_bos.add_eos());
    EXPECT_EQ(with_bos.encode("hi", true), (Ids{263, 260}));
    EXPECT_EQ(with_bos.encode("hi", false), (Ids{260}));
}

}  // namespace
}  // namespace ecf8::text
