// Test driver for the synthetic tokenizer, for the comparison with Hugging Face `tokenizers`:
//   synth_tokenizer_cli write DIR VOCAB_SIZE      trains and writes DIR/tokenizer.json + tokenizer_config.json
//   synth_tokenizer_cli sample                    prints the embedded training sample
//   synth_tokenizer_cli encode DIR TEXTS.json     prints the ids of each text of a JSON array (no bos / eos)
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <nlohmann/json.hpp>
#include <string>

#include "common/file_util.h"
#include "tokenizer/synth_sample.h"
#include "tokenizer/synth_tokenizer.h"
#include "tokenizer/tokenizer.h"

namespace {

constexpr const char* kUsage = "usage: synth_tokenizer_cli write DIR VOCAB_SIZE | sample | encode DIR TEXTS.json";

int write(const std::string& dir, int vocab_size) {
    const auto start = std::chrono::steady_clock::now();
    const int merges = ecf8::text::write_synth_tokenizer(dir, vocab_size);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("synth tokenizer: vocab_size %d, %d merges learned, %.2f s\n", vocab_size, merges, secs);
    return 0;
}

int encode(const std::string& dir, const std::string& texts_path) {
    const auto tokenizer = ecf8::text::Tokenizer::load(dir);
    const nlohmann::json texts = nlohmann::json::parse(ecf8::read_file(texts_path));
    nlohmann::json ids = nlohmann::json::array();
    for (const nlohmann::json& text : texts) ids.push_back(tokenizer.encode(text.get<std::string>(), false));
    std::printf("%s\n", ids.dump().c_str());
    return 0;
}

int run(int argc, char** argv) {
    const std::string command = argc > 1 ? argv[1] : "";
    if (command == "write" && argc == 4) return write(argv[2], std::atoi(argv[3]));
    if (command == "encode" && argc == 4) return encode(argv[2], argv[3]);
    if (command == "sample" && argc == 2) {
        const std::string_view sample = ecf8::text::synth_sample_text();
        std::fwrite(sample.data(), 1, sample.size(), stdout);
        return 0;
    }
    std::fprintf(stderr, "%s\n", kUsage);
    return 2;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "synth_tokenizer_cli: %s\n", e.what());
        return 1;
    }
}
