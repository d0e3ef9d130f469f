// Text in and out for `ecf8 run`: finds the tokenizer (--tokenizer DIR, else the model directory the shard
// manifest names), turns --prompt or --chat/--system into prompt ids, and streams generated text.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "launcher/args.h"
#include "tokenizer/detokenizer.h"
#include "tokenizer/tokenizer.h"

namespace ecf8 {

// Where the prompt comes from: exactly one of --prompt-ids, --prompt or --chat.
enum class PromptKind { Ids, Text, Chat };
PromptKind prompt_kind(const Args& args);

// --tokenizer DIR, else model_dir (the checkpoint the shards were made from). A directory without
// tokenizer.json is an error that says which directory was tried and how to point elsewhere.
std::string tokenizer_dir(const Args& args, const std::string& model_dir);

// --prompt TEXT: encoded with the special tokens that tokenizer.json's post-processor adds (Hugging Face's
// rule; none for DeepSeek's files).
// --chat MESSAGE [--system TEXT]: one user turn (after the system prompt) rendered in the chat format of the
// tokenizer's chat template, with the assistant's turn opened; the template already holds bos, so nothing
// more is added (as transformers' apply_chat_template does).
std::vector<int32_t> text_prompt_ids(const Args& args, PromptKind kind, const text::Tokenizer& tokenizer,
                                     const std::string& tokenizer_source);

// Prints one sequence's text to stdout as its tokens arrive, flushing after each piece.
class TextStream {
public:
    TextStream(const text::Tokenizer& tokenizer, bool show_special);
    void push(int32_t id);
    void finish();  // the rest and a newline

private:
    text::StreamingDetokenizer detok_;
};

}  // namespace ecf8
