// The request file of `ecf8 run --requests` (runtime/requests_io.h): fields, defaults, and errors that name
// the file, the line and the field.
#include <gtest/gtest.h>

#include <string>

#include "common/error.h"
#include "runtime/requests_io.h"
#include "tokenizer/synth_tokenizer.h"

namespace ecf8 {
namespace {

RequestDefaults defaults() {
    RequestDefaults d;
    d.params.max_new_tokens = 5;
    d.params.temperature = 0.5f;
    d.params.seed = 3;
    d.params.stop_ids = {9};
    return d;
}

std::string error_of(const std::string& text) {
    try {
        parse_requests(text, "reqs.jsonl", defaults(), nullptr);
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}

TEST(RequestsIo, FieldsAndDefaults) {
    const auto rs = parse_requests(
        "{\"id\": \"a\", \"prompt_ids\": [1, 2], \"max_new_tokens\": 8, \"temperature\": 0, \"top_p\": 0.9, "
        "\"seed\": 18446744073709551615, \"stop_ids\": []}\n\n  \n{\"prompt_ids\": [7]}\n{\"id\": 12, \"prompt_ids\": "
        "[0]}",
        "reqs.jsonl", defaults(), nullptr);
    ASSERT_EQ(rs.size(), 3u);
    EXPECT_EQ(rs[0].id, "a");
    EXPECT_EQ(rs[0].prompt, (std::vector<int32_t>{1, 2}));
    EXPECT_EQ(rs[0].params.max_new_tokens, 8);
    EXPECT_EQ(rs[0].params.temperature, 0.0f);
    EXPECT_EQ(rs[0].params.top_p, 0.9f);
    EXPECT_EQ(rs[0].params.seed, UINT64_MAX);
    EXPECT_TRUE(rs[0].params.stop_ids.empty());
    EXPECT_EQ(rs[1].id, "4");  // the line number
    EXPECT_EQ(rs[1].params.max_new_tokens, 5);
    EXPECT_EQ(rs[1].params.temperature, 0.5f);
    EXPECT_EQ(rs[1].params.seed, 3u);
    EXPECT_EQ(rs[1].params.stop_ids, (std::vector<int32_t>{9}));
    EXPECT_EQ(rs[2].id, "12");
}

TEST(RequestsIo, BadLinesNameTheFileLineAndField) {
    const std::pair<std::string, std::string> cases[] = {
        {"{\"prompt_ids\": [1]}\nnot json", "reqs.jsonl:2: not JSON"},
        {"[1, 2]", "reqs.jsonl:1: a request is a JSON object"},
        {"{\"prompt_ids\": [1], \"colour\": 1}", "unknown field \"colour\""},
        {"{\"id\": \"x\", \"prompt_ids\": [1]}\n{\"id\": \"x\", \"prompt_ids\": [2]}",
         "reqs.jsonl:2: request id 'x' is repeated"},
        {"{\"prompt_ids\": [1], \"prompt\": \"hi\"}", "exactly one of \"prompt_ids\", \"prompt\" and \"messages\""},
        {"{\"prompt\": \"hi\", \"messages\": []}", "reqs.jsonl:1: give exactly one of"},
        {"{\"id\": 1}", "reqs.jsonl:1: give exactly one of"},
        {"{\"prompt\": \"hi\"}", "\"prompt\" is text and needs the model's tokenizer.json"},
        {"{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}",
         "\"messages\" is text and needs the model's tokenizer.json"},
        {"{\"prompt_ids\": [-1]}", "\"prompt_ids\" holds -1, not a token id"},
        {"{\"prompt_ids\": [2147483648]}", "not a token id"},
        {"{\"prompt_ids\": [1], \"max_new_tokens\": 1e10}", "\"max_new_tokens\" must be an integer in [1, 2147483647]"},
        {"{\"prompt_ids\": [1], \"max_new_tokens\": 4294967297}", "\"max_new_tokens\" must be an integer"},
        {"{\"prompt_ids\": [1], \"max_new_tokens\": 0}", "\"max_new_tokens\" must be an integer"},
        {"{\"prompt_ids\": [1], \"temperature\": 1e39}", "\"temperature\" must be a number within float's range"},
        {"{\"prompt_ids\": [1], \"temperature\": -1}", "request '1': temperature must be >= 0"},
        {"{\"prompt_ids\": [1], \"top_p\": 1.5}", "top_p must be in (0, 1]"},
        {"{\"prompt_ids\": [1], \"seed\": -1}", "\"seed\" must be a non-negative integer"},
        {"{\"prompt_ids\": [1], \"seed\": 1.5}", "\"seed\" must be a non-negative integer"},
        {"\n \n", "reqs.jsonl: no requests"},
    };
    for (const auto& [text, want] : cases) {
        const std::string got = error_of(text);
        EXPECT_NE(got.find(want), std::string::npos) << text << "\n  got: " << got << "\n  want: " << want;
    }
}

// The synthetic tokenizer: DeepSeek-V3's special tokens and chat template, a 512-token byte-level BPE.
const text::Tokenizer& synth_tokenizer() {
    static const text::Tokenizer tok = [] {
        const text::SynthTokenizerFiles f = text::train_synth_tokenizer(512);
        return text::Tokenizer::from_json(f.tokenizer_json, f.tokenizer_config_json, "synth");
    }();
    return tok;
}

TEST(RequestsIo, TextAndChatPrompts) {
    const text::Tokenizer& tok = synth_tokenizer();
    const auto rs = parse_requests(
        "{\"id\": \"t\", \"prompt\": \"Hello there\"}\n"
        "{\"id\": \"c\", \"messages\": [{\"role\": \"system\", \"content\": \"Be terse.\"}, "
        "{\"role\": \"user\", \"content\": \"Hi\"}], \"max_new_tokens\": 3}",
        "reqs.jsonl", defaults(), &tok);
    ASSERT_EQ(rs.size(), 2u);
    EXPECT_EQ(rs[0].prompt, tok.encode("Hello there"));
    // DeepSeek-V3's format: bos, the system prompt, the user's turn, the assistant's turn opened
    // (test_chat_format compares the renderer with transformers' apply_chat_template).
    EXPECT_EQ(rs[1].prompt, tok.encode(tok.bos_token() + "Be terse.<｜User｜>Hi<｜Assistant｜>", false));
    EXPECT_EQ(rs[1].params.max_new_tokens, 3);
}

TEST(RequestsIo, BadChatMessagesNameTheLine) {
    const text::Tokenizer& tok = synth_tokenizer();
    const std::pair<std::string, std::string> cases[] = {
        {"{\"messages\": \"hi\"}", "reqs.jsonl:1: chat messages must be an array"},
        {"{\"prompt_ids\": [1]}\n{\"messages\": []}", "reqs.jsonl:2: \"messages\" is empty"},
        {"{\"messages\": [{\"content\": \"hi\"}]}", "reqs.jsonl:1: message 0 has no \"role\""},
        {"{\"messages\": [{\"role\": \"user\", \"content\": 5}]}", "reqs.jsonl:1: message 0"},
        {"{\"messages\": [{\"role\": \"user\"}]}", "reqs.jsonl:1"},  // the user's content is needed
    };
    for (const auto& [text, want] : cases) {
        std::string got;
        try {
            parse_requests(text, "reqs.jsonl", defaults(), &tok);
        } catch (const Error& e) {
            got = e.what();
        }
        EXPECT_NE(got.find(want), std::string::npos) << text << "\n  got: " << got << "\n  want: " << want;
    }
}

TEST(RequestsIo, ResultLinesAreJson) {
    RequestResult r;
    r.id = "q\"1";
    r.output = {4, 5};
    r.finish = FinishReason::Stop;
    r.prompt_tokens = 3;
    EXPECT_EQ(result_line(r, nullptr, true),
              "{\"finish_reason\":\"stop\",\"id\":\"q\\\"1\",\"output_ids\":[4,5],\"prompt_tokens\":3}\n");
}

}  // namespace
}  // namespace ecf8
