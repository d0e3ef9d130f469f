// Pre-tokenization of tokenizer.json: Split (a PCRE2 regex with Unicode properties), ByteLevel and a
// Sequence of them. Each piece that comes out is one BPE word; after ByteLevel its bytes are written in
// the byte-level alphabet (byte_level.h).
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/function_ref.h"

namespace ecf8::text {

using PieceSink = FunctionRef<void(std::string_view)>;

class PreTokenizer {
public:
    virtual ~PreTokenizer() = default;

    // Calls `sink` with each non-empty piece `piece` splits into, in order, without copies (steps of a
    // Sequence depth first). Pieces stay raw bytes: ByteLevel's mapping to the byte-level alphabet is left
    // to the BPE model, which keys its vocabulary by raw bytes. `piece` is valid UTF-8.
    virtual void visit(std::string_view piece, PieceSink sink) const = 0;
    // Whether ByteLevel is the last step and no other step is ByteLevel: then the raw pieces are exactly
    // what Hugging Face's byte-level pieces stand for, which is what encode relies on.
    virtual bool byte_level_last() const = 0;
    virtual bool has_byte_level() const = 0;

    // Builds the pre-tokenizer that a tokenizer.json "pre_tokenizer" object describes (null: none).
    // An unknown type or behaviour is an error naming it and `source`.
    static std::unique_ptr<PreTokenizer> from_json(const nlohmann::json& spec, const std::string& source);
};

// The pieces `pre` makes of `text` (invalid UTF-8 replaced first), written in the byte-level alphabet when
// ByteLevel ends `pre`, as Hugging Face's pre_tokenize_str gives them. ByteLevel anywhere else is an error.
std::vector<std::string> pre_tokenize(const PreTokenizer* pre, std::string_view text);

}  // namespace ecf8::text
