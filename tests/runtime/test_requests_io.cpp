// The request file of `ecf8 run --requests` (runtime/requests_io.h): fields, defaults, text and chat prompts,
// stop strings and their matching (runtime/stop_strings.h), and errors that name the file, the line and the
// field.
#include <gtest/gtest.h>

#include <string>

#include "common/error.h"
#include "runtime/requests_io.h"
#include "runtime/stop_strings.h"
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

std::string error_of(const std::string& text, const text::Tokenizer* tokenizer = nullptr) {
    try {
        parse_requests(text, "reqs.jsonl", defaults(), tokenizer);
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}

// Each file's error holds the expected words.
template <size_t N>
void expect_errors(const std::pair<std::string, std::string> (&cases)[N], const text::Tokenizer* tokenizer = nullptr) {
    for (const auto& [text, want] : cases) {
        const std::string got = error_of(text, tokenizer);
        EXPECT_NE(got.find(want), std::string::npos) << text << "\n  got: " << got << "\n  want: " << want;
    }
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
    expect_errors(cases);
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

TEST(RequestsIo, StopStrings) {
    const text::Tokenizer& tok = synth_tokenizer();
    const auto rs =
        parse_requests("{\"prompt_ids\": [1], \"stop\": \"\\n\"}\n{\"prompt_ids\": [1], \"stop\": [\"ab\", \"c d\"]}",
                       "reqs.jsonl", defaults(), &tok);
    ASSERT_EQ(rs.size(), 2u);
    EXPECT_EQ(rs[0].params.stop, std::vector<std::string>{"\n"});
    EXPECT_EQ(rs[1].params.stop, (std::vector<std::string>{"ab", "c d"}));
    std::string many;  // 33 stop strings, one over the limit
    for (int i = 0; i < 33; ++i) many += (i ? ", " : "") + std::string("\"x\"");
    const std::pair<std::string, std::string> cases[] = {
        {"{\"prompt_ids\": [1], \"stop\": 5}", "reqs.jsonl:1: \"stop\" must be a string or an array of strings"},
        {"{\"prompt_ids\": [1], \"stop\": [\"a\", 5]}", "reqs.jsonl:1: \"stop\" holds 5, not a string"},
        {"{\"prompt_ids\": [1], \"stop\": [\"\"]}", "request '1': stop: each string must hold 1 to 1024 bytes"},
        {"{\"prompt_ids\": [1], \"stop\": [" + many + "]}", "stop: at most 32 strings"},
    };
    expect_errors(cases, &tok);
    EXPECT_NE(error_of("{\"prompt_ids\": [1], \"stop\": \"x\"}").find("need the model's tokenizer.json"),
              std::string::npos);
}

// The matcher finds a stop string when the token that completes it arrives, also across tokens, and the
// result's text stops before it.
TEST(RequestsIo, StopStringsAreMatchedInTheStreamedText) {
    const text::Tokenizer& tok = synth_tokenizer();
    const std::string text = "Hello there, general Kenobi. Hello again.";
    const std::vector<int32_t> ids = tok.encode(text, false);
    ASSERT_GT(ids.size(), 4u);
    for (const std::string stop : {"general K", "o again", "Kenobi. H", "."}) {
        StopStringMatcher m(tok, true, {"not in it", stop});
        RequestResult r;
        for (int32_t id : ids) {
            r.output.push_back(id);
            if (const std::string* s = m.push(id)) {
                r.stop_string = *s;
                break;
            }
        }
        ASSERT_EQ(r.stop_string, stop);
        // Stopped at the first token whose text completes the string: one token fewer does not hold it.
        const std::vector<int32_t> before(r.output.begin(), r.output.end() - 1);
        EXPECT_EQ(tok.decode(before, true).find(stop), std::string::npos) << stop;
        EXPECT_NE(tok.decode(r.output, true).find(stop), std::string::npos) << stop;
        EXPECT_EQ(result_text(r, tok, true), text.substr(0, text.find(stop))) << stop;
    }
    // Of two strings completed by the same token, the one that starts first ends the text ("Hel" is complete
    // no later than "lo", however "Hello" is split).
    StopStringMatcher m(tok, true, {"lo", "Hel"});
    const std::string* hit = nullptr;
    for (size_t i = 0; i < ids.size() && hit == nullptr; ++i) hit = m.push(ids[i]);
    ASSERT_NE(hit, nullptr);
    EXPECT_EQ(*hit, "Hel");
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
    expect_errors(cases, &tok);
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
