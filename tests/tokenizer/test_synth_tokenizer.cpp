// The BPE trainer on hand-checked inputs, and the synthetic models' tokenizer: deterministic, laid out as
// documented (specials, bytes, merges, chat tokens at the top), loaded by ecf8's Tokenizer, round-tripping.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "common/error.h"
#include "tokenizer/bpe_trainer.h"
#include "tokenizer/chat_format.h"
#include "tokenizer/synth_sample.h"
#include "tokenizer/synth_tokenizer.h"
#include "tokenizer/tokenizer.h"

namespace ecf8::text {
namespace {

using Merges = std::vector<std::pair<std::string, std::string>>;

BpeTrainerResult train(std::vector<std::pair<std::string, int64_t>> words, int max_new_tokens) {
    BpeTrainerInput input;
    input.words = std::move(words);
    input.alphabet = {"a", "b", "c", "d"};
    input.max_new_tokens = max_new_tokens;
    return train_bpe(input);
}

TEST(BpeTrainer, MergesTheMostFrequentPairUntilNoneOccursTwice) {
    // ab: 5 + 3 = 8, bc: 3 + 1 = 4. After ab: (ab, c) 3, (b, c) 1.
    const BpeTrainerResult r = train({{"ab", 5}, {"abc", 3}, {"bc", 1}}, 100);
    EXPECT_EQ(r.merges, (Merges{{"a", "b"}, {"ab", "c"}}));
    EXPECT_EQ(r.new_tokens, (std::vector<std::string>{"ab", "abc"}));
    EXPECT_EQ(train({{"ab", 5}, {"abc", 3}, {"bc", 1}}, 1).merges, (Merges{{"a", "b"}}));
}

TEST(BpeTrainer, TiesGoToEarlierTokensAndRepeatsDoNotOverlap) {
    EXPECT_EQ(train({{"cd", 2}, {"ab", 2}}, 100).merges, (Merges{{"a", "b"}, {"c", "d"}}));
    // "aaaa": (a, a) 3 times, but merging takes two non-overlapping pairs; then (aa, aa) once.
    const BpeTrainerResult r = train({{"aaaa", 1}, {"aa", 1}}, 100);
    EXPECT_EQ(r.merges, (Merges{{"a", "a"}}));
}

TEST(BpeTrainer, CharactersOutsideTheAlphabetAreErrors) { EXPECT_THROW(train({{"abx", 1}}, 10), Error); }

// Every id below vocab_size is used exactly once, by the vocabulary or an added token.
void expect_every_id_once(const nlohmann::json& spec, int vocab_size) {
    std::vector<int> uses(vocab_size, 0);
    for (const auto& [token, id] : spec["model"]["vocab"].items()) ++uses.at(id.get<size_t>());
    for (const auto& added : spec["added_tokens"]) {
        if (!spec["model"]["vocab"].contains(added["content"])) ++uses.at(added["id"].get<size_t>());
    }
    EXPECT_EQ(std::count(uses.begin(), uses.end(), 1), vocab_size) << "vocab_size " << vocab_size;
}

TEST(SynthTokenizer, DeterministicAndFillsTheVocabularyWithMerges) {
    const SynthTokenizerFiles a = train_synth_tokenizer(1024), b = train_synth_tokenizer(1024);
    EXPECT_EQ(a.tokenizer_json, b.tokenizer_json);
    EXPECT_EQ(a.tokenizer_config_json, b.tokenizer_config_json);

    const nlohmann::json spec = nlohmann::json::parse(a.tokenizer_json);
    expect_every_id_once(spec, 1024);
    EXPECT_EQ(spec["model"]["vocab"].size(), 1024u - 13);  // no placeholders: the merges fill it
    EXPECT_EQ(spec["model"]["vocab"]["!"], 3);             // the byte-level characters follow the three specials
    EXPECT_EQ(spec["added_tokens"][0]["content"], "<｜begin▁of▁sentence｜>");
    EXPECT_EQ(spec["added_tokens"].back()["id"], 1023);
    EXPECT_EQ(spec["added_tokens"].back()["content"], "<｜tool▁sep｜>");
    EXPECT_EQ(static_cast<int>(spec["model"]["merges"].size()), a.merges);
    EXPECT_GE(a.merges, 1024 - 3 - 256 - 13);
}

TEST(SynthTokenizer, SmallVocabularyRunsOutOfPairsAndHoldsPlaceholders) {
    const auto start = std::chrono::steady_clock::now();
    const SynthTokenizerFiles files = train_synth_tokenizer(32768);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("vocab_size 32768: %d merges learned from %zu bytes of sample in %.2f s\n", files.merges,
                synth_sample_text().size(), secs);
    RecordProperty("merges_32768", files.merges);
    EXPECT_GT(files.merges, 1024);
    EXPECT_LT(files.merges, 32768 - 272);  // the sample runs out of pairs that occur twice

    const nlohmann::json spec = nlohmann::json::parse(files.tokenizer_json);
    expect_every_id_once(spec, 32768);
    const int first_placeholder = static_cast<int>(spec["model"]["vocab"].size());
    const nlohmann::json& placeholder = spec["added_tokens"][3];
    EXPECT_EQ(placeholder["id"], first_placeholder);
    EXPECT_EQ(placeholder["content"], "<｜place▁holder▁no▁0｜>");
    EXPECT_EQ(placeholder["special"], true);
    EXPECT_EQ(spec["added_tokens"].back()["id"], 32767);
}

TEST(SynthTokenizer, TooSmallVocabularyIsAnError) {
    EXPECT_NO_THROW(train_synth_tokenizer(272));
    try {
        train_synth_tokenizer(271);
        FAIL() << "vocab_size 271 accepted";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("it needs at least 272"), std::string::npos) << e.what();
    }
}

TEST(SynthTokenizer, ConfigCarriesDeepSeekTokensAndChatTemplate) {
    const nlohmann::json config = nlohmann::json::parse(train_synth_tokenizer(1024).tokenizer_config_json);
    EXPECT_EQ(config["add_bos_token"], false);
    EXPECT_EQ(config["bos_token"]["content"], "<｜begin▁of▁sentence｜>");
    EXPECT_EQ(config["eos_token"]["content"], "<｜end▁of▁sentence｜>");
    EXPECT_EQ(config["tokenizer_class"], "PreTrainedTokenizerFast");
    EXPECT_EQ(config["chat_template"], std::string(deepseek_v3_chat_template()));
}

const std::vector<std::string> kTexts = {
    "Hello, world! The lighthouse keeper climbed 91 steps at 06:15.",
    "城市里的早晨，街角的小店就开门了。駅前の小さな喫茶店。오늘은 날씨가 좋습니다.",
    "Unseen: สวัสดี ქართული 🚀👍🏽 e\u0301 \t\r\n  x",
    "def f(x):\n    return {\"a\": [1, 2, 3]}\n",
};

TEST(SynthTokenizer, EcfTokenizerLoadsAndRoundTrips) {
    for (const int vocab_size : {1024, 32768}) {
        const SynthTokenizerFiles files = train_synth_tokenizer(vocab_size);
        const Tokenizer tokenizer = Tokenizer::from_json(files.tokenizer_json, files.tokenizer_config_json, "synth");
        EXPECT_EQ(tokenizer.vocab_size(), vocab_size);
        EXPECT_EQ(tokenizer.bos_id(), 0);
        EXPECT_EQ(tokenizer.eos_id(), 1);
        EXPECT_EQ(chat_format_for_template(tokenizer.chat_template(), "synth"), ChatFormat::DeepSeekV3);

        std::vector<std::string> texts = kTexts;
        texts.emplace_back(synth_sample_text());
        for (const std::string& text : texts) {
            const std::vector<int32_t> ids = tokenizer.encode(text, false);
            for (const int32_t id : ids) ASSERT_LT(id, vocab_size);
            EXPECT_EQ(tokenizer.decode(ids), text) << "vocab_size " << vocab_size;
        }
        const std::vector<int32_t> user = tokenizer.encode("<｜User｜>", false);
        ASSERT_EQ(user.size(), 1u);
        EXPECT_EQ(user[0], vocab_size - 13);
        // Merges compress the sample it was trained on.
        EXPECT_LT(tokenizer.encode(synth_sample_text(), false).size(), synth_sample_text().size() / 2);
        // Any id a synthetic model samples decodes (placeholders are special: skipped on request).
        for (int32_t id = 0; id < vocab_size; ++id) EXPECT_NO_THROW(tokenizer.decode(std::vector<int32_t>{id}));
        if (vocab_size == 32768) {  // the id below the chat tokens is a placeholder
            EXPECT_EQ(tokenizer.decode(std::vector<int32_t>{vocab_size - 14}, true), "");
        }
    }
}

TEST(SynthTokenizer, WritesBothFilesThatLoad) {
    const auto dir = std::filesystem::temp_directory_path() / ("ecf8_synth_tok_" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
    const int merges = write_synth_tokenizer(dir, 1024);
    EXPECT_EQ(merges, train_synth_tokenizer(1024).merges);
    const Tokenizer tokenizer = Tokenizer::load(dir);
    EXPECT_EQ(tokenizer.decode(tokenizer.encode(kTexts[0], false)), kTexts[0]);
    std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace ecf8::text
