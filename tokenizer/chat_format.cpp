// Native chat formats: DeepSeek-V3's renderer, the template markers that select it, and the OpenAI-shaped
// message reader.
#include "tokenizer/chat_format.h"

#include <array>
#include <string>

#include "common/error.h"

namespace ecf8::text {
namespace {

// ---------------------------------------------------------------------------------------------------------
// DeepSeek-V3's chat template, verbatim (the pieces concatenate; "\n" inside is Jinja's escape, kept as is).

constexpr std::string_view kDeepSeekV3Template =
    R"j({% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %})j"
    R"j({% set ns = namespace(is_first=false, is_tool=false, is_output_first=true, system_prompt='', is_first_sp=true) %})j"
    R"j({%- for message in messages %}{%- if message['role'] == 'system' %}{%- if ns.is_first_sp %})j"
    R"j({% set ns.system_prompt = ns.system_prompt + message['content'] %})j"
    R"j({% set ns.is_first_sp = false %}{%- else %}{% set ns.system_prompt = ns.system_prompt + )j"
    R"j('\n\n' + message['content'] %}{%- endif %}{%- endif %}{%- endfor %}{{ bos_token }})j"
    R"j({{ ns.system_prompt }}{%- for message in messages %}{%- if message['role'] == 'user' %})j"
    R"j({%- set ns.is_tool = false -%}{{'<｜User｜>' + message['content']}}{%- endif %})j"
    R"j({%- if message['role'] == 'assistant' and 'tool_calls' in message %})j"
    R"j({%- set ns.is_tool = false -%}{%- for tool in message['tool_calls'] %}{%- if not ns.is_first %})j"
    R"j({%- if message['content'] is none %}{{'<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>' + )j"
    R"j(tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\n' + '```json' + '\n' + )j"
    R"j(tool['function']['arguments'] + '\n' + '```' + '<｜tool▁call▁end｜>'}}{%- else %})j"
    R"j({{'<｜Assistant｜>' + message['content'] + '<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>' + )j"
    R"j(tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\n' + '```json' + '\n' + )j"
    R"j(tool['function']['arguments'] + '\n' + '```' + '<｜tool▁call▁end｜>'}}{%- endif %})j"
    R"j({%- set ns.is_first = true -%}{%- else %}{{'\n' + '<｜tool▁call▁begin｜>' + tool['type'] + )j"
    R"j('<｜tool▁sep｜>' + tool['function']['name'] + '\n' + '```json' + '\n' + )j"
    R"j(tool['function']['arguments'] + '\n' + '```' + '<｜tool▁call▁end｜>'}}{%- endif %}{%- endfor %})j"
    R"j({{'<｜tool▁calls▁end｜><｜end▁of▁sentence｜>'}}{%- endif %})j"
    R"j({%- if message['role'] == 'assistant' and 'tool_calls' not in message %}{%- if ns.is_tool %})j"
    R"j({{'<｜tool▁outputs▁end｜>' + message['content'] + '<｜end▁of▁sentence｜>'}})j"
    R"j({%- set ns.is_tool = false -%}{%- else %}{% set content = message['content'] %})j"
    R"j({% if '</think>' in content %}{% set content = content.split('</think>')[-1] %}{% endif %})j"
    R"j({{'<｜Assistant｜>' + content + '<｜end▁of▁sentence｜>'}}{%- endif %}{%- endif %})j"
    R"j({%- if message['role'] == 'tool' %}{%- set ns.is_tool = true -%}{%- if ns.is_output_first %})j"
    R"j({{'<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}})j"
    R"j({%- set ns.is_output_first = false %}{%- else %}{{'\n<｜tool▁output▁begin｜>' + )j"
    R"j(message['content'] + '<｜tool▁output▁end｜>'}}{%- endif %}{%- endif %}{%- endfor -%})j"
    R"j({% if ns.is_tool %}{{'<｜tool▁outputs▁end｜>'}}{% endif %})j"
    R"j({% if add_generation_prompt and not ns.is_tool %}{{'<｜Assistant｜>'}}{% endif %})j";

// ---------------------------------------------------------------------------------------------------------
// Recognition. A template is taken for a format when it holds all of that format's markers (snippets of its
// text) and none of the markers of its known relatives that render differently.

struct ForbiddenMarker {
    std::string_view text;
    const char* meaning;
};

struct TemplateSignature {
    ChatFormat format;
    std::array<std::string_view, 6> required;
    std::array<ForbiddenMarker, 2> forbidden;
};

constexpr std::array kSignatures = {
    TemplateSignature{
        ChatFormat::DeepSeekV3,
        {"<｜User｜>", "<｜Assistant｜>", "ns.system_prompt", "<｜tool▁calls▁begin｜>",
         // DeepSeek-R1's first template joined tool outputs without the newline
         R"('\n<｜tool▁output▁begin｜>')",
         // the generation prompt opens a plain assistant turn (R1 revisions open '<think>\n' there)
         "{{'<｜Assistant｜>'}}"},
        {ForbiddenMarker{"is_last_user", "a later DeepSeek revision (V3-0324, R1-0528, V3.1) that renders differently"},
         ForbiddenMarker{"<｜Assistant｜><think>", "a DeepSeek-R1 template that opens the reply with <think>"}},
    },
};

// Why `chat_template` is not `sig`'s format; empty when it is.
std::string signature_mismatch(const TemplateSignature& sig, const std::string& chat_template) {
    for (const ForbiddenMarker& marker : sig.forbidden) {
        if (chat_template.find(marker.text) != std::string::npos) {
            return "it has " + std::string(marker.text) + ", " + marker.meaning;
        }
    }
    for (std::string_view marker : sig.required) {
        if (chat_template.find(marker) == std::string::npos) return "it lacks the marker " + std::string(marker);
    }
    return {};
}

// ---------------------------------------------------------------------------------------------------------
// DeepSeek-V3. The end-of-sentence marker is written literally by the template, not taken from eos_token.

constexpr std::string_view kUser = "<｜User｜>";
constexpr std::string_view kAssistant = "<｜Assistant｜>";
constexpr std::string_view kEndOfSentence = "<｜end▁of▁sentence｜>";
constexpr std::string_view kToolCallsBegin = "<｜tool▁calls▁begin｜>";
constexpr std::string_view kToolCallsEnd = "<｜tool▁calls▁end｜>";
constexpr std::string_view kToolCallBegin = "<｜tool▁call▁begin｜>";
constexpr std::string_view kToolCallEnd = "<｜tool▁call▁end｜>";
constexpr std::string_view kToolSep = "<｜tool▁sep｜>";
constexpr std::string_view kToolOutputsBegin = "<｜tool▁outputs▁begin｜>";
constexpr std::string_view kToolOutputsEnd = "<｜tool▁outputs▁end｜>";
constexpr std::string_view kToolOutputBegin = "<｜tool▁output▁begin｜>";
constexpr std::string_view kToolOutputEnd = "<｜tool▁output▁end｜>";
constexpr std::string_view kThinkEnd = "</think>";

// The template's `ns` namespace. None of it is reset per message, which is where its quirks come from.
struct DeepSeekV3State {
    bool is_first = false;        // a tool call was rendered: later calls, in any turn, are bare "\n" + call
    bool is_tool = false;         // inside a run of tool outputs that is not yet closed
    bool is_output_first = true;  // no tool output yet: later outputs, in any run, start with "\n"
};

const std::string& required_content(const ChatMessage& message, size_t index) {
    ECF8_CHECK(message.content.has_value(), "chat message " << index << " (" << message.role
                                                            << ") has null content; only an assistant turn "
                                                            << "with tool_calls may");
    return *message.content;
}

bool has_tool_calls(const ChatMessage& message) { return message.has_tool_calls || !message.tool_calls.empty(); }

// All system messages, wherever they are, joined by a blank line; they precede every other turn.
std::string deepseek_v3_system_prompt(const std::vector<ChatMessage>& messages) {
    std::string prompt;
    bool first = true;
    for (size_t i = 0; i < messages.size(); ++i) {
        if (messages[i].role != "system") continue;
        if (!first) prompt += "\n\n";
        prompt += required_content(messages[i], i);
        first = false;
    }
    return prompt;
}

// Only the first tool call ever rendered opens the assistant turn and the calls block; the template never
// resets is_first, so a later tool-calling turn continues with "\n" + call (and drops its content).
void deepseek_v3_tool_calls(const ChatMessage& message, DeepSeekV3State& ns, std::string& out) {
    ns.is_tool = false;
    for (const ToolCall& call : message.tool_calls) {
        if (!ns.is_first) {
            out.append(kAssistant).append(message.content.value_or("")).append(kToolCallsBegin);
            ns.is_first = true;
        } else {
            out += '\n';
        }
        out.append(kToolCallBegin).append(call.type).append(kToolSep).append(call.name);
        out.append("\n```json\n").append(call.arguments).append("\n```").append(kToolCallEnd);
    }
    out.append(kToolCallsEnd).append(kEndOfSentence);
}

// An answer right after tool outputs closes them instead of opening a turn, and keeps its reasoning; any
// other answer keeps only what follows its last </think>.
void deepseek_v3_answer(const ChatMessage& message, size_t index, DeepSeekV3State& ns, std::string& out) {
    const std::string& content = required_content(message, index);
    if (ns.is_tool) {
        out.append(kToolOutputsEnd).append(content).append(kEndOfSentence);
        ns.is_tool = false;
        return;
    }
    const size_t think_end = content.rfind(kThinkEnd);
    const std::string_view answer = think_end == std::string::npos
                                        ? std::string_view(content)
                                        : std::string_view(content).substr(think_end + kThinkEnd.size());
    out.append(kAssistant).append(answer).append(kEndOfSentence);
}

void deepseek_v3_tool_output(const ChatMessage& message, size_t index, DeepSeekV3State& ns, std::string& out) {
    const std::string& content = required_content(message, index);
    ns.is_tool = true;
    if (ns.is_output_first) {
        out.append(kToolOutputsBegin);
        ns.is_output_first = false;
    } else {
        out += '\n';
    }
    out.append(kToolOutputBegin).append(content).append(kToolOutputEnd);
}

std::string render_deepseek_v3(const std::vector<ChatMessage>& messages, const ChatTokens& tokens,
                               bool add_generation_prompt) {
    std::string out = tokens.bos + deepseek_v3_system_prompt(messages);
    DeepSeekV3State ns;
    for (size_t i = 0; i < messages.size(); ++i) {
        const ChatMessage& message = messages[i];
        if (message.role == "user") {
            ns.is_tool = false;  // a user turn after tool outputs leaves them unclosed
            out.append(kUser).append(required_content(message, i));
        } else if (message.role == "assistant" && has_tool_calls(message)) {
            deepseek_v3_tool_calls(message, ns, out);
        } else if (message.role == "assistant") {
            deepseek_v3_answer(message, i, ns, out);
        } else if (message.role == "tool") {
            deepseek_v3_tool_output(message, i, ns, out);
        }
    }
    if (ns.is_tool) out.append(kToolOutputsEnd);
    // Ending on tool outputs, the template opens no assistant turn even when asked to.
    if (add_generation_prompt && !ns.is_tool) out.append(kAssistant);
    return out;
}

// ---------------------------------------------------------------------------------------------------------
// Dispatch

using Renderer = std::string (*)(const std::vector<ChatMessage>&, const ChatTokens&, bool);

struct FormatEntry {
    ChatFormat format;
    const char* name;
    Renderer render;
};

constexpr std::array kFormats = {
    FormatEntry{ChatFormat::DeepSeekV3, "DeepSeek-V3", &render_deepseek_v3},
};

const FormatEntry& format_entry(ChatFormat format) {
    for (const FormatEntry& entry : kFormats) {
        if (entry.format == format) return entry;
    }
    ECF8_FAIL("chat format " << static_cast<int>(format) << " has no renderer");
}

std::string supported_formats() {
    std::string names;
    for (const FormatEntry& entry : kFormats) names += (names.empty() ? "" : ", ") + std::string(entry.name);
    return names;
}

// ---------------------------------------------------------------------------------------------------------
// Messages from JSON

std::string json_string(const nlohmann::json& value, const char* field, const std::string& where) {
    ECF8_CHECK(value.is_string(), where << ": \"" << field << "\" must be a string, not " << value.type_name());
    return value.get<std::string>();
}

ToolCall tool_call_from_json(const nlohmann::json& call, const std::string& where) {
    ECF8_CHECK(call.is_object(), where << " must be an object");
    ToolCall result;
    if (call.contains("type")) result.type = json_string(call["type"], "type", where);
    ECF8_CHECK(call.contains("function") && call["function"].is_object(),
               where << " needs a \"function\" object with \"name\" and \"arguments\"");
    const nlohmann::json& function = call["function"];
    ECF8_CHECK(function.contains("name") && function.contains("arguments"),
               where << ": \"function\" needs \"name\" and \"arguments\"");
    result.name = json_string(function["name"], "name", where);
    // The template concatenates the arguments, so they are the JSON text, as OpenAI's API sends them.
    result.arguments = json_string(function["arguments"], "arguments", where + " (the arguments' JSON text)");
    return result;
}

ChatMessage message_from_json(const nlohmann::json& item, const std::string& where) {
    ECF8_CHECK(item.is_object(), where << " must be an object");
    ChatMessage message;
    ECF8_CHECK(item.contains("role"), where << " has no \"role\"");
    message.role = json_string(item["role"], "role", where);
    if (item.contains("content") && !item["content"].is_null()) {
        message.content = json_string(item["content"], "content", where);
    }
    if (item.contains("tool_calls")) {
        const nlohmann::json& calls = item["tool_calls"];
        ECF8_CHECK(calls.is_array(), where << ": \"tool_calls\" must be an array");
        message.has_tool_calls = true;
        for (size_t i = 0; i < calls.size(); ++i) {
            message.tool_calls.push_back(tool_call_from_json(calls[i], where + " tool call " + std::to_string(i)));
        }
    }
    return message;
}

}  // namespace

ChatFormat chat_format_for_template(const std::string& chat_template, const std::string& source) {
    ECF8_CHECK(!chat_template.empty(), "chat template in " << source << " is not one ecf8 renders: there is no "
                                                           << "chat_template; supported: " << supported_formats());
    std::string reasons;
    for (const TemplateSignature& sig : kSignatures) {
        const std::string mismatch = signature_mismatch(sig, chat_template);
        if (mismatch.empty()) return sig.format;
        reasons += (reasons.empty() ? "" : "; ") + std::string(chat_format_name(sig.format)) + ": " + mismatch;
    }
    ECF8_FAIL("chat template in " << source << " is not one ecf8 renders: " << reasons
                                  << "; supported: " << supported_formats());
}

const char* chat_format_name(ChatFormat format) { return format_entry(format).name; }

std::string_view deepseek_v3_chat_template() { return kDeepSeekV3Template; }

std::vector<ChatMessage> chat_messages_from_json(const nlohmann::json& messages, const std::string& source) {
    ECF8_CHECK(messages.is_array(), source << ": chat messages must be an array, not " << messages.type_name());
    std::vector<ChatMessage> result;
    for (size_t i = 0; i < messages.size(); ++i) {
        result.push_back(message_from_json(messages[i], source + ": message " + std::to_string(i)));
    }
    return result;
}

std::string render_chat(ChatFormat format, const std::vector<ChatMessage>& messages, const ChatTokens& tokens,
                        bool add_generation_prompt) {
    return format_entry(format).render(messages, tokens, add_generation_prompt);
}

std::vector<int32_t> encode_chat(const Tokenizer& tokenizer, const std::vector<ChatMessage>& messages,
                                 const std::string& template_source) {
    const ChatFormat format = chat_format_for_template(tokenizer.chat_template(), template_source);
    return tokenizer.encode(render_chat(format, messages, {tokenizer.bos_token()}, true), false);
}

}  // namespace ecf8::text
