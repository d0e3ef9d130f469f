// Tokenizer (tokenizer.h): encode and decode over the loaded state (tokenizer_impl.h).
#include "tokenizer/tokenizer.h"

#include <algorithm>

#include "common/error.h"
#include "common/file_util.h"
#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/utf8.h"

namespace ecf8::text {

namespace {

// The bytes of `id`; an id outside the vocabulary is an error naming it and the files.
const std::string& bytes_of(const Tokenizer::Impl& s, int32_t id) {
    ECF8_CHECK(id >= 0 && static_cast<size_t>(id) < s.id_bytes.size() && s.id_known[static_cast<size_t>(id)],
               "token id " << id << " is not in the vocabulary of " << s.source);
    return s.id_bytes[static_cast<size_t>(id)];
}

}  // namespace

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

Tokenizer Tokenizer::load(const std::filesystem::path& dir) {
    const std::filesystem::path tokenizer_path = dir / "tokenizer.json";
    const std::filesystem::path config_path = dir / "tokenizer_config.json";
    ECF8_CHECK(std::filesystem::is_regular_file(tokenizer_path), tokenizer_path.string() << ": no such file");
    const std::string tokenizer_json = read_file(tokenizer_path.string());
    std::string config_json;
    if (std::filesystem::exists(config_path)) config_json = read_file(config_path.string());
    return from_json(tokenizer_json, config_json, tokenizer_path.string());
}

Tokenizer Tokenizer::from_json(std::string_view tokenizer_json, std::string_view config_json,
                               const std::string& source) {
    return Tokenizer(load_tokenizer_impl(tokenizer_json, config_json, source));
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
    const Impl& s = *impl_;
    std::string replaced;
    if (!is_valid_utf8(text)) {
        replaced = replace_invalid_utf8(text);
        text = replaced;
    }
    std::vector<int32_t> ids;
    ids.reserve(text.size() / 3 + 8);
    if (add_special_tokens) ids.insert(ids.end(), s.prefix_ids.begin(), s.prefix_ids.end());
    auto on_token = [&](int32_t id) { ids.push_back(id); };
    auto on_word = [&](std::string_view word) { s.model.encode_word(word, ids); };
    auto on_normalized_gap = [&](std::string_view gap) { s.pre_tokenizer->visit(gap, on_word); };
    auto on_raw_gap = [&](std::string_view gap) { s.normalized_matcher.split(gap, on_normalized_gap, on_token); };
    s.raw_matcher.split(text, on_raw_gap, on_token);
    if (add_special_tokens) ids.insert(ids.end(), s.suffix_ids.begin(), s.suffix_ids.end());
    return ids;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
    std::string bytes;
    for (const int32_t id : ids) {
        const std::string& token = bytes_of(*impl_, id);
        if (!(skip_special_tokens && impl_->id_special[static_cast<size_t>(id)])) bytes += token;
    }
    return is_valid_utf8(bytes) ? bytes : replace_invalid_utf8(bytes);
}

std::string Tokenizer::token_bytes(int32_t id) const { return bytes_of(*impl_, id); }

std::optional<int32_t> Tokenizer::token_id(std::string_view token) const { return impl_->id_of(token); }

bool Tokenizer::is_special(int32_t id) const {
    return id >= 0 && id < vocab_size() && impl_->id_special[static_cast<size_t>(id)];
}

int32_t Tokenizer::vocab_size() const { return static_cast<int32_t>(impl_->id_bytes.size()); }

std::optional<int32_t> Tokenizer::bos_id() const { return impl_->bos_id; }
std::optional<int32_t> Tokenizer::eos_id() const { return impl_->eos_id; }

bool Tokenizer::add_bos() const {
    const auto& p = impl_->prefix_ids;
    return impl_->bos_id && std::find(p.begin(), p.end(), *impl_->bos_id) != p.end();
}

bool Tokenizer::add_eos() const {
    const auto& p = impl_->suffix_ids;
    return impl_->eos_id && std::find(p.begin(), p.end(), *impl_->eos_id) != p.end();
}

const std::string& Tokenizer::bos_token() const { return impl_->bos_token; }
const std::string& Tokenizer::eos_token() const { return impl_->eos_token; }
const std::string& Tokenizer::chat_template() const { return impl_->chat_template; }

}  // namespace ecf8::text
