// `ecf8 tokenize` and `ecf8 detokenize`: a model's tokenizer (tokenizer.json + tokenizer_config.json) on
// the command line, for building --prompt-ids and reading generated ids.
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

#include "common/error.h"
#include "launcher/args.h"
#include "launcher/commands.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace ecf8 {
namespace {

constexpr const char* kTokenizeUsage = "ecf8 tokenize --tokenizer DIR [--json] [--pieces] [--no-special] TEXT|-";
constexpr const char* kDetokenizeUsage = "ecf8 detokenize --tokenizer DIR [--skip-special] IDS|-";

std::string read_stdin() {
    std::string all((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
    ECF8_CHECK(!std::cin.bad(), "could not read standard input");
    return all;
}

// `-` is standard input, read whole; anything else is the text itself.
std::string text_argument(const Args& args, const char* usage) {
    args.expect_positional(1, usage);
    const std::string& arg = args.positional()[0];
    return arg == "-" ? read_stdin() : arg;
}

text::Tokenizer tokenizer_from(const Args& args, const char* usage) {
    ECF8_CHECK(args.has("tokenizer"),
               "--tokenizer DIR is required (a directory with tokenizer.json)\nusage: " << usage);
    return text::Tokenizer::load(args.get("tokenizer", ""));
}

// Ids separated by commas or white space, optionally inside [ ] (so a JSON array or --prompt-ids works).
std::vector<int32_t> parse_id_list(const std::string& text) {
    std::vector<int32_t> ids;
    size_t i = 0;
    const auto is_sep = [](char c) { return c == ',' || c == '[' || c == ']' || std::isspace((unsigned char)c); };
    while (i < text.size()) {
        if (is_sep(text[i])) {
            ++i;
            continue;
        }
        size_t end = i;
        while (end < text.size() && !is_sep(text[end])) ++end;
        const std::string item = text.substr(i, end - i);
        char* stop = nullptr;
        const long long v = std::strtoll(item.c_str(), &stop, 10);
        ECF8_CHECK(stop && *stop == '\0' && v >= 0 && v <= INT32_MAX,
                   "'" << item << "' is not a token id (expected ids such as 1,2,3 or [1, 2, 3])");
        ids.push_back(static_cast<int32_t>(v));
        i = end;
    }
    return ids;
}

// A token's text for --pieces: whole UTF-8 characters as they are; control bytes, quotes and the bytes of a
// character that the token holds only part of, escaped.
std::string quoted(const std::string& bytes) {
    std::string out = "'";
    for (size_t i = 0; i < bytes.size();) {
        const unsigned char c = static_cast<unsigned char>(bytes[i]);
        const text::Utf8Step step = text::utf8_step(std::string_view(bytes).substr(i));
        if (c >= 0x80 && step.valid) {
            out.append(bytes, i, step.length);
            i += step.length;
            continue;
        }
        if (c == '\n')
            out += "\\n";
        else if (c == '\t')
            out += "\\t";
        else if (c == '\r')
            out += "\\r";
        else if (c == '\'' || c == '\\')
            out += '\\', out += char(c);
        else if (c < 0x20 || c >= 0x7f) {
            char hex[8];
            std::snprintf(hex, sizeof(hex), "\\x%02x", c);
            out += hex;
        } else
            out += char(c);
        ++i;
    }
    return out + "'";
}

}  // namespace

int cmd_tokenize(const CommandArgs& argv) {
    Args args(argv, {"tokenizer"}, {"json", "pieces", "no-special"}, "tokenize");
    const std::string input = text_argument(args, kTokenizeUsage);
    const text::Tokenizer tok = tokenizer_from(args, kTokenizeUsage);
    const std::vector<int32_t> ids = tok.encode(input, !args.has("no-special"));
    if (args.has("pieces")) {
        for (int32_t id : ids) std::printf("%8d %s\n", id, quoted(tok.token_bytes(id)).c_str());
        return 0;
    }
    const char* sep = args.has("json") ? ", " : ",";
    std::string line = args.has("json") ? "[" : "";
    for (size_t i = 0; i < ids.size(); ++i) line += (i ? sep : "") + std::to_string(ids[i]);
    if (args.has("json")) line += "]";
    std::printf("%s\n", line.c_str());
    return 0;
}

int cmd_detokenize(const CommandArgs& argv) {
    Args args(argv, {"tokenizer"}, {"skip-special"}, "detokenize");
    const std::vector<int32_t> ids = parse_id_list(text_argument(args, kDetokenizeUsage));
    const text::Tokenizer tok = tokenizer_from(args, kDetokenizeUsage);
    const std::string out = tok.decode(ids, args.has("skip-special"));
    std::fwrite(out.data(), 1, out.size(), stdout);
    std::fputc('\n', stdout);
    return 0;
}

}  // namespace ecf8
