// The request file of `ecf8 run --requests` (runtime/requests_io.h): fields, defaults, and errors that name
// the file, the line and the field.
#include <gtest/gtest.h>

#include <string>

#include "common/error.h"
#include "runtime/requests_io.h"

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
        {"{\"prompt_ids\": [1], \"prompt\": \"hi\"}", "exactly one of \"prompt_ids\" and \"prompt\""},
        {"{\"prompt\": \"hi\"}", "needs the model's tokenizer.json"},
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
