// The tokenizer that `ecf8 synth` writes next to a synthetic checkpoint: a byte-level BPE trained on an
// embedded text sample up to the model's vocab_size, with DeepSeek's pre-tokenizer, DeepSeek's special
// tokens and DeepSeek-V3's chat template, so text in and text out run on synthetic models.
#pragma once

#include <filesystem>
#include <string>

namespace ecf8::text {

struct SynthTokenizerFiles {
    std::string tokenizer_json;
    std::string tokenizer_config_json;
    int merges = 0;  // merges learned (fewer than asked when the sample runs out of pairs)
};

// Ids: 0-2 DeepSeek's begin / end of sentence and pad, then the 256 byte-level characters, then the merged
// tokens in order, then special placeholders "<｜place▁holder▁no▁N｜>" for ids the sample has no merges
// for, then DeepSeek's 13 chat and tool markers at the top ids; every id below vocab_size is a token.
// Deterministic for a vocab_size. Errors when vocab_size cannot hold the 256 bytes and the special tokens.
SynthTokenizerFiles train_synth_tokenizer(int vocab_size);
// Writes DIR/tokenizer.json and DIR/tokenizer_config.json (atomically); returns the merges learned.
int write_synth_tokenizer(const std::filesystem::path& dir, int vocab_size);

}  // namespace ecf8::text
