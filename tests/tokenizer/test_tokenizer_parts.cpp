// Unit tests of the tokenizer's parts and of its errors: the byte-level alphabet, Split behaviours and
// regex semantics (against Hugging Face's results), load errors naming the type, field and file, and
// robustness against truncated and mutated tokenizer.json files.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>

#include "common/error.h"
#include "tests/tokenizer/tiny_tokenizer.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/regex.h"
#include "tokenizer/tokenizer.h"

namespace ecf8::text {
namespace {

using Pieces = std::vector<std::string>;

TEST(ByteLevel, AlphabetRoundTrip) {
    std::string all;
    for (int b = 0; b < 256; ++b) all += static_cast<char>(b);
    const std::string chars = to_byte_level(all);
    EXPECT_EQ(from_byte_level(chars), all);
    EXPECT_EQ(to_byte_level(" \n!"), "\u0120\u010A!");  // "Ġ", "Ċ"
    EXPECT_EQ(to_byte_level("\xAD"), "\u0143");         // soft hyphen: the last remapped byte
    EXPECT_EQ(from_byte_level("\u0120hi"), " hi");
    EXPECT_EQ(from_byte_level("中"), std::nullopt);
    EXPECT_EQ(from_byte_level(" "), std::nullopt);  // the space is not in the alphabet
}

Pieces split_with(const std::string& behavior, bool invert, const std::string& text) {
    const nlohmann::json spec = {
        {"type", "Split"}, {"pattern", {{"Regex", "-"}}}, {"behavior", behavior}, {"invert", invert}};
    return pre_tokenize(PreTokenizer::from_json(spec, "split.json").get(), text);
}

// Expected pieces from tokenizers.pre_tokenizers.Split(Regex("-"), behavior, invert).
TEST(Split, BehavioursMatchHuggingFace) {
    const std::string s = "The-final--countdown-";
    EXPECT_EQ(split_with("Removed", false, s), (Pieces{"The", "final", "countdown"}));
    EXPECT_EQ(split_with("Removed", true, s), (Pieces{"-", "-", "-", "-"}));
    EXPECT_EQ(split_with("Isolated", false, s), (Pieces{"The", "-", "final", "-", "-", "countdown", "-"}));
    EXPECT_EQ(split_with("MergedWithPrevious", false, s), (Pieces{"The-", "final-", "-", "countdown-"}));
    EXPECT_EQ(split_with("MergedWithPrevious", true, s), (Pieces{"The", "-final", "-", "-countdown", "-"}));
    EXPECT_EQ(split_with("MergedWithNext", false, s), (Pieces{"The", "-final", "-", "-countdown", "-"}));
    EXPECT_EQ(split_with("MergedWithNext", true, s), (Pieces{"The-", "final-", "-", "countdown-"}));
    EXPECT_EQ(split_with("Contiguous", false, s), (Pieces{"The", "-", "final", "--", "countdown", "-"}));
    EXPECT_EQ(split_with("MergedWithPrevious", false, "-a--b"), (Pieces{"-", "a-", "-", "b"}));
    EXPECT_EQ(split_with("MergedWithNext", false, "-a--b"), (Pieces{"-a", "-", "-b"}));
    EXPECT_EQ(split_with("Contiguous", true, "-a--b"), (Pieces{"-", "a", "--", "b"}));
}

TEST(Split, LiteralPatternAndEmptyMatches) {
    const nlohmann::json literal = {{"type", "Split"}, {"pattern", {{"String", "a.b"}}}, {"behavior", "Isolated"}};
    EXPECT_EQ(pre_tokenize(PreTokenizer::from_json(literal, "s").get(), "xa.bya_b"), (Pieces{"x", "a.b", "ya_b"}));
    const nlohmann::json star = {{"type", "Split"}, {"pattern", {{"Regex", "x*"}}}, {"behavior", "Isolated"}};
    EXPECT_EQ(pre_tokenize(PreTokenizer::from_json(star, "s").get(), "axxb"), (Pieces{"a", "xx", "b"}));
}

TEST(ByteLevelPreTokenizer, PrefixSpaceAndGpt2Regex) {
    const nlohmann::json seq = nlohmann::json::parse(R"({"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": "-"}, "behavior": "Isolated", "invert": false},
        {"type": "ByteLevel", "add_prefix_space": true, "use_regex": false}]})");
    EXPECT_EQ(pre_tokenize(PreTokenizer::from_json(seq, "s").get(), "ab-cd"), (Pieces{"Ġab", "Ġ-", "Ġcd"}));
    const nlohmann::json gpt2 = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"use_regex", true}};
    EXPECT_EQ(pre_tokenize(PreTokenizer::from_json(gpt2, "s").get(), "Hello  world's 123 !!"),
              (Pieces{"ĠHello", "Ġ", "Ġworld", "'s", "Ġ123", "Ġ!!"}));
}

// Oniguruma's meaning, checked code point by code point against Hugging Face by the corpus comparison.
TEST(Regex, OnigurumaSemantics) {
    const nlohmann::json ws = {{"type", "Split"}, {"pattern", {{"Regex", "\\s+"}}}, {"behavior", "Removed"}};
    // U+180E is not White_Space (PCRE2's \s takes it); U+0085 and U+3000 are.
    EXPECT_EQ(pre_tokenize(PreTokenizer::from_json(ws, "s").get(), "a\u180Eb\u0085c\u3000d"),
              (Pieces{"a\u180Eb", "c", "d"}));
    // U+1C89 is a letter since Unicode 16 (Oniguruma's tables), unassigned in PCRE2 10.42's.
    const nlohmann::json letters = {{"type", "Split"}, {"pattern", {{"Regex", "\\p{L}+"}}}, {"behavior", "Removed"}};
    EXPECT_EQ(pre_tokenize(PreTokenizer::from_json(letters, "s").get(), "x\u1C89y1z"), (Pieces{"1"}));
    // ^ and $ are line anchors in Oniguruma's Ruby syntax.
    const nlohmann::json line_end = {{"type", "Split"}, {"pattern", {{"Regex", "$"}}}, {"behavior", "Isolated"}};
    EXPECT_EQ(pre_tokenize(PreTokenizer::from_json(line_end, "s").get(), "ab\ncd"), (Pieces{"ab", "\ncd"}));
    EXPECT_EQ(oniguruma_to_pcre2("[^\\s\\p{P}]", "s").find("\\p{White_Space}"), 2u);
}

// `what` must throw ecf8::Error whose message holds every string of `needles`.
template <typename F>
void expect_error(F&& what, const std::vector<std::string>& needles) {
    try {
        what();
        ADD_FAILURE() << "no error; expected one mentioning " << needles.front();
    } catch (const Error& e) {
        for (const auto& n : needles) EXPECT_NE(std::string(e.what()).find(n), std::string::npos) << e.what();
    }
}

void expect_load_error(const nlohmann::json& j, const std::vector<std::string>& needles) {
    expect_error([&] { (void)Tokenizer::from_json(j.dump(), "", "bad/tokenizer.json"); }, needles);
}

TEST(Errors, UnknownTypesNameTheTypeAndFile) {
    const nlohmann::json good = testing::tiny_tokenizer({"a b"});
    auto with = [&](const char* key, const nlohmann::json& value) {
        nlohmann::json j = good;
        j[key] = value;
        return j;
    };
    expect_load_error(with("model", {{"type", "WordPiece"}, {"vocab", nlohmann::json::object()}}),
                      {"WordPiece", "bad/tokenizer.json"});
    expect_load_error(with("pre_tokenizer", {{"type", "Whitespace"}}), {"Whitespace", "bad/tokenizer.json"});
    expect_load_error(with("normalizer", {{"type", "NFC"}}), {"NFC", "bad/tokenizer.json"});
    expect_load_error(with("decoder", {{"type", "WordPiece"}}), {"WordPiece", "decoder"});
    expect_load_error(with("post_processor", {{"type", "BertProcessing"}}), {"BertProcessing"});
    expect_load_error(with("pre_tokenizer", {{"type", "Split"}, {"pattern", {{"Regex", "a"}}}, {"behavior", "Bogus"}}),
                      {"Bogus", "bad/tokenizer.json"});
    expect_load_error(
        with("pre_tokenizer", {{"type", "Split"}, {"pattern", {{"Regex", "\\w+"}}}, {"behavior", "Isolated"}}),
        {"\\w", "not supported"});
    expect_load_error(
        with("pre_tokenizer", {{"type", "Split"}, {"pattern", {{"Regex", "(a"}}}, {"behavior", "Isolated"}}),
        {"(a", "does not compile"});
    expect_load_error(with("pre_tokenizer", nullptr), {"ByteLevel"});
}

TEST(Errors, WrongFieldsNameTheField) {
    nlohmann::json j = testing::tiny_tokenizer({"a b"});
    j["model"]["vocab"] = nlohmann::json::array();
    expect_load_error(j, {"model.vocab", "bad/tokenizer.json"});
    j = testing::tiny_tokenizer({"a b"});
    j["model"]["merges"] = {"a b", "q zz"};
    expect_load_error(j, {"model.merges[1]", "zz"});
    j["model"]["merges"] = {"a b c"};
    expect_load_error(j, {"model.merges[0]"});
    j = testing::tiny_tokenizer({"a b"});
    j["model"]["vocab"]["x"] = "seven";
    expect_load_error(j, {"model.vocab[\"x\"]"});
    j = testing::tiny_tokenizer({"a b"});
    j["model"].erase("merges");
    expect_load_error(j, {"model.merges", "missing"});
    j = testing::tiny_tokenizer({"a b"}, {{.content = "<s>", .special = true}});
    j["added_tokens"][0]["id"] = 5;
    expect_load_error(j, {"<s>", "id 5", "257"});
    j["added_tokens"][0]["special"] = "yes";
    expect_load_error(j, {"added_tokens[0].special"});
    j = testing::tiny_tokenizer({"a b"});
    j["model"]["byte_fallback"] = true;
    expect_load_error(j, {"byte_fallback"});
    const std::string good = testing::tiny_tokenizer({"a b"}).dump();
    expect_error([&] { (void)Tokenizer::from_json(good, R"({"bos_token": 7})", "cfg"); }, {"bos_token", "cfg"});
    expect_error([&] { (void)Tokenizer::from_json(good, R"({"bos_token": "<nope>"})", "cfg"); }, {"<nope>"});
    expect_error([&] { (void)Tokenizer::from_json(good, R"({"chat_template": 3})", "cfg"); }, {"chat_template"});
    expect_error([&] { (void)Tokenizer::from_json(good, "{oops", "cfg"); },
                 {"tokenizer_config.json", "not valid JSON"});
}

TEST(Errors, LoadNamesTheFile) {
    const auto dir = std::filesystem::temp_directory_path() / ("ecf8_tok_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    expect_error([&] { (void)Tokenizer::load(dir); }, {(dir / "tokenizer.json").string()});
    std::ofstream(dir / "tokenizer.json") << "{\"model\": ";
    expect_error([&] { (void)Tokenizer::load(dir); }, {(dir / "tokenizer.json").string(), "not valid JSON"});
    std::ofstream(dir / "tokenizer.json") << testing::tiny_tokenizer({"a b"}).dump();
    std::ofstream(dir / "tokenizer_config.json") << "[1, 2]";
    expect_error([&] { (void)Tokenizer::load(dir); }, {(dir / "tokenizer_config.json").string()});
    std::ofstream(dir / "tokenizer_config.json") << R"({"eos_token": "ab", "add_bos_token": false})";
    EXPECT_EQ(Tokenizer::load(dir).eos_id(), 256);
    std::filesystem::remove_all(dir);
}

// Truncated and mutated files either load or throw ecf8::Error: never another exception, never a crash.
TEST(Robustness, TruncatedAndMutatedFiles) {
    const std::string good =
        testing::tiny_tokenizer({"a b", "ab c", "Ġ h"}, {{.content = "<s>", .special = true}}).dump();
    for (size_t cut = 0; cut < good.size(); cut += 7) {
        EXPECT_THROW((void)Tokenizer::from_json(good.substr(0, cut), "", "cut.json"), Error) << cut;
    }
    const unsigned seed = std::random_device{}();
    std::printf("seed %u\n", seed);
    std::mt19937 rng(seed);
    const std::string bytes = "{}[]\":,0123456789-.etnul\\ aGz";
    int loaded = 0;
    for (int round = 0; round < 400; ++round) {
        std::string mutated = good;
        for (unsigned k = 0; k < 1 + rng() % 4; ++k) mutated[rng() % mutated.size()] = bytes[rng() % bytes.size()];
        try {
            const Tokenizer t = Tokenizer::from_json(mutated, "", "mutated.json");
            (void)t.decode(t.encode("abc <s> Ġhi 12", true));
            ++loaded;
        } catch (const Error&) {
        } catch (const std::exception& e) {
            ADD_FAILURE() << "seed " << seed << " round " << round << ": not an ecf8::Error: " << e.what();
        }
    }
    std::printf("%d of 400 mutated files still loaded\n", loaded);
}

}  // namespace
}  // namespace ecf8::text
