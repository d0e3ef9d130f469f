// UTF-8 validation and U+FFFD replacement (see utf8.h).
#include "tokenizer/utf8.h"

#include <cstring>

namespace ecf8::text {

Utf8Step utf8_step(std::string_view bytes) {
    const auto* s = reinterpret_cast<const unsigned char*>(bytes.data());
    const size_t n = bytes.size();
    const unsigned b0 = s[0];
    if (b0 < 0x80) return {1, true, false};
    // Continuation bytes needed and the range allowed for the second byte, which excludes overlong
    // forms, surrogates (ED A0..BF) and code points above U+10FFFF.
    size_t need = 0;
    unsigned lo = 0x80, hi = 0xBF;
    if (b0 >= 0xC2 && b0 <= 0xDF) {
        need = 1;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
        need = 2;
        if (b0 == 0xE0) lo = 0xA0;
        if (b0 == 0xED) hi = 0x9F;
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
        need = 3;
        if (b0 == 0xF0) lo = 0x90;
        if (b0 == 0xF4) hi = 0x8F;
    } else {
        return {1, false, false};
    }
    for (size_t i = 1; i <= need; ++i) {
        if (i >= n) return {i, false, true};
        const unsigned b = s[i];
        const bool ok = i == 1 ? (b >= lo && b <= hi) : (b >= 0x80 && b <= 0xBF);
        if (!ok) return {i, false, false};
    }
    return {need + 1, true, false};
}

// Length of the valid prefix of `bytes`; ASCII is skipped eight bytes at a time.
static size_t valid_prefix_length(std::string_view bytes) {
    size_t i = 0;
    while (i < bytes.size()) {
        if (i + 8 <= bytes.size()) {
            uint64_t word;
            std::memcpy(&word, bytes.data() + i, 8);
            if ((word & 0x8080808080808080ull) == 0) {
                i += 8;
                continue;
            }
        }
        const Utf8Step step = utf8_step(bytes.substr(i));
        if (!step.valid) return i;
        i += step.length;
    }
    return i;
}

bool is_valid_utf8(std::string_view bytes) { return valid_prefix_length(bytes) == bytes.size(); }

std::string replace_invalid_utf8(std::string_view bytes) {
    size_t i = valid_prefix_length(bytes);
    std::string out(bytes.substr(0, i));
    while (i < bytes.size()) {
        const Utf8Step step = utf8_step(bytes.substr(i));
        if (step.valid) {
            out.append(bytes.substr(i, step.length));
        } else {
            out.append(kReplacementChar);
        }
        i += step.length;
    }
    return out;
}

void append_utf8(std::string& out, char32_t cp) {
    if (cp < 0x80) {
        out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
        out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
        out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
}

}  // namespace ecf8::text
