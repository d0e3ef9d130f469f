// UTF-8 helpers of the tokenizer: validation, Python-compatible replacement of invalid bytes by U+FFFD,
// and code point decoding. Replacement follows the "maximal subpart" rule that both Python's
// bytes.decode("utf-8", errors="replace") and Rust's String::from_utf8_lossy implement: each maximal
// prefix of a would-be character that cannot be completed becomes one U+FFFD.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace ecf8::text {

inline constexpr std::string_view kReplacementChar = "\xEF\xBF\xBD";  // U+FFFD

// One step of UTF-8 decoding at the start of a byte string.
struct Utf8Step {
    size_t length = 0;       // bytes of the character, or of the invalid subpart one U+FFFD replaces
    bool valid = false;      // a complete, well-formed character
    bool truncated = false;  // invalid only because the bytes end early (a longer string could complete it)
};
Utf8Step utf8_step(std::string_view bytes);

bool is_valid_utf8(std::string_view bytes);
// `bytes` with every maximal invalid subpart replaced by U+FFFD (a copy of `bytes` when it is valid).
std::string replace_invalid_utf8(std::string_view bytes);

// The code point that starts `text` (valid UTF-8) and its length in bytes.
inline char32_t decode_code_point(std::string_view text, size_t& length) {
    const auto b0 = static_cast<unsigned char>(text[0]);
    auto cont = [&](size_t i) { return static_cast<char32_t>(static_cast<unsigned char>(text[i]) & 0x3F); };
    if (b0 < 0x80) {
        length = 1;
        return b0;
    }
    if (b0 < 0xE0) {
        length = 2;
        return (static_cast<char32_t>(b0 & 0x1F) << 6) | cont(1);
    }
    if (b0 < 0xF0) {
        length = 3;
        return (static_cast<char32_t>(b0 & 0x0F) << 12) | (cont(1) << 6) | cont(2);
    }
    length = 4;
    return (static_cast<char32_t>(b0 & 0x07) << 18) | (cont(1) << 12) | (cont(2) << 6) | cont(3);
}

void append_utf8(std::string& out, char32_t code_point);

}  // namespace ecf8::text
