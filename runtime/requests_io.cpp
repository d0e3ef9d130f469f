// JSON Lines requests and results.
#include "runtime/requests_io.h"

#include <climits>
#include <cmath>
#include <nlohmann/json.hpp>
#include <set>

#include "common/error.h"
#include "runtime/stop_strings.h"
#include "tokenizer/chat_format.h"

namespace ecf8 {
namespace {

using Json = nlohmann::json;

const std::set<std::string> kFields = {"id",          "prompt_ids", "prompt", "messages", "max_new_tokens",
                                       "temperature", "top_p",      "seed",   "stop_ids", "stop"};

std::vector<int32_t> token_ids(const Json& v, const std::string& where, const char* field) {
    ECF8_CHECK(v.is_array(), where << ": \"" << field << "\" must be an array of token ids");
    std::vector<int32_t> ids;
    for (const Json& t : v) {
        ECF8_CHECK(t.is_number_integer() && t.get<int64_t>() >= 0 && t.get<int64_t>() <= INT32_MAX,
                   where << ": \"" << field << "\" holds " << t.dump() << ", not a token id");
        ids.push_back(static_cast<int32_t>(t.get<int64_t>()));
    }
    return ids;
}

// The prompt's ids from exactly one of "prompt_ids", "prompt" (text) and "messages" (a chat, rendered in the
// format of the tokenizer's chat template with the assistant's turn opened, as ecf8 run --chat does).
std::vector<int32_t> prompt_of(const Json& j, const std::string& where, const text::Tokenizer* tokenizer) {
    const int given = int(j.contains("prompt_ids")) + int(j.contains("prompt")) + int(j.contains("messages"));
    ECF8_CHECK(given == 1, where << ": give exactly one of \"prompt_ids\", \"prompt\" and \"messages\"");
    if (j.contains("prompt_ids")) return token_ids(j["prompt_ids"], where, "prompt_ids");
    const char* field = j.contains("prompt") ? "prompt" : "messages";
    ECF8_CHECK(tokenizer != nullptr,
               where << ": \"" << field << "\" is text and needs the model's tokenizer.json (--tokenizer)");
    if (j.contains("prompt")) {
        ECF8_CHECK(j["prompt"].is_string(), where << ": \"prompt\" must be a string");
        return tokenizer->encode(j["prompt"].get<std::string>());
    }
    const std::vector<text::ChatMessage> messages = text::chat_messages_from_json(j["messages"], where);
    ECF8_CHECK(!messages.empty(), where << ": \"messages\" is empty; give at least one message");
    try {
        return text::encode_chat(*tokenizer, messages, "the tokenizer's tokenizer_config.json");
    } catch (const Error& e) {  // an unknown chat template, or a message its format cannot render
        ECF8_FAIL(where << ": " << e.what());
    }
}

// "stop": a string or an array of strings, as OpenAI's API takes it.
std::vector<std::string> stop_strings(const Json& v, const std::string& where, const text::Tokenizer* tokenizer) {
    ECF8_CHECK(tokenizer != nullptr, where << ": \"stop\" strings are matched in the output's text and need the "
                                              "model's tokenizer.json (--tokenizer)");
    ECF8_CHECK(v.is_string() || v.is_array(), where << ": \"stop\" must be a string or an array of strings");
    std::vector<std::string> out;
    for (const Json& s : v.is_string() ? Json::array({v}) : v) {
        ECF8_CHECK(s.is_string(), where << ": \"stop\" holds " << s.dump() << ", not a string");
        out.push_back(s.get<std::string>());
    }
    return out;
}

Request parse_line(const Json& j, const std::string& where, size_t line, const RequestDefaults& defaults,
                   const text::Tokenizer* tokenizer) {
    ECF8_CHECK(j.is_object(), where << ": a request is a JSON object, got " << j.type_name());
    for (const auto& [key, value] : j.items())
        ECF8_CHECK(kFields.count(key), where << ": unknown field \"" << key
                                             << "\" (allowed: id, prompt_ids, prompt, messages, max_new_tokens, "
                                                "temperature, top_p, seed, stop_ids, stop)");
    Request r;
    r.params = defaults.params;
    r.id = std::to_string(line);
    if (j.contains("id")) {
        const Json& id = j["id"];
        ECF8_CHECK(id.is_string() || id.is_number_integer(), where << ": \"id\" must be a string or an integer");
        r.id = id.is_string() ? id.get<std::string>() : std::to_string(id.get<int64_t>());
    }
    r.prompt = prompt_of(j, where, tokenizer);
    if (j.contains("max_new_tokens")) {
        const Json& v = j["max_new_tokens"];
        ECF8_CHECK(v.is_number_integer() && v.get<int64_t>() >= 1 && v.get<int64_t>() <= INT32_MAX,
                   where << ": \"max_new_tokens\" must be an integer in [1, " << INT32_MAX << "], got " << v.dump());
        r.params.max_new_tokens = static_cast<int>(v.get<int64_t>());
    }
    auto real = [&](const char* key, float* out) {
        if (!j.contains(key)) return;
        const Json& v = j[key];
        // A double beyond float's range would become infinity (and converting it is undefined behaviour).
        ECF8_CHECK(v.is_number() && std::fabs(v.get<double>()) <= 1e30,
                   where << ": \"" << key << "\" must be a number within float's range, got " << v.dump());
        *out = static_cast<float>(v.get<double>());
    };
    real("temperature", &r.params.temperature);
    real("top_p", &r.params.top_p);
    if (j.contains("seed")) {
        ECF8_CHECK(j["seed"].is_number_unsigned(),  // the parser types every non-negative integer unsigned
                   where << ": \"seed\" must be a non-negative integer");
        r.params.seed = j["seed"].get<uint64_t>();
    }
    if (j.contains("stop_ids")) r.params.stop_ids = token_ids(j["stop_ids"], where, "stop_ids");
    if (j.contains("stop")) r.params.stop = stop_strings(j["stop"], where, tokenizer);
    try {
        r.params.validate();
    } catch (const Error& e) {
        ECF8_FAIL(where << ": request '" << r.id << "': " << e.what());
    }
    return r;
}

}  // namespace

std::vector<Request> parse_requests(const std::string& text, const std::string& source, const RequestDefaults& defaults,
                                    const text::Tokenizer* tokenizer) {
    std::vector<Request> out;
    std::set<std::string> ids;
    size_t line = 0, at = 0;
    while (at < text.size()) {
        const size_t end = std::min(text.find('\n', at), text.size());
        const std::string body = text.substr(at, end - at);
        at = end + 1;
        ++line;
        if (body.find_first_not_of(" \t\r") == std::string::npos) continue;
        const std::string where = source + ":" + std::to_string(line);
        Json j;
        try {
            j = Json::parse(body);
        } catch (const Json::exception& e) {
            ECF8_FAIL(where << ": not JSON: " << e.what());
        }
        out.push_back(parse_line(j, where, line, defaults, tokenizer));
        ECF8_CHECK(ids.insert(out.back().id).second, where << ": request id '" << out.back().id << "' is repeated");
    }
    ECF8_CHECK(!out.empty(), source << ": no requests (one JSON object per line)");
    return out;
}

std::string result_line(const RequestResult& r, const text::Tokenizer* tokenizer, bool skip_special) {
    Json j;
    j["id"] = r.id;
    j["output_ids"] = r.output;
    j["finish_reason"] = finish_reason_name(r.finish);
    j["prompt_tokens"] = r.prompt_tokens;
    if (tokenizer != nullptr) j["text"] = result_text(r, *tokenizer, skip_special);
    if (!r.stop_string.empty()) j["stop_string"] = r.stop_string;
    return j.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
}

}  // namespace ecf8
