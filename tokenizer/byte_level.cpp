// GPT-2's byte-level alphabet (byte_level.h). Printable Latin-1 bytes stand for themselves; the others
// (controls, space, DEL, NBSP, soft hyphen) take the code points from U+0100 on, in byte order.
#include "tokenizer/byte_level.h"

#include <array>

#include "tokenizer/utf8.h"

namespace ecf8::text {

namespace {

struct ByteLevelTables {
    std::array<char32_t, 256> byte_to_char{};
    std::array<int16_t, 0x144> char_to_byte{};  // the alphabet ends at U+0143; -1: not in it

    ByteLevelTables() {
        char_to_byte.fill(-1);
        char32_t next_free = 0x100;
        for (int b = 0; b < 256; ++b) {
            const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
            byte_to_char[b] = printable ? static_cast<char32_t>(b) : next_free++;
            char_to_byte[byte_to_char[b]] = static_cast<int16_t>(b);
        }
    }
};

const ByteLevelTables& tables() {
    static const ByteLevelTables t;
    return t;
}

}  // namespace

std::string to_byte_level(std::string_view bytes) {
    const auto& t = tables();
    std::string out;
    out.reserve(bytes.size() * 2);
    for (const char c : bytes) append_utf8(out, t.byte_to_char[static_cast<unsigned char>(c)]);
    return out;
}

std::optional<std::string> from_byte_level(std::string_view chars) {
    const auto& t = tables();
    std::string out;
    out.reserve(chars.size());
    size_t i = 0;
    while (i < chars.size()) {
        const Utf8Step step = utf8_step(chars.substr(i));
        if (!step.valid) return std::nullopt;
        size_t length = 0;
        const char32_t cp = decode_code_point(chars.substr(i), length);
        if (cp >= t.char_to_byte.size() || t.char_to_byte[cp] < 0) return std::nullopt;
        out.push_back(static_cast<char>(t.char_to_byte[cp]));
        i += length;
    }
    return out;
}

}  // namespace ecf8::text
