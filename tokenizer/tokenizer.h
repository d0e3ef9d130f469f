// A Hugging Face `tokenizer.json` tokenizer with what DeepSeek's files use: added and special tokens
// matched first, a Sequence of Split regexes (PCRE2, Unicode properties) and ByteLevel pre-tokenization,
// a byte-level BPE model with merges, and the ByteLevel decoder. tokenizer_config.json adds bos/eos and
// the chat template (its add_bos_token / add_eos_token are type-checked; see encode). Unknown model,
// pre-tokenizer, normalizer or decoder types are errors that name the type and the file.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace ecf8::text {

class Tokenizer {
public:
    // Reads DIR/tokenizer.json and, when present, DIR/tokenizer_config.json.
    static Tokenizer load(const std::filesystem::path& dir);
    // The same from the two files' text; config_json may be empty. `source` names them in errors.
    static Tokenizer from_json(std::string_view tokenizer_json, std::string_view config_json,
                               const std::string& source);

    Tokenizer(Tokenizer&&) noexcept;
    Tokenizer& operator=(Tokenizer&&) noexcept;
    ~Tokenizer();

    // Token ids of `text`. Invalid UTF-8 is first replaced by U+FFFD per maximal invalid subsequence
    // (as Python's bytes.decode(errors="replace")). add_special_tokens adds what tokenizer.json's
    // post_processor adds (a TemplateProcessing's tokens; ByteLevel adds none), which is Hugging Face's
    // rule: `tokenizers` and transformers >= 5 ignore tokenizer_config.json's add_bos_token /
    // add_eos_token when a tokenizer.json is present.
    std::vector<int32_t> encode(std::string_view text, bool add_special_tokens = true) const;
    // Text of `ids`; bytes that do not form UTF-8 become U+FFFD. Ids outside the vocabulary are errors.
    std::string decode(std::span<const int32_t> ids, bool skip_special_tokens = false) const;

    // The bytes one token stands for, as Hugging Face's ByteLevel decoder gives them: a token spelled in the
    // byte-level alphabet stands for those bytes, any other (special and added tokens) for its own UTF-8.
    std::string token_bytes(int32_t id) const;
    std::optional<int32_t> token_id(std::string_view token) const;  // vocab or added token, as written
    bool is_special(int32_t id) const;
    int32_t vocab_size() const;  // largest id + 1

    std::optional<int32_t> bos_id() const;
    std::optional<int32_t> eos_id() const;
    bool add_bos() const;                  // whether encode(text, true) starts with bos_id (see encode)
    bool add_eos() const;                  // whether encode(text, true) ends with eos_id
    const std::string& bos_token() const;  // empty when the config names none
    const std::string& eos_token() const;
    const std::string& chat_template() const;  // tokenizer_config.json's chat_template; empty when absent

    struct Impl;  // opaque to users; defined in tokenizer_impl.h for the loader and encode / decode

private:
    explicit Tokenizer(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

}  // namespace ecf8::text
