// Test driver: renders conversations with ecf8's native chat formats, for the comparison with transformers.
//   render_chat_cli CONVERSATIONS.json
// reads [{"name", "add_generation_prompt", "messages": [...]}] and prints [{"name", "text"}] as JSON.
// The template file given with --template picks the format (as a model's tokenizer_config.json would).
#include <cstdio>
#include <exception>
#include <nlohmann/json.hpp>
#include <string>

#include "common/error.h"
#include "common/file_util.h"
#include "tokenizer/chat_format.h"

namespace {

constexpr const char* kUsage = "usage: render_chat_cli --template TEMPLATE.jinja CONVERSATIONS.json";
constexpr const char* kBos = "<｜begin▁of▁sentence｜>";

nlohmann::json render_all(const std::string& template_path, const std::string& conversations_path) {
    using namespace ecf8::text;
    const ChatFormat format = chat_format_for_template(ecf8::read_file(template_path), template_path);
    const nlohmann::json conversations = nlohmann::json::parse(ecf8::read_file(conversations_path));
    ECF8_CHECK(conversations.is_array(), conversations_path << ": expected an array of conversations");
    nlohmann::json rendered = nlohmann::json::array();
    for (const nlohmann::json& conversation : conversations) {
        const std::string name = conversation.at("name").get<std::string>();
        const std::vector<ChatMessage> messages =
            chat_messages_from_json(conversation.at("messages"), conversations_path + " (" + name + ")");
        const bool add_generation_prompt = conversation.at("add_generation_prompt").get<bool>();
        rendered.push_back({{"name", name}, {"text", render_chat(format, messages, {kBos}, add_generation_prompt)}});
    }
    return rendered;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 4 || std::string(argv[1]) != "--template") {
        std::fprintf(stderr, "%s\n", kUsage);
        return 2;
    }
    try {
        std::printf("%s\n", render_all(argv[2], argv[3]).dump(1).c_str());
    } catch (const std::exception& e) {
        std::fprintf(stderr, "render_chat_cli: %s\n", e.what());
        return 1;
    }
    return 0;
}
