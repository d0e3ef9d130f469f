// PCRE2 regexes with Oniguruma's meaning (regex.h): compilation with JIT when available, matching with
// per-thread match data, and Oniguruma's iteration over matches.
#include "tokenizer/regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "common/error.h"

namespace ecf8::text {

namespace {

std::string pcre2_message(int code) {
    PCRE2_UCHAR buffer[256];
    pcre2_get_error_message(code, buffer, sizeof(buffer));
    return reinterpret_cast<const char*>(buffer);
}

// Match data and a JIT stack per thread, so that matching allocates nothing and encode stays const.
struct MatchScratch {
    pcre2_match_data* data = pcre2_match_data_create(1, nullptr);
    pcre2_jit_stack* jit_stack = pcre2_jit_stack_create(32 * 1024, 4 * 1024 * 1024, nullptr);
    pcre2_match_context* context = pcre2_match_context_create(nullptr);

    MatchScratch() {
        ECF8_CHECK(data && jit_stack && context, "PCRE2: out of memory creating match data");
        pcre2_jit_stack_assign(context, nullptr, jit_stack);
    }
    ~MatchScratch() {
        pcre2_match_context_free(context);
        pcre2_jit_stack_free(jit_stack);
        pcre2_match_data_free(data);
    }
    MatchScratch(const MatchScratch&) = delete;
    MatchScratch& operator=(const MatchScratch&) = delete;
};

MatchScratch& match_scratch() {
    thread_local MatchScratch scratch;
    return scratch;
}

}  // namespace

Regex::Regex(std::string_view oniguruma_pattern, const std::string& source)
    : pattern_(oniguruma_pattern), source_(source) {
    const std::string translated = oniguruma_to_pcre2(oniguruma_pattern, source);
    int error = 0;
    PCRE2_SIZE offset = 0;
    pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated.data()), translated.size(),
                                     PCRE2_UTF | PCRE2_UCP, &error, &offset, nullptr);
    ECF8_CHECK(code != nullptr, source << ": regex '" << pattern_
                                       << "' does not compile (PCRE2: " << pcre2_message(error) << " at offset "
                                       << offset << " of '" << translated << "')");
    code_ = code;
    // JIT is an optimisation only: without it (no JIT support in this PCRE2) the interpreter runs.
    jit_ = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
}

Regex::Regex(Regex&& other) noexcept
    : code_(other.code_), jit_(other.jit_), pattern_(std::move(other.pattern_)), source_(std::move(other.source_)) {
    other.code_ = nullptr;
}

Regex::~Regex() { pcre2_code_free(static_cast<pcre2_code*>(code_)); }

bool Regex::find(std::string_view subject, size_t start, size_t& match_begin, size_t& match_end) const {
    MatchScratch& scratch = match_scratch();
    const auto* code = static_cast<const pcre2_code*>(code_);
    const auto* text = reinterpret_cast<PCRE2_SPTR>(subject.data());
    // Subjects are valid UTF-8 (the tokenizer replaces invalid bytes first), so the check is skipped.
    const int rc =
        jit_ ? pcre2_jit_match(code, text, subject.size(), start, 0, scratch.data, scratch.context)
             : pcre2_match(code, text, subject.size(), start, PCRE2_NO_UTF_CHECK, scratch.data, scratch.context);
    if (rc == PCRE2_ERROR_NOMATCH) return false;
    ECF8_CHECK(rc >= 0, source_ << ": regex '" << pattern_ << "' failed on a " << subject.size()
                                << "-byte piece (PCRE2: " << pcre2_message(rc) << ")");
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(scratch.data);
    match_begin = ovector[0];
    match_end = ovector[1];
    return true;
}

void Regex::for_each_match(std::string_view subject, FunctionRef<void(size_t, size_t)> on_match) const {
    size_t search_from = 0;
    bool have_previous = false;
    size_t previous_end = 0;
    while (search_from <= subject.size()) {
        size_t begin = 0, end = 0;
        if (!find(subject, search_from, begin, end)) return;
        if (begin == end && have_previous && end == previous_end) {
            // An empty match where the last one ended: step one character on and search again.
            if (search_from == subject.size()) return;
            size_t step = 1;
            while (search_from + step < subject.size() && (subject[search_from + step] & 0xC0) == 0x80) ++step;
            search_from += step;
            continue;
        }
        on_match(begin, end);
        have_previous = true;
        previous_end = end;
        search_from = end;
        if (begin == end && end == subject.size()) return;
    }
}

}  // namespace ecf8::text
