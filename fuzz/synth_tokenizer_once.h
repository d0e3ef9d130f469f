// The synthetic tokenizer (DeepSeek's pre-tokenizer and special tokens, a 1024-token byte-level BPE), trained
// once per fuzzing process: fuzz_tokenizer encodes with it, fuzz_requests encodes text prompts.
#pragma once

#include "tokenizer/synth_tokenizer.h"
#include "tokenizer/tokenizer.h"

namespace ecf8::fuzz {

inline const text::Tokenizer& synth_tokenizer() {
    static const text::Tokenizer tok = [] {
        const text::SynthTokenizerFiles f = text::train_synth_tokenizer(1024);
        return text::Tokenizer::from_json(f.tokenizer_json, f.tokenizer_config_json, "synth");
    }();
    return tok;
}

}  // namespace ecf8::fuzz
