// Translation of Oniguruma patterns (Hugging Face's regex engine) into PCRE2 patterns (regex.h).
#include <array>
#include <string>
#include <string_view>

#include "common/error.h"
#include "tokenizer/regex.h"

namespace ecf8::text {

namespace {

// Code points of each general category that are assigned in Unicode 16.0 (the tables of the Oniguruma
// that `tokenizers` 0.23 bundles) but unassigned in Unicode 14.0 (PCRE2 10.42's tables). Found by
// matching every code point against both engines (no code point changed category in between, so adding
// these is all it takes); the oracle corpus runs every code point through both tokenizers.
struct CategoryAdditions {
    std::string_view category;
    std::string_view ranges;  // PCRE2 class items
};
constexpr std::array<CategoryAdditions, 5> kUnicode16Additions = {{
    {"L",
     "\\x{1C89}-\\x{1C8A}\\x{A7CB}-\\x{A7CD}\\x{A7DA}-\\x{A7DC}\\x{105C0}-\\x{105F3}\\x{10D4A}-"
     "\\x{10D65}\\x{10D6F}-\\x{10D85}\\x{10EC2}-\\x{10EC4}\\x{1123F}-\\x{11240}\\x{11380}-\\x{11389}"
     "\\x{1138B}\\x{1138E}\\x{11390}-\\x{113B5}\\x{113B7}\\x{113D1}\\x{113D3}\\x{11BC0}-\\x{11BE0}"
     "\\x{11F02}\\x{11F04}-\\x{11F10}\\x{11F12}-\\x{11F33}\\x{1342F}\\x{13441}-\\x{13446}\\x{13460}-"
     "\\x{143FA}\\x{16100}-\\x{1611D}\\x{16D40}-\\x{16D6C}\\x{18CFF}\\x{1B132}\\x{1B155}\\x{1DF25}-"
     "\\x{1DF2A}\\x{1E030}-\\x{1E06D}\\x{1E4D0}-\\x{1E4EB}\\x{1E5D0}-\\x{1E5ED}\\x{1E5F0}\\x{2B739}"
     "\\x{2EBF0}-\\x{2EE5D}\\x{31350}-\\x{323AF}"},
    {"M",
     "\\x{897}\\x{CF3}\\x{ECE}\\x{10D69}-\\x{10D6D}\\x{10EFC}-\\x{10EFF}\\x{11241}\\x{113B8}-"
     "\\x{113C0}\\x{113C2}\\x{113C5}\\x{113C7}-\\x{113CA}\\x{113CC}-\\x{113D0}\\x{113D2}\\x{113E1}-"
     "\\x{113E2}\\x{11F00}-\\x{11F01}\\x{11F03}\\x{11F34}-\\x{11F3A}\\x{11F3E}-\\x{11F42}\\x{11F5A}"
     "\\x{13440}\\x{13447}-\\x{13455}\\x{1611E}-\\x{1612F}\\x{1E08F}\\x{1E4EC}-\\x{1E4EF}\\x{1E5EE}-"
     "\\x{1E5EF}"},
    {"N",
     "\\x{10D40}-\\x{10D49}\\x{116D0}-\\x{116E3}\\x{11BF0}-\\x{11BF9}\\x{11F50}-\\x{11F59}\\x{16130}-"
     "\\x{16139}\\x{16D70}-\\x{16D79}\\x{1CCF0}-\\x{1CCF9}\\x{1D2C0}-\\x{1D2D3}\\x{1E4F0}-\\x{1E4F9}"
     "\\x{1E5F1}-\\x{1E5FA}"},
    {"P",
     "\\x{1B4E}-\\x{1B4F}\\x{1B7F}\\x{10D6E}\\x{113D4}-\\x{113D5}\\x{113D7}-\\x{113D8}\\x{11B00}-"
     "\\x{11B09}\\x{11BE1}\\x{11F43}-\\x{11F4F}\\x{16D6D}-\\x{16D6F}\\x{1E5FF}"},
    {"S",
     "\\x{2427}-\\x{2429}\\x{2FFC}-\\x{2FFF}\\x{31E4}-\\x{31E5}\\x{31EF}\\x{10D8E}-\\x{10D8F}"
     "\\x{1CC00}-\\x{1CCEF}\\x{1CD00}-\\x{1CEB3}\\x{1F6DC}\\x{1F774}-\\x{1F776}\\x{1F77B}-\\x{1F77F}"
     "\\x{1F7D9}\\x{1F8B2}-\\x{1F8BB}\\x{1F8C0}-\\x{1F8C1}\\x{1FA75}-\\x{1FA77}\\x{1FA87}-\\x{1FA89}"
     "\\x{1FA8F}\\x{1FAAD}-\\x{1FAAF}\\x{1FABB}-\\x{1FABF}\\x{1FAC6}\\x{1FACE}-\\x{1FACF}\\x{1FADA}-"
     "\\x{1FADC}\\x{1FADF}\\x{1FAE8}-\\x{1FAE9}\\x{1FAF7}-\\x{1FAF8}\\x{1FBCB}-\\x{1FBEF}"},
}};

std::string_view additions_of(std::string_view category) {
    for (const auto& a : kUnicode16Additions) {
        if (a.category == category) return a.ranges;
    }
    return {};
}

// Translates the escape at pattern[i] (a backslash) and returns the index after it.
size_t translate_escape(std::string_view pattern, size_t i, bool in_class, std::string& out,
                        const std::string& source) {
    ECF8_CHECK(i + 1 < pattern.size(), source << ": regex '" << pattern << "' ends with a lone backslash");
    const char c = pattern[i + 1];
    switch (c) {
        case 's':
            out += "\\p{White_Space}";
            return i + 2;
        case 'S':
            out += "\\P{White_Space}";
            return i + 2;
        case 'p':
        case 'P': {
            const size_t close = pattern.find('}', i);
            if (i + 2 >= pattern.size() || pattern[i + 2] != '{' || close == std::string_view::npos) break;
            const std::string_view name = pattern.substr(i + 3, close - (i + 3));
            const std::string_view extra = additions_of(name);
            const std::string property = std::string("\\") + c + "{" + std::string(name) + "}";
            if (extra.empty()) {
                out += property;
            } else if (c == 'p') {
                out += in_class ? "\\p{" + std::string(name) + "}" + std::string(extra)
                                : "[\\p{" + std::string(name) + "}" + std::string(extra) + "]";
            } else {
                ECF8_CHECK(!in_class, source << ": regex '" << pattern << "': \\P{" << name
                                             << "} inside a character class is not supported");
                out += "[^\\p{" + std::string(name) + "}" + std::string(extra) + "]";
            }
            return close + 1;
        }
        case 'w':
        case 'W':
        case 'd':
        case 'D':
        case 'b':
        case 'B':
        case 'h':
        case 'H':
        case 'R':
        case 'X':
        case 'K':
        case 'g':
        case 'k':
            ECF8_FAIL(source << ": regex '" << pattern << "': the escape \\" << c
                             << " is not supported (Oniguruma and PCRE2 give it different meanings)");
        default:
            break;
    }
    out += pattern.substr(i, 2);
    return i + 2;
}

}  // namespace

std::string oniguruma_to_pcre2(std::string_view pattern, const std::string& source) {
    std::string out;
    out.reserve(pattern.size() + 64);
    bool in_class = false;
    size_t i = 0;
    while (i < pattern.size()) {
        const char c = pattern[i];
        if (c == '\\') {
            i = translate_escape(pattern, i, in_class, out, source);
            continue;
        }
        if (in_class) {
            if (c == ']') in_class = false;
            ECF8_CHECK(c != '[' || (i + 1 < pattern.size() && pattern[i + 1] == ':'),
                       source << ": regex '" << pattern << "': nested character classes are not supported");
            ECF8_CHECK(!(c == '&' && i + 1 < pattern.size() && pattern[i + 1] == '&'),
                       source << ": regex '" << pattern << "': class intersection (&&) is not supported");
            if (c == '[') {  // a POSIX class [:name:] is copied whole
                const size_t close = pattern.find(":]", i + 2);
                ECF8_CHECK(close != std::string_view::npos, source << ": regex '" << pattern << "': bad [: class");
                out += pattern.substr(i, close + 2 - i);
                i = close + 2;
                continue;
            }
            out += c;
            ++i;
            continue;
        }
        if (c == '[') {
            in_class = true;
            out += c;
            ++i;
            if (i < pattern.size() && pattern[i] == '^') out += pattern[i++];
            if (i < pattern.size() && pattern[i] == ']') out += pattern[i++];  // a leading ] is literal
            continue;
        }
        if (c == '^' || c == '$') {  // Ruby syntax: line anchors
            out += c == '^' ? "(?m:^)" : "(?m:$)";
            ++i;
            continue;
        }
        out += c;
        ++i;
    }
    ECF8_CHECK(!in_class, source << ": regex '" << pattern << "' has an unterminated character class");
    return out;
}

std::string quote_regex(std::string_view literal) {
    std::string out;
    for (const char c : literal) {
        const auto u = static_cast<unsigned char>(c);
        const bool alnum = (u >= '0' && u <= '9') || (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z');
        // Any ASCII non-alphanumeric escaped by a backslash is literal in PCRE2; other bytes are UTF-8.
        if (u < 0x80 && !alnum && u >= 0x20) out += '\\';
        out += c;
    }
    return out;
}

}  // namespace ecf8::text
