// Typed access to the fields of tokenizer.json / tokenizer_config.json objects: a missing field or one of
// the wrong type is an error naming the file and the field's path.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "common/error.h"

namespace ecf8::text {

// Ids above this are refused: no real vocabulary comes near, and the id tables are dense.
inline constexpr int32_t kMaxTokenId = int32_t{1} << 24;

// Where a field lives, for messages: "tokenizer.json: model.vocab".
inline std::string field_path(const std::string& source, std::string_view path) {
    return source + ": field '" + std::string(path) + "'";
}

inline const nlohmann::json& json_field(const nlohmann::json& object, std::string_view key, const std::string& source,
                                        std::string_view path) {
    ECF8_CHECK(object.is_object(), field_path(source, path) << "'s parent is not a JSON object");
    const auto it = object.find(key);
    ECF8_CHECK(it != object.end(), field_path(source, path) << " is missing");
    return *it;
}

inline std::string json_string(const nlohmann::json& object, std::string_view key, const std::string& source,
                               std::string_view path) {
    const auto& v = json_field(object, key, source, path);
    ECF8_CHECK(v.is_string(), field_path(source, path) << " must be a string, not " << v.type_name());
    return v.get<std::string>();
}

// A boolean field; absent or null gives `fallback`.
inline bool json_bool_or(const nlohmann::json& object, std::string_view key, bool fallback, const std::string& source,
                         std::string_view path) {
    if (!object.is_object()) return fallback;
    const auto it = object.find(key);
    if (it == object.end() || it->is_null()) return fallback;
    ECF8_CHECK(it->is_boolean(), field_path(source, path) << " must be true or false, not " << it->type_name());
    return it->get<bool>();
}

inline int32_t json_id(const nlohmann::json& value, const std::string& source, std::string_view path) {
    ECF8_CHECK(value.is_number_integer() && value.get<int64_t>() >= 0 && value.get<int64_t>() < INT32_MAX,
               field_path(source, path) << " must be a token id (an integer in [0, 2^31-1)), not " << value.dump());
    return static_cast<int32_t>(value.get<int64_t>());
}

}  // namespace ecf8::text
