// Reading tokenizer.json and tokenizer_config.json into Tokenizer::Impl (tokenizer_impl.h). Only what
// DeepSeek's files use is accepted; anything else is an error naming the type or field and the file.
#include <algorithm>

#include "common/error.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/json_fields.h"
#include "tokenizer/tokenizer_impl.h"

namespace ecf8::text {

namespace {

nlohmann::json parse_json(std::string_view text, const std::string& file, const std::string& source) {
    try {
        return nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
        ECF8_FAIL(source << ": " << file << " is not valid JSON (" << e.what() << ")");
    }
}

std::string type_of(const nlohmann::json& spec, const std::string& source, const std::string& field) {
    ECF8_CHECK(spec.is_object(), field_path(source, field) << " must be an object or null, not " << spec.type_name());
    return json_string(spec, "type", source, field + ".type");
}

// Normalization: none, or a Sequence of no normalizers (identity).
void check_normalizer(const nlohmann::json& spec, const std::string& source, const std::string& field) {
    if (spec.is_null()) return;
    const std::string type = type_of(spec, source, field);
    ECF8_CHECK(type == "Sequence", source << ": unsupported normalizer type '" << type << "' (in " << field << ")");
    const auto& list = json_field(spec, "normalizers", source, field + ".normalizers");
    ECF8_CHECK(list.is_array(), field_path(source, field + ".normalizers") << " must be a list");
    for (size_t i = 0; i < list.size(); ++i)
        check_normalizer(list[i], source, field + ".normalizers[" + std::to_string(i) + "]");
}

// The special-token ids a TemplateProcessing puts before and after the single sequence $A.
void read_template(const nlohmann::json& spec, Tokenizer::Impl& s, const std::string& field) {
    const auto& single = json_field(spec, "single", s.source, field + ".single");
    const auto& specials = json_field(spec, "special_tokens", s.source, field + ".special_tokens");
    ECF8_CHECK(single.is_array(), field_path(s.source, field + ".single") << " must be a list");
    bool seen_sequence = false;
    for (const auto& piece : single) {
        if (piece.contains("Sequence")) {
            const std::string id = json_string(piece["Sequence"], "id", s.source, field + ".single[].Sequence.id");
            ECF8_CHECK(id == "A" && !seen_sequence, field_path(s.source, field + ".single")
                                                        << " must hold the sequence A once, not " << single.dump());
            seen_sequence = true;
            continue;
        }
        const auto& special = json_field(piece, "SpecialToken", s.source, field + ".single[]");
        const std::string name = json_string(special, "id", s.source, field + ".single[].SpecialToken.id");
        const auto& entry = json_field(specials, name, s.source, field + ".special_tokens." + name);
        const auto& ids = json_field(entry, "ids", s.source, field + ".special_tokens." + name + ".ids");
        ECF8_CHECK(ids.is_array(), field_path(s.source, field + ".special_tokens." + name + ".ids")
                                       << " must be a list");
        for (const auto& id : ids) {
            (seen_sequence ? s.suffix_ids : s.prefix_ids).push_back(json_id(id, s.source, field + ".ids[]"));
        }
    }
    ECF8_CHECK(seen_sequence, field_path(s.source, field + ".single") << " has no sequence A");
}

// Post-processing: ByteLevel adds nothing (it only trims offsets); TemplateProcessing adds its tokens.
void read_post_processor(const nlohmann::json& spec, Tokenizer::Impl& s, const std::string& field) {
    if (spec.is_null()) return;
    const std::string type = type_of(spec, s.source, field);
    if (type == "ByteLevel") return;
    if (type == "TemplateProcessing") return read_template(spec, s, field);
    ECF8_CHECK(type == "Sequence", s.source << ": unsupported post_processor type '" << type
                                            << "' (supported: ByteLevel, "
                                            << "TemplateProcessing, Sequence)");
    const auto& list = json_field(spec, "processors", s.source, field + ".processors");
    ECF8_CHECK(list.is_array(), field_path(s.source, field + ".processors") << " must be a list");
    for (size_t i = 0; i < list.size(); ++i)
        read_post_processor(list[i], s, field + ".processors[" + std::to_string(i) + "]");
}

void check_decoder(const nlohmann::json& spec, const std::string& source) {
    const std::string type = spec.is_null() ? "null" : type_of(spec, source, "decoder");
    ECF8_CHECK(type == "ByteLevel", source << ": unsupported decoder type '" << type << "' (supported: ByteLevel)");
}

AddedToken read_added_token(const nlohmann::json& item, size_t index, const std::string& source) {
    const std::string path = "added_tokens[" + std::to_string(index) + "]";
    AddedToken t;
    t.content = json_string(item, "content", source, path + ".content");
    t.id = json_id(json_field(item, "id", source, path + ".id"), source, path + ".id");
    t.special = json_bool_or(item, "special", false, source, path + ".special");
    t.lstrip = json_bool_or(item, "lstrip", false, source, path + ".lstrip");
    t.rstrip = json_bool_or(item, "rstrip", false, source, path + ".rstrip");
    t.single_word = json_bool_or(item, "single_word", false, source, path + ".single_word");
    t.normalized = json_bool_or(item, "normalized", !t.special, source, path + ".normalized");
    return t;
}

// Registers the added tokens in order. Hugging Face does not trust the ids in the file: a token in the
// vocabulary keeps its id, any other takes the next free one; a file that disagrees is an error here.
void read_added_tokens(const nlohmann::json& list, Tokenizer::Impl& s) {
    if (list.is_null()) return;
    ECF8_CHECK(list.is_array(), field_path(s.source, "added_tokens") << " must be a list");
    const auto model_size = static_cast<int64_t>(s.model.entry_count());
    int64_t max_added = -1;
    for (size_t i = 0; i < list.size(); ++i) {
        const AddedToken t = read_added_token(list[i], i, s.source);
        if (t.content.empty()) continue;
        const auto known = s.added_ids.find(t.content);
        std::optional<int32_t> expected = known != s.added_ids.end() ? known->second : s.model.token_id(t.content);
        if (!expected) {
            expected = static_cast<int32_t>(max_added < 0 ? model_size : std::max(max_added + 1, model_size));
        }
        ECF8_CHECK(t.id == *expected, s.source << ": added token '" << t.content << "' has id " << t.id
                                               << ", but Hugging Face would give it id " << *expected);
        ECF8_CHECK(t.id < kMaxTokenId, field_path(s.source, "added_tokens[" + std::to_string(i) + "].id")
                                           << " = " << t.id << " is implausibly large");
        max_added = std::max<int64_t>(max_added, t.id);
        s.added_ids[t.content] = t.id;
        s.added_tokens.push_back(t);
        (t.normalized ? s.normalized_matcher : s.raw_matcher).add(t);
    }
}

// Decoding bytes per id: vocabulary tokens first, then added tokens over them.
void build_id_tables(Tokenizer::Impl& s) {
    size_t size = s.model.tokens().size();
    for (const auto& t : s.added_tokens) size = std::max(size, static_cast<size_t>(t.id) + 1);
    s.id_bytes.assign(size, std::string());
    s.id_known.assign(size, 0);
    s.id_special.assign(size, 0);
    auto set = [&](int32_t id, const std::string& spelling) {
        auto raw = from_byte_level(spelling);
        s.id_bytes[static_cast<size_t>(id)] = raw ? std::move(*raw) : spelling;
        s.id_known[static_cast<size_t>(id)] = 1;
    };
    const auto& tokens = s.model.tokens();
    for (size_t id = 0; id < tokens.size(); ++id) {
        if (!tokens[id].empty()) set(static_cast<int32_t>(id), tokens[id]);
    }
    for (const auto& t : s.added_tokens) {
        set(t.id, t.content);
        s.id_special[static_cast<size_t>(t.id)] = t.special;
    }
}

// bos_token / eos_token: a string, an AddedToken object {"content": ...}, null or absent.
std::string read_token_name(const nlohmann::json& config, const char* key, const std::string& source) {
    const auto it = config.find(key);
    if (it == config.end() || it->is_null()) return "";
    if (it->is_string()) return it->get<std::string>();
    ECF8_CHECK(it->is_object(), field_path(source, key) << " must be a string, an AddedToken object or null");
    return json_string(*it, "content", source, std::string(key) + ".content");
}

// chat_template: a string, or a list of {name, template} of which "default" is taken.
std::string read_chat_template(const nlohmann::json& config, const std::string& source) {
    const auto it = config.find("chat_template");
    if (it == config.end() || it->is_null()) return "";
    if (it->is_string()) return it->get<std::string>();
    ECF8_CHECK(it->is_array(), field_path(source, "chat_template") << " must be a string or a list of templates");
    for (const auto& item : *it) {
        if (json_string(item, "name", source, "chat_template[].name") == "default") {
            return json_string(item, "template", source, "chat_template[].template");
        }
    }
    ECF8_FAIL(field_path(source, "chat_template") << " lists no template named \"default\"");
}

// The config's name in errors: the tokenizer.json name with the file name swapped when it has one.
std::string config_source(const std::string& source) {
    constexpr std::string_view kFile = "tokenizer.json";
    if (source.ends_with(kFile)) return source.substr(0, source.size() - kFile.size()) + "tokenizer_config.json";
    return source + " (tokenizer_config.json)";
}

void read_config(std::string_view text, Tokenizer::Impl& s) {
    if (text.empty()) return;
    const std::string source = config_source(s.source);
    const nlohmann::json config = parse_json(text, "tokenizer_config.json", source);
    ECF8_CHECK(config.is_object(), source << " must hold a JSON object");
    // Checked for their type only: with a tokenizer.json, transformers (>= 5) and tokenizers add what the
    // post_processor says and ignore these flags.
    json_bool_or(config, "add_bos_token", false, source, "add_bos_token");
    json_bool_or(config, "add_eos_token", false, source, "add_eos_token");
    s.bos_token = read_token_name(config, "bos_token", source);
    s.eos_token = read_token_name(config, "eos_token", source);
    auto id_of = [&](const std::string& token, const char* key) -> std::optional<int32_t> {
        if (token.empty()) return std::nullopt;
        const std::optional<int32_t> id = s.id_of(token);
        ECF8_CHECK(id, field_path(source, key) << " '" << token << "' is not a token of tokenizer.json");
        return id;
    };
    s.bos_id = id_of(s.bos_token, "bos_token");
    s.eos_id = id_of(s.eos_token, "eos_token");
    s.chat_template = read_chat_template(config, source);
}

}  // namespace

std::unique_ptr<Tokenizer::Impl> load_tokenizer_impl(std::string_view tokenizer_json, std::string_view config_json,
                                                     const std::string& source) {
    const nlohmann::json root = parse_json(tokenizer_json, "tokenizer.json", source);
    ECF8_CHECK(root.is_object(), source << ": tokenizer.json must hold a JSON object");
    if (root.contains("version")) {
        ECF8_CHECK(json_string(root, "version", source, "version") == "1.0", field_path(source, "version")
                                                                                 << ": unknown tokenizer.json version");
    }
    ECF8_CHECK(!root.contains("truncation") || root["truncation"].is_null(),
               field_path(source, "truncation") << ": truncation is not supported (must be null)");
    const auto& model_spec = json_field(root, "model", source, "model");
    const std::string model_type = type_of(model_spec, source, "model");
    ECF8_CHECK(model_type == "BPE", source << ": unsupported model type '" << model_type << "' (supported: BPE)");
    auto impl = std::make_unique<Tokenizer::Impl>(BpeModel::from_json(model_spec, source));
    Tokenizer::Impl& s = *impl;
    s.source = source;
    check_normalizer(root.value("normalizer", nlohmann::json()), source, "normalizer");
    s.pre_tokenizer = PreTokenizer::from_json(root.value("pre_tokenizer", nlohmann::json()), source);
    ECF8_CHECK(s.pre_tokenizer && s.pre_tokenizer->byte_level_last(),
               field_path(source, "pre_tokenizer") << ": a byte-level BPE needs ByteLevel as the last pre-tokenizer "
                                                   << "(and only there)");
    check_decoder(root.value("decoder", nlohmann::json()), source);
    read_post_processor(root.value("post_processor", nlohmann::json()), s, "post_processor");
    read_added_tokens(root.value("added_tokens", nlohmann::json()), s);
    build_id_tables(s);
    read_config(config_json, s);
    return impl;
}

}  // namespace ecf8::text
