// GPT-2's byte-level alphabet: each byte maps to one printable Unicode character, so that any byte string
// becomes a string of vocabulary characters and back.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace ecf8::text {

// UTF-8 of the byte-level characters of `bytes`.
std::string to_byte_level(std::string_view bytes);
// The bytes that a byte-level string stands for; nullopt when it holds a character outside the alphabet.
std::optional<std::string> from_byte_level(std::string_view chars);

}  // namespace ecf8::text
