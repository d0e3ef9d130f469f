// DeepSeek-V3's native chat format: hand-checked renderings (the exhaustive comparison with transformers is
// chat_template_vs_transformers), template recognition and its errors, and the message reader.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/error.h"
#include "common/file_util.h"
#include "tokenizer/chat_format.h"

namespace ecf8::text {
namespace {

const ChatTokens kTokens{"<BOS>"};

ChatMessage msg(std::string role, std::string content) { return {std::move(role), std::move(content), {}, false}; }

ChatMessage tool_calling(std::optional<std::string> content, std::vector<ToolCall> calls) {
    return {"assistant", std::move(content), std::move(calls), true};
}

std::string render(const std::vector<ChatMessage>& messages, bool add_generation_prompt) {
    return render_chat(ChatFormat::DeepSeekV3, messages, kTokens, add_generation_prompt);
}

std::string error_of(const std::string& chat_template) {
    try {
        chat_format_for_template(chat_template, "model/tokenizer_config.json");
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}

TEST(ChatFormat, SystemPromptsJoinAfterBosAndGenerationPromptOpensTheReply) {
    EXPECT_EQ(render({msg("user", "Hi")}, true), "<BOS><｜User｜>Hi<｜Assistant｜>");
    EXPECT_EQ(render({msg("user", "Hi")}, false), "<BOS><｜User｜>Hi");
    // A system message after the first turn still goes to the front.
    EXPECT_EQ(render({msg("system", "A"), msg("user", "Hi"), msg("system", "B")}, false), "<BOS>A\n\nB<｜User｜>Hi");
}

TEST(ChatFormat, AssistantTurnsKeepOnlyWhatFollowsTheLastThinkEnd) {
    EXPECT_EQ(render({msg("user", "q"), msg("assistant", "<think>r</think>x</think>answer"), msg("user", "q2")}, true),
              "<BOS><｜User｜>q<｜Assistant｜>answer<｜end▁of▁sentence｜><｜User｜>q2<｜Assistant｜>");
}

TEST(ChatFormat, ToolCallsOutputsAndTheAnswerThatClosesThem) {
    const std::vector<ChatMessage> messages = {
        msg("user", "w?"),
        tool_calling(std::nullopt, {{"function", "get", "{\"a\": 1}"}, {"function", "put", "{}"}}),
        msg("tool", "r1"),
        msg("tool", "r2"),
        msg("assistant", "<think>kept</think>done"),
    };
    EXPECT_EQ(
        render(messages, true),
        "<BOS><｜User｜>w?<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get\n"
        "```json\n{\"a\": 1}\n```<｜tool▁call▁end｜>\n<｜tool▁call▁begin｜>function<｜tool▁sep｜>put\n```json\n{}\n"
        "```<｜tool▁call▁end｜><｜tool▁calls▁end｜><｜end▁of▁sentence｜><｜tool▁outputs▁begin｜>"
        "<｜tool▁output▁begin｜>r1<｜tool▁output▁end｜>\n<｜tool▁output▁begin｜>r2<｜tool▁output▁end｜>"
        "<｜tool▁outputs▁end｜><think>kept</think>done<｜end▁of▁sentence｜><｜Assistant｜>");
}

TEST(ChatFormat, SecondToolCallingTurnContinuesTheFirstAsTheTemplateDoes) {
    // is_first and is_output_first are never reset: the second turn loses its opener and content.
    const std::vector<ChatMessage> messages = {
        tool_calling("c1", {{"function", "f", "1"}}),
        msg("tool", "o1"),
        tool_calling("c2", {{"function", "g", "2"}}),
        msg("tool", "o2"),
    };
    EXPECT_EQ(
        render(messages, true),
        "<BOS><｜Assistant｜>c1<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>f\n```json\n1\n```"
        "<｜tool▁call▁end｜><｜tool▁calls▁end｜><｜end▁of▁sentence｜><｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>o1"
        "<｜tool▁output▁end｜>\n<｜tool▁call▁begin｜>function<｜tool▁sep｜>g\n```json\n2\n```<｜tool▁call▁end｜>"
        "<｜tool▁calls▁end｜><｜end▁of▁sentence｜>\n<｜tool▁output▁begin｜>o2<｜tool▁output▁end｜>"
        "<｜tool▁outputs▁end｜>");  // ends on a tool output: outputs closed, no assistant opener
}

TEST(ChatFormat, AbsentAndEmptyToolCallListsDiffer) {
    EXPECT_EQ(render({tool_calling("x", {})}, false), "<BOS><｜tool▁calls▁end｜><｜end▁of▁sentence｜>");
    EXPECT_EQ(render({msg("assistant", "x")}, false), "<BOS><｜Assistant｜>x<｜end▁of▁sentence｜>");
}

TEST(ChatFormat, NullContentIsAnErrorWhereTheTemplateUsesIt) {
    EXPECT_THROW(render({{"user", std::nullopt, {}, false}}, true), Error);
    EXPECT_THROW(render({{"assistant", std::nullopt, {}, false}}, true), Error);
    EXPECT_NO_THROW(render({tool_calling(std::nullopt, {{"function", "f", "{}"}})}, true));
}

TEST(ChatFormat, UnknownRolesRenderNothing) {
    EXPECT_EQ(render({msg("developer", "x"), msg("user", "Hi")}, false), "<BOS><｜User｜>Hi");
}

TEST(ChatFormat, TemplateFileMatchesTheProductCopyAndIsRecognised) {
    const std::string path = std::string(ECF8_TOKENIZER_TEST_DATA) + "/deepseek_v3_chat_template.jinja";
    const std::string from_file = read_file(path);
    EXPECT_EQ(from_file, std::string(deepseek_v3_chat_template()));
    EXPECT_EQ(chat_format_for_template(from_file, path), ChatFormat::DeepSeekV3);
    EXPECT_STREQ(chat_format_name(ChatFormat::DeepSeekV3), "DeepSeek-V3");
}

TEST(ChatFormat, OtherTemplatesAreErrorsThatNameTheSourceAndTheReason) {
    const std::string chatml =
        "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
        "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
    const std::string chatml_error = error_of(chatml);
    EXPECT_NE(chatml_error.find("chat template in model/tokenizer_config.json is not one ecf8 renders"),
              std::string::npos)
        << chatml_error;
    EXPECT_NE(chatml_error.find("lacks the marker <｜User｜>"), std::string::npos) << chatml_error;
    EXPECT_NE(chatml_error.find("supported: DeepSeek-V3"), std::string::npos) << chatml_error;

    EXPECT_NE(error_of("").find("there is no chat_template"), std::string::npos);

    // DeepSeek-R1's revision opens the reply with <think>: close, but not what this renderer writes.
    std::string r1(deepseek_v3_chat_template());
    const std::string opener = "{{'<｜Assistant｜>'}}";
    r1.replace(r1.rfind(opener), opener.size(), "{{'<｜Assistant｜><think>\\n'}}");
    EXPECT_NE(error_of(r1).find("<think>"), std::string::npos) << error_of(r1);
    EXPECT_NE(error_of(std::string(deepseek_v3_chat_template()) + "{% set is_last_user = true %}").find("is_last_user"),
              std::string::npos);
}

TEST(ChatFormat, MessagesFromJson) {
    const auto json = nlohmann::json::parse(R"([
        {"role": "system", "content": "s"},
        {"role": "assistant", "content": null, "tool_calls": [
            {"type": "function", "function": {"name": "f", "arguments": "{\"x\": 1}"}}]},
        {"role": "assistant", "tool_calls": []},
        {"role": "tool", "content": "out"}])");
    const std::vector<ChatMessage> messages = chat_messages_from_json(json, "req.json");
    ASSERT_EQ(messages.size(), 4u);
    EXPECT_EQ(messages[0].content, "s");
    EXPECT_FALSE(messages[1].content.has_value());
    ASSERT_EQ(messages[1].tool_calls.size(), 1u);
    EXPECT_EQ(messages[1].tool_calls[0].arguments, "{\"x\": 1}");
    EXPECT_TRUE(messages[2].has_tool_calls);
    EXPECT_TRUE(messages[2].tool_calls.empty());
    EXPECT_FALSE(messages[3].has_tool_calls);

    const auto object_arguments = nlohmann::json::parse(
        R"([{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": {"x": 1}}}]}])");
    try {
        chat_messages_from_json(object_arguments, "req.json");
        FAIL() << "object arguments accepted";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("req.json: message 0 tool call 0"), std::string::npos) << e.what();
    }
    EXPECT_THROW(chat_messages_from_json(nlohmann::json::parse(R"([{"content": "x"}])"), "r"), Error);
}

}  // namespace
}  // namespace ecf8::text
