// Text prompts and streamed text for `ecf8 run`.
#include "launcher/text_prompt.h"

#include <cstdio>
#include <filesystem>

#include "common/error.h"
#include "tokenizer/chat_format.h"

namespace ecf8 {

PromptKind prompt_kind(const Args& args) {
    const int given = int(args.has("prompt-ids")) + int(args.has("prompt")) + int(args.has("chat"));
    ECF8_CHECK(given == 1, (given == 0 ? "a prompt is required" : "give only one prompt")
                               << ": --prompt-ids 1,2,3 (token ids), --prompt \"text\" or --chat \"message\"");
    ECF8_CHECK(!args.has("system") || args.has("chat"), "--system goes with --chat (it is the chat's system prompt)");
    if (args.has("chat")) return PromptKind::Chat;
    return args.has("prompt") ? PromptKind::Text : PromptKind::Ids;
}

std::string tokenizer_dir(const Args& args, const std::string& model_dir) {
    const bool flag = args.has("tokenizer");
    const std::string dir = flag ? args.get("tokenizer", "") : model_dir;
    ECF8_CHECK(std::filesystem::is_regular_file(std::filesystem::path(dir) / "tokenizer.json"),
               "no tokenizer.json in '" << dir << "' ("
                                        << (flag ? "--tokenizer" : "the model directory that the shard manifest names")
                                        << "); pass --tokenizer DIR with the model's tokenizer.json and "
                                           "tokenizer_config.json, or use --prompt-ids");
    return dir;
}

std::vector<int32_t> text_prompt_ids(const Args& args, PromptKind kind, const text::Tokenizer& tokenizer,
                                     const std::string& tokenizer_source) {
    if (kind == PromptKind::Text) {
        const std::vector<int32_t> ids = tokenizer.encode(args.get("prompt", ""), true);
        ECF8_CHECK(!ids.empty(), "--prompt: the text gives no tokens; give some text");
        return ids;
    }
    ECF8_CHECK(kind == PromptKind::Chat, "text_prompt_ids: not a text prompt");
    std::vector<text::ChatMessage> messages;
    if (args.has("system")) messages.push_back({"system", args.get("system", ""), {}, false});
    messages.push_back({"user", args.get("chat", ""), {}, false});
    return text::encode_chat(tokenizer, messages, tokenizer_source + "/tokenizer_config.json");
}

TextStream::TextStream(const text::Tokenizer& tokenizer, bool show_special) : detok_(tokenizer, !show_special) {}

void TextStream::push(int32_t id) {
    const std::string piece = detok_.push(id);
    if (piece.empty()) return;
    std::fwrite(piece.data(), 1, piece.size(), stdout);
    std::fflush(stdout);
}

void TextStream::finish() {
    const std::string rest = detok_.finish();
    std::fwrite(rest.data(), 1, rest.size(), stdout);
    std::fputc('\n', stdout);
    std::fflush(stdout);
}

}  // namespace ecf8
