// PCRE2 regexes that mean what Hugging Face's Oniguruma regexes mean. tokenizer.json patterns are written
// for Oniguruma, so they are translated first: \s and \S become the White_Space property (PCRE2's \s
// also takes U+180E), ^ and $ match at line ends (Ruby syntax), and \p{L} \p{M} \p{N} \p{P} \p{S} gain
// the code points that Unicode 15-16 added, which Oniguruma knows and PCRE2 10.42 (Unicode 14) does not.
// Escapes whose meaning differs and cannot be translated (\w \d \b \h ...) are errors.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "tokenizer/function_ref.h"

namespace ecf8::text {

class Regex {
public:
    // `source` names the file (and field) in errors.
    Regex(std::string_view oniguruma_pattern, const std::string& source);
    Regex(Regex&& other) noexcept;
    Regex& operator=(Regex&&) = delete;
    Regex(const Regex&) = delete;
    ~Regex();

    // The first match in `subject` (valid UTF-8) that starts at or after byte `start`.
    bool find(std::string_view subject, size_t start, size_t& match_begin, size_t& match_end) const;
    // Every match, left to right, as Oniguruma's find_iter gives them: an empty match right where the
    // previous match ended is skipped.
    void for_each_match(std::string_view subject, FunctionRef<void(size_t, size_t)> on_match) const;

    const std::string& pattern() const { return pattern_; }

private:
    void* code_ = nullptr;  // pcre2_code_8
    bool jit_ = false;
    std::string pattern_;
    std::string source_;
};

// The PCRE2 pattern for an Oniguruma pattern (see the file comment); errors name `source`.
std::string oniguruma_to_pcre2(std::string_view pattern, const std::string& source);
// A pattern that matches `literal` exactly.
std::string quote_regex(std::string_view literal);

}  // namespace ecf8::text
