// Split, ByteLevel and Sequence pre-tokenizers (pretokenizer.h), with Hugging Face's semantics: a Split
// cuts each piece into the regex's matches and the gaps between them, then groups them by its behaviour.
#include "tokenizer/pretokenizer.h"

#include <optional>
#include <utility>

#include "common/error.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/json_fields.h"
#include "tokenizer/regex.h"
#include "tokenizer/utf8.h"

namespace ecf8::text {

namespace {

using SpanSink = FunctionRef<void(size_t, size_t)>;

enum class Behaviour { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

Behaviour behaviour_from_name(const std::string& name, const std::string& source) {
    static const std::pair<const char*, Behaviour> kNames[] = {
        {"Removed", Behaviour::Removed},
        {"Isolated", Behaviour::Isolated},
        {"MergedWithPrevious", Behaviour::MergedWithPrevious},
        {"MergedWithNext", Behaviour::MergedWithNext},
        {"Contiguous", Behaviour::Contiguous},
    };
    for (const auto& [n, b] : kNames) {
        if (name == n) return b;
    }
    ECF8_FAIL(source << ": unknown Split behavior '" << name
                     << "' (known: Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous)");
}

// Groups the sequence of (range, is_match) elements of one piece as a behaviour says, streaming: only
// the last pending range is kept. Empty ranges take part in the grouping (as in Hugging Face) but are
// never emitted.
class BehaviourFolder {
public:
    BehaviourFolder(Behaviour behaviour, SpanSink emit) : behaviour_(behaviour), emit_(emit) {}

    void push(size_t begin, size_t end, bool is_match) {
        switch (behaviour_) {
            case Behaviour::Isolated:
                emit(begin, end);
                break;
            case Behaviour::Removed:
                if (!is_match) emit(begin, end);
                break;
            case Behaviour::MergedWithPrevious:  // a match joins the range before it, unless that was a match
                if (is_match && !previous_match_ && pending_) {
                    pending_->second = end;
                } else {
                    flush();
                    pending_ = {begin, end};
                }
                break;
            case Behaviour::MergedWithNext:  // a match joins the range after it, unless that is a match
                if (pending_ && pending_is_match_ && !is_match) {
                    pending_->second = end;
                    pending_is_match_ = false;
                } else {
                    flush();
                    pending_ = {begin, end};
                    pending_is_match_ = is_match;
                }
                break;
            case Behaviour::Contiguous:  // runs of matches, runs of gaps
                if (pending_ && is_match == previous_match_) {
                    pending_->second = end;
                } else {
                    flush();
                    pending_ = {begin, end};
                }
                break;
        }
        previous_match_ = is_match;
    }
    void finish() { flush(); }

private:
    void emit(size_t begin, size_t end) {
        if (begin < end) emit_(begin, end);
    }
    void flush() {
        if (pending_) emit(pending_->first, pending_->second);
        pending_.reset();
    }

    Behaviour behaviour_;
    SpanSink emit_;
    std::optional<std::pair<size_t, size_t>> pending_;
    bool pending_is_match_ = false;
    bool previous_match_ = false;
};

// Every match of `regex` in `piece` and every gap between them, in order, empty ones left out (Split's
// Isolated behaviour, and ByteLevel's GPT-2 split); no regex: the whole piece.
void isolate_matches(const Regex* regex, std::string_view piece, PieceSink sink) {
    size_t gap_begin = 0;
    if (regex) {
        regex->for_each_match(piece, [&](size_t begin, size_t end) {
            if (gap_begin < begin) sink(piece.substr(gap_begin, begin - gap_begin));
            if (begin < end) sink(piece.substr(begin, end - begin));
            gap_begin = end;
        });
    }
    if (gap_begin < piece.size()) sink(piece.substr(gap_begin));
}

// ---------------------------------------------------------------------------------------------------
// Split

class SplitPre final : public PreTokenizer {
public:
    SplitPre(std::optional<Regex> regex, Behaviour behaviour, bool invert)
        : regex_(std::move(regex)), behaviour_(behaviour), invert_(invert) {}

    void visit(std::string_view piece, PieceSink sink) const override {
        // The hot path: every match and gap is a piece.
        if (behaviour_ == Behaviour::Isolated) return isolate_matches(regex_ ? &*regex_ : nullptr, piece, sink);
        auto emit = [&](size_t begin, size_t end) { sink(piece.substr(begin, end - begin)); };
        BehaviourFolder folder(behaviour_, emit);
        size_t gap_begin = 0;
        if (regex_) {
            regex_->for_each_match(piece, [&](size_t begin, size_t end) {
                if (gap_begin != begin) folder.push(gap_begin, begin, invert_);
                folder.push(begin, end, !invert_);
                gap_begin = end;
            });
        }
        if (gap_begin != piece.size()) folder.push(gap_begin, piece.size(), invert_);
        folder.finish();
    }

    bool byte_level_last() const override { return false; }
    bool has_byte_level() const override { return false; }

private:
    std::optional<Regex> regex_;  // none: an empty literal, which matches nothing
    Behaviour behaviour_;
    bool invert_;
};

std::unique_ptr<PreTokenizer> make_split(const nlohmann::json& spec, const std::string& source) {
    const auto& pattern = json_field(spec, "pattern", source, "pre_tokenizer.pattern");
    std::optional<Regex> regex;
    if (pattern.is_object() && pattern.contains("Regex")) {
        regex.emplace(json_string(pattern, "Regex", source, "pre_tokenizer.pattern.Regex"), source);
    } else if (pattern.is_object() && pattern.contains("String")) {
        const std::string literal = json_string(pattern, "String", source, "pre_tokenizer.pattern.String");
        if (!literal.empty()) regex.emplace(quote_regex(literal), source);
    } else {
        ECF8_FAIL(field_path(source, "pre_tokenizer.pattern") << " must be {\"Regex\": ...} or {\"String\": ...}");
    }
    const Behaviour behaviour =
        behaviour_from_name(json_string(spec, "behavior", source, "pre_tokenizer.behavior"), source);
    const bool invert = json_bool_or(spec, "invert", false, source, "pre_tokenizer.invert");
    return std::make_unique<SplitPre>(std::move(regex), behaviour, invert);
}

// ---------------------------------------------------------------------------------------------------
// ByteLevel

// GPT-2's pre-tokenization regex, which ByteLevel applies when use_regex is set.
constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

class ByteLevelPre final : public PreTokenizer {
public:
    ByteLevelPre(bool add_prefix_space, bool use_regex, const std::string& source)
        : add_prefix_space_(add_prefix_space) {
        if (use_regex) regex_.emplace(kGpt2Pattern, source);
    }

    void visit(std::string_view piece, PieceSink sink) const override {
        std::string prefixed;
        if (add_prefix_space_ && (piece.empty() || piece.front() != ' ')) {
            prefixed = " " + std::string(piece);
            piece = prefixed;
        }
        isolate_matches(regex_ ? &*regex_ : nullptr, piece, sink);
    }

    bool byte_level_last() const override { return true; }
    bool has_byte_level() const override { return true; }

private:
    bool add_prefix_space_;
    std::optional<Regex> regex_;
};

std::unique_ptr<PreTokenizer> make_byte_level(const nlohmann::json& spec, const std::string& source) {
    // Hugging Face's defaults for absent fields: add_prefix_space and use_regex are on.
    const bool prefix = json_bool_or(spec, "add_prefix_space", true, source, "pre_tokenizer.add_prefix_space");
    const bool use_regex = json_bool_or(spec, "use_regex", true, source, "pre_tokenizer.use_regex");
    return std::make_unique<ByteLevelPre>(prefix, use_regex, source);
}

// ---------------------------------------------------------------------------------------------------
// Sequence

class SequencePre final : public PreTokenizer {
public:
    explicit SequencePre(std::vector<std::unique_ptr<PreTokenizer>> steps) : steps_(std::move(steps)) {}

    void visit(std::string_view piece, PieceSink sink) const override { visit_from(0, piece, sink); }

    bool byte_level_last() const override {
        if (steps_.empty() || !steps_.back()->byte_level_last()) return false;
        for (size_t i = 0; i + 1 < steps_.size(); ++i) {
            if (steps_[i]->has_byte_level()) return false;
        }
        return true;
    }
    bool has_byte_level() const override {
        for (const auto& step : steps_) {
            if (step->has_byte_level()) return true;
        }
        return false;
    }

private:
    // Depth first: each piece of step i goes through the later steps before the next piece comes.
    void visit_from(size_t step, std::string_view piece, PieceSink sink) const {
        if (step == steps_.size()) {
            sink(piece);
            return;
        }
        steps_[step]->visit(piece, [&](std::string_view sub) { visit_from(step + 1, sub, sink); });
    }

    std::vector<std::unique_ptr<PreTokenizer>> steps_;
};

std::unique_ptr<PreTokenizer> make_sequence(const nlohmann::json& spec, const std::string& source) {
    const auto& list = json_field(spec, "pretokenizers", source, "pre_tokenizer.pretokenizers");
    ECF8_CHECK(list.is_array(), field_path(source, "pre_tokenizer.pretokenizers") << " must be a list");
    std::vector<std::unique_ptr<PreTokenizer>> steps;
    for (const auto& item : list) {
        auto step = PreTokenizer::from_json(item, source);
        if (step) steps.push_back(std::move(step));
    }
    return std::make_unique<SequencePre>(std::move(steps));
}

using Factory = std::unique_ptr<PreTokenizer> (*)(const nlohmann::json&, const std::string&);
constexpr std::pair<std::string_view, Factory> kFactories[] = {
    {"Split", make_split},
    {"ByteLevel", make_byte_level},
    {"Sequence", make_sequence},
};

}  // namespace

std::unique_ptr<PreTokenizer> PreTokenizer::from_json(const nlohmann::json& spec, const std::string& source) {
    if (spec.is_null()) return nullptr;
    ECF8_CHECK(spec.is_object(), field_path(source, "pre_tokenizer") << " must be an object or null");
    const std::string type = json_string(spec, "type", source, "pre_tokenizer.type");
    for (const auto& [name, factory] : kFactories) {
        if (type == name) return factory(spec, source);
    }
    ECF8_FAIL(source << ": unsupported pre_tokenizer type '" << type << "' (supported: Split, ByteLevel, Sequence)");
}

std::vector<std::string> pre_tokenize(const PreTokenizer* pre, std::string_view text) {
    std::vector<std::string> pieces;
    if (text.empty()) return pieces;
    const std::string valid = replace_invalid_utf8(text);
    if (!pre) {
        pieces.push_back(valid);
        return pieces;
    }
    // encode's own path (visit), with the pieces written in the byte-level alphabet when ByteLevel ends it.
    ECF8_CHECK(!pre->has_byte_level() || pre->byte_level_last(),
               "pre_tokenize: ByteLevel must be the last pre-tokenizer (and only there)");
    const bool byte_level = pre->has_byte_level();
    pre->visit(valid, [&](std::string_view piece) {
        pieces.push_back(byte_level ? to_byte_level(piece) : std::string(piece));
    });
    return pieces;
}

}  // namespace ecf8::text
