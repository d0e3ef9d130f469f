// The state behind ecf8::text::Tokenizer, shared by tokenizer.cpp (encode / decode) and
// tokenizer_load.cpp (reading tokenizer.json and tokenizer_config.json).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/added_tokens.h"
#include "tokenizer/bpe.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/tokenizer.h"

namespace ecf8::text {

struct Tokenizer::Impl {
    std::string source;  // names the files in errors
    BpeModel model;
    std::unique_ptr<PreTokenizer> pre_tokenizer;  // ends with ByteLevel (checked at load)
    std::vector<AddedToken> added_tokens;
    std::unordered_map<std::string, int32_t> added_ids;  // content -> id
    AddedTokenMatcher raw_matcher;                       // normalized = false: matched first
    AddedTokenMatcher normalized_matcher;                // normalized = true: matched in the gaps

    // Per id: the bytes decode gives (Hugging Face's ByteLevel decoder: a token made of byte-level
    // characters stands for their bytes, any other token for its own UTF-8), whether an id exists, and
    // whether it is special.
    std::vector<std::string> id_bytes;
    std::vector<uint8_t> id_known;
    std::vector<uint8_t> id_special;

    // What the post-processor adds around the ids when add_special_tokens is set.
    std::vector<int32_t> prefix_ids;
    std::vector<int32_t> suffix_ids;

    std::string bos_token, eos_token, chat_template;
    std::optional<int32_t> bos_id, eos_id;

    explicit Impl(BpeModel m) : model(std::move(m)) {}

    // A token's id as written: an added token, else a vocabulary entry (the added token wins, as in
    // Hugging Face).
    std::optional<int32_t> id_of(std::string_view token) const {
        const auto it = added_ids.find(std::string(token));
        if (it != added_ids.end()) return it->second;
        return model.token_id(token);
    }
};

// Builds the Impl from the two files' text (tokenizer_load.cpp).
std::unique_ptr<Tokenizer::Impl> load_tokenizer_impl(std::string_view tokenizer_json, std::string_view config_json,
                                                     const std::string& source);

}  // namespace ecf8::text
