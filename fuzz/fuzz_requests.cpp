// libFuzzer target for the request file of `ecf8 run --requests` and `ecf8 bench serve` (JSON Lines,
// runtime/requests_io.h). The first byte picks whether a tokenizer is present (text "prompt" and chat
// "messages" fields are then rendered and encoded with the synthetic tokenizer); the rest is the file. Every accepted request must hold valid sampling
// parameters, and its result line must be one JSON object whose "id" reads back as the request's id. Every
// problem must surface as an ecf8::Error; any other exception, crash, hang or bad access is a bug.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/error.h"
#include "fuzz/synth_tokenizer_once.h"
#include "runtime/requests_io.h"
#include "tokenizer/tokenizer.h"

namespace {

void check_result_line(const ecf8::Request& r, const ecf8::text::Tokenizer* tok) {
    ecf8::RequestResult res;
    res.id = r.id;
    res.output = r.prompt;  // any ids: decode must cope with ids outside the vocabulary as an ecf8::Error
    res.finish = r.params.stop.empty() ? ecf8::FinishReason::Length : ecf8::FinishReason::Stop;
    if (!r.params.stop.empty()) res.stop_string = r.params.stop.back();  // the text is cut before it, if present
    res.prompt_tokens = static_cast<int64_t>(r.prompt.size());
    std::string line;
    try {
        line = ecf8::result_line(res, tok, true);
    } catch (const ecf8::Error&) {
        return;
    }
    if (line.empty() || line.back() != '\n') std::abort();
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object() || !j["id"].is_string() || j["id"].get<std::string>() != r.id) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1) return 0;
    const std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
    const ecf8::text::Tokenizer* tok = data[0] % 2 == 0 ? nullptr : &ecf8::fuzz::synth_tokenizer();
    ecf8::RequestDefaults defaults;
    defaults.params.max_new_tokens = 8;
    std::vector<ecf8::Request> requests;
    try {
        requests = ecf8::parse_requests(text, "fuzz.jsonl", defaults, tok);
    } catch (const ecf8::Error&) {
        return 0;  // rejected with a message: the expected outcome for bad input
    }
    for (const ecf8::Request& r : requests) {
        try {
            r.params.validate();
        } catch (const ecf8::Error&) {
            std::abort();  // parse_requests accepted parameters that are not valid
        }
        check_result_line(r, tok);
    }
    return 0;
}
