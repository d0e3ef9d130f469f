// The synthetic models' tokenizer: DeepSeek's pre-tokenizer and special tokens around a byte-level BPE
// trained on the embedded sample, written as Hugging Face tokenizer.json + tokenizer_config.json.
#include "tokenizer/synth_tokenizer.h"

#include <algorithm>
#include <array>
#include <map>
#include <nlohmann/json.hpp>
#include <string_view>

#include "common/error.h"
#include "common/file_util.h"
#include "tokenizer/bpe_trainer.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/chat_format.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/synth_sample.h"

namespace ecf8::text {
namespace {

using ordered_json = nlohmann::ordered_json;

// DeepSeek-V3's tokenizer.json pre_tokenizer, verbatim: digits in runs of up to three, CJK runs, then a
// GPT-style word / punctuation / whitespace split, then byte-level characters. Used to train and written out.
constexpr std::string_view kDeepSeekPreTokenizer = R"json({"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": "\\p{N}{1,3}"}, "behavior": "Isolated", "invert": false},
        {"type": "Split", "pattern": {"Regex": "[一-龥぀-ゟ゠-ヿ]+"}, "behavior": "Isolated", "invert": false},
        {"type": "Split", "pattern": {"Regex": "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"}, "behavior": "Isolated", "invert": false},
        {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}
    ]})json";

// ids 0..2, as in DeepSeek's files: special tokens that are never split or normalized.
constexpr std::array<std::string_view, 3> kLeadingSpecials = {"<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>",
                                                              "<｜▁pad▁｜>"};
// DeepSeek's chat and tool markers, at the top ids so that every id stays below vocab_size. DeepSeek writes
// them as added tokens that are not special (a decode that skips special tokens keeps them).
constexpr std::array<std::string_view, 13> kChatTokens = {"<｜User｜>",
                                                          "<｜Assistant｜>",
                                                          "<think>",
                                                          "</think>",
                                                          "<｜tool▁calls▁begin｜>",
                                                          "<｜tool▁calls▁end｜>",
                                                          "<｜tool▁call▁begin｜>",
                                                          "<｜tool▁call▁end｜>",
                                                          "<｜tool▁outputs▁begin｜>",
                                                          "<｜tool▁outputs▁end｜>",
                                                          "<｜tool▁output▁begin｜>",
                                                          "<｜tool▁output▁end｜>",
                                                          "<｜tool▁sep｜>"};
constexpr int kByteTokens = 256;
constexpr int kModelMaxLength = 131072;  // DeepSeek-V3's context; the synthetic configs stay far below it

// The 256 byte-level characters in code-point order (std::string compares bytes as unsigned, and UTF-8
// preserves code-point order), as Hugging Face's trainer and DeepSeek's vocabulary order them.
std::vector<std::string> byte_level_alphabet() {
    std::vector<std::string> alphabet;
    for (int byte = 0; byte < kByteTokens; ++byte) alphabet.push_back(to_byte_level(std::string(1, char(byte))));
    std::sort(alphabet.begin(), alphabet.end());
    return alphabet;
}

// Pre-tokenized words of the sample, with counts, in a fixed order.
std::vector<std::pair<std::string, int64_t>> sample_words(const nlohmann::json& pre_tokenizer_spec) {
    const auto pre = PreTokenizer::from_json(pre_tokenizer_spec, "the synthetic tokenizer's pre_tokenizer");
    std::map<std::string, int64_t> counts;
    for (std::string& piece : pre_tokenize(pre.get(), synth_sample_text())) ++counts[std::move(piece)];
    return {counts.begin(), counts.end()};
}

ordered_json added_token(int id, std::string_view content, bool special) {
    return {{"id", id},        {"content", content},     {"single_word", false}, {"lstrip", false},
            {"rstrip", false}, {"normalized", !special}, {"special", special}};
}

ordered_json config_token(std::string_view content) {
    return {{"__type", "AddedToken"}, {"content", content}, {"lstrip", false},
            {"normalized", true},     {"rstrip", false},    {"single_word", false}};
}

// Every id below vocab_size names a token, so that whatever id a synthetic model samples decodes: ids that
// neither the merges nor the chat tokens fill hold special placeholders, as DeepSeek's files do between
// their vocabulary and their chat tokens. (Hugging Face also renumbers added tokens that leave gaps.)
struct Layout {
    ordered_json vocab = ordered_json::object();        // model.vocab: specials, bytes, merged tokens
    ordered_json added_tokens = ordered_json::array();  // specials, placeholders, chat tokens
};

Layout token_layout(int vocab_size, const std::vector<std::string>& alphabet, const BpeTrainerResult& bpe) {
    Layout layout;
    int id = 0;
    for (std::string_view special : kLeadingSpecials) {
        layout.added_tokens.push_back(added_token(id, special, true));
        layout.vocab[std::string(special)] = id++;
    }
    for (const std::string& token : alphabet) layout.vocab[token] = id++;
    for (const std::string& token : bpe.new_tokens) layout.vocab[token] = id++;
    ECF8_CHECK(static_cast<int>(layout.vocab.size()) == id, "synthetic tokenizer: a merged token repeats a special");
    const int first_chat_id = vocab_size - static_cast<int>(kChatTokens.size());
    ECF8_CHECK(id <= first_chat_id,
               "synthetic tokenizer: " << id << " tokens overlap the chat tokens at " << first_chat_id);
    for (int placeholder = 0; id < first_chat_id; ++placeholder) {
        const std::string content = "<｜place▁holder▁no▁" + std::to_string(placeholder) + "｜>";
        layout.added_tokens.push_back(added_token(id++, content, true));
    }
    for (std::string_view chat_token : kChatTokens) {
        // A vocabulary entry of the same text would take the added token's id (Hugging Face's rule).
        ECF8_CHECK(!layout.vocab.contains(chat_token), "synthetic tokenizer: a merged token spells " << chat_token);
        layout.added_tokens.push_back(added_token(id++, chat_token, false));
    }
    return layout;
}

ordered_json byte_level_step(bool trim_offsets) {
    return {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", trim_offsets}, {"use_regex", true}};
}

// Hugging Face's field order and values for each part, as `tokenizers` writes them (merges as "a b").
std::string tokenizer_json(int vocab_size, const std::vector<std::string>& alphabet, const BpeTrainerResult& bpe) {
    Layout layout = token_layout(vocab_size, alphabet, bpe);
    ordered_json merges = ordered_json::array();
    for (const auto& [left, right] : bpe.merges) merges.push_back(left + " " + right);
    const ordered_json model = {{"type", "BPE"},
                                {"dropout", nullptr},
                                {"unk_token", nullptr},
                                {"continuing_subword_prefix", nullptr},
                                {"end_of_word_suffix", nullptr},
                                {"fuse_unk", false},
                                {"byte_fallback", false},
                                {"ignore_merges", false},
                                {"vocab", std::move(layout.vocab)},
                                {"merges", std::move(merges)}};
    const ordered_json file = {
        {"version", "1.0"},
        {"truncation", nullptr},
        {"padding", nullptr},
        {"added_tokens", std::move(layout.added_tokens)},
        {"normalizer", {{"type", "Sequence"}, {"normalizers", ordered_json::array()}}},
        {"pre_tokenizer", ordered_json::parse(kDeepSeekPreTokenizer)},  // in DeepSeek's field order
        {"post_processor", byte_level_step(false)},
        {"decoder", byte_level_step(true)},
        {"model", model},
    };
    return file.dump(2) + "\n";
}

std::string tokenizer_config_json() {
    const ordered_json config = {
        {"add_bos_token", false},
        {"add_eos_token", false},
        {"bos_token", config_token(kLeadingSpecials[0])},
        {"clean_up_tokenization_spaces", false},
        {"eos_token", config_token(kLeadingSpecials[1])},
        {"legacy", true},
        {"model_max_length", kModelMaxLength},
        {"pad_token", config_token(kLeadingSpecials[1])},
        {"sp_model_kwargs", ordered_json::object()},
        {"unk_token", nullptr},
        {"tokenizer_class", "PreTrainedTokenizerFast"},
        {"chat_template", deepseek_v3_chat_template()},
    };
    return config.dump(2) + "\n";
}

}  // namespace

SynthTokenizerFiles train_synth_tokenizer(int vocab_size) {
    const int reserved = static_cast<int>(kLeadingSpecials.size()) + kByteTokens + static_cast<int>(kChatTokens.size());
    ECF8_CHECK(vocab_size >= reserved, "vocab_size " << vocab_size << " cannot hold the synthetic tokenizer's "
                                                     << kLeadingSpecials.size() << " special tokens, " << kByteTokens
                                                     << " byte tokens and " << kChatTokens.size()
                                                     << " chat tokens; it needs at least " << reserved);
    BpeTrainerInput input;
    input.alphabet = byte_level_alphabet();
    input.words = sample_words(nlohmann::json::parse(kDeepSeekPreTokenizer));
    input.max_new_tokens = vocab_size - reserved;
    const BpeTrainerResult bpe = train_bpe(input);

    SynthTokenizerFiles files;
    files.tokenizer_json = tokenizer_json(vocab_size, input.alphabet, bpe);
    files.tokenizer_config_json = tokenizer_config_json();
    files.merges = static_cast<int>(bpe.merges.size());
    return files;
}

int write_synth_tokenizer(const std::filesystem::path& dir, int vocab_size) {
    const SynthTokenizerFiles files = train_synth_tokenizer(vocab_size);
    std::filesystem::create_directories(dir);
    write_file_atomic((dir / "tokenizer.json").string(), files.tokenizer_json);
    write_file_atomic((dir / "tokenizer_config.json").string(), files.tokenizer_config_json);
    fsync_dir(dir.string());
    return files.merges;
}

}  // namespace ecf8::text
