// Requests in and results out as JSON Lines, for `ecf8 run --requests` and `ecf8 bench serve`.
//
// Input, one request per line (blank lines are skipped):
//   {"id": "r1", "prompt_ids": [1, 2, 3], "max_new_tokens": 8, "temperature": 0.0, "top_p": 1.0, "seed": 0,
//    "stop_ids": [2], "stop": ["\n\n"]}
// "prompt" (text, encoded with the model's tokenizer) or "messages" (a chat in the OpenAI shape,
// [{"role": "system" | "user" | "assistant" | "tool", "content": "..."}], rendered in the format of the
// tokenizer's chat template with the assistant's turn opened, as `ecf8 run --chat` does) may stand in for
// "prompt_ids". "stop" (a string or an array of them, matched in the output's text: runtime/stop_strings.h)
// needs the tokenizer. Every field but the prompt is optional and defaults to the command line's --max-new-tokens,
// --temperature, --top-p, --seed and the model's eos id; "id" defaults to the line number. Unknown fields, wrong types
// and bad values are errors naming the file and line. Output, one result per request, in input order:
//   {"id": "r1", "output_ids": [...], "finish_reason": "length" | "stop", "prompt_tokens": 3, "text": "..."}
// ("text" with a tokenizer only, cut before the stop string that ended the request, which "stop_string" then
// names).
#pragma once

#include <string>
#include <vector>

#include "runtime/request.h"
#include "tokenizer/tokenizer.h"

namespace ecf8 {

// What a request line leaves out.
struct RequestDefaults {
    SamplingParams params;  // max_new_tokens, temperature, top_p, seed, stop_ids
};

// Parses `text` (the file's contents; `source` names it in errors). tokenizer may be null: then a "prompt"
// or "messages" field is an error that says to pass --tokenizer.
std::vector<Request> parse_requests(const std::string& text, const std::string& source, const RequestDefaults& defaults,
                                    const text::Tokenizer* tokenizer);

// One JSON line (with its newline) per result; tokenizer may be null (no "text").
std::string result_line(const RequestResult& r, const text::Tokenizer* tokenizer, bool skip_special);

}  // namespace ecf8
