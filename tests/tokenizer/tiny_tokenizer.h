// Small hand-made tokenizer.json files for the tokenizer tests.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tokenizer/byte_level.h"

namespace ecf8::text::testing {

struct TinyAdded {
    std::string content;
    bool special = false;
    bool normalized = true;
    bool lstrip = false, rstrip = false, single_word = false;
};

// A byte-level BPE: ids 0-255 are the bytes (id = byte value), then one id per merge result in merge order,
// then the added tokens in order (the ids Hugging Face gives them). Merges are written with byte-level
// characters ("Ġ h"). `pre_tokenizer` defaults to GPT-2's ByteLevel without prefix space.
inline nlohmann::json tiny_tokenizer(const std::vector<std::string>& merges, const std::vector<TinyAdded>& added = {},
                                     nlohmann::json pre_tokenizer = nullptr) {
    nlohmann::json vocab = nlohmann::json::object();
    for (int b = 0; b < 256; ++b) vocab[to_byte_level(std::string(1, static_cast<char>(b)))] = b;
    int next = 256;
    for (const auto& m : merges) {
        const size_t space = m.find(' ');
        vocab[m.substr(0, space) + m.substr(space + 1)] = next++;
    }
    nlohmann::json added_json = nlohmann::json::array();
    for (const auto& a : added) {
        added_json.push_back({{"id", next++},
                              {"content", a.content},
                              {"special", a.special},
                              {"normalized", a.normalized},
                              {"lstrip", a.lstrip},
                              {"rstrip", a.rstrip},
                              {"single_word", a.single_word}});
    }
    if (pre_tokenizer.is_null()) {
        pre_tokenizer = {
            {"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}};
    }
    return {{"version", "1.0"},
            {"truncation", nullptr},
            {"padding", nullptr},
            {"added_tokens", added_json},
            {"normalizer", {{"type", "Sequence"}, {"normalizers", nlohmann::json::array()}}},
            {"pre_tokenizer", pre_tokenizer},
            {"post_processor", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", false}}},
            {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}}},
            {"model",
             {{"type", "BPE"},
              {"dropout", nullptr},
              {"unk_token", nullptr},
              {"continuing_subword_prefix", nullptr},
              {"end_of_word_suffix", nullptr},
              {"fuse_unk", false},
              {"byte_fallback", false},
              {"vocab", vocab},
              {"merges", merges}}}};
}

}  // namespace ecf8::text::testing
