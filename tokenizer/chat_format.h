// Chat formats rendered natively, selected by the chat template of tokenizer_config.json.
// There is no Jinja evaluator here: a template is only used to pick a format, by markers that identify it.
// DeepSeek-V3's template is recognised by its markers; the renderer reproduces what Hugging Face
// transformers' apply_chat_template gives on that template, quirks included (a test compares them).
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace ecf8::text {

struct ToolCall {
    std::string type = "function";
    std::string name;
    std::string arguments;  // JSON text, inserted as is
};

struct ChatMessage {
    std::string role;                    // system | user | assistant | tool
    std::optional<std::string> content;  // none: an assistant turn that only calls tools
    std::vector<ToolCall> tool_calls;    // assistant turns only
    bool has_tool_calls = false;         // the template distinguishes an absent list from an empty one
};

enum class ChatFormat { DeepSeekV3 };

// The format a template stands for; an unrecognised template is an error naming `source`.
ChatFormat chat_format_for_template(const std::string& chat_template, const std::string& source);
const char* chat_format_name(ChatFormat format);

// DeepSeek-V3's chat_template (its Hugging Face tokenizer_config.json, Dec 2024), the one copy in ecf8:
// the synthetic tokenizer writes it, tests check it against the template file they render with transformers.
std::string_view deepseek_v3_chat_template();

// Messages in the OpenAI / transformers shape: [{"role", "content" (string or null), "tool_calls":
// [{"type", "function": {"name", "arguments" (a JSON string)}}]}]. An absent content reads as null.
// Errors name `source` and the message's index.
std::vector<ChatMessage> chat_messages_from_json(const nlohmann::json& messages, const std::string& source);

struct ChatTokens {
    std::string bos;  // tokenizer_config.json's bos_token
};

// The prompt string, ending with the assistant's turn opener when add_generation_prompt is set (and the
// format opens one there). A message whose content the format needs but is null is an error; roles the
// format does not know render nothing, as in the template. tool_calls count as present when
// has_tool_calls is set or the list is not empty.
std::string render_chat(ChatFormat format, const std::vector<ChatMessage>& messages, const ChatTokens& tokens,
                        bool add_generation_prompt);

// The ids of a chat ending with the assistant's turn opened, in the format of the tokenizer's chat template
// (`template_source` names that template in errors), as ecf8 run --chat and a request's "messages" use it: the
// rendered prompt holds bos already, so encoding adds no special tokens (as transformers' apply_chat_template).
std::vector<int32_t> encode_chat(const Tokenizer& tokenizer, const std::vector<ChatMessage>& messages,
                                 const std::string& template_source);

}  // namespace ecf8::text
