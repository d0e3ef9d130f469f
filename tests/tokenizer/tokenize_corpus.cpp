// Driver for the Hugging Face comparison (compare_hf.py) and the speed benchmark (bench/tokenizer_speed.py).
//   tokenize_corpus DIR CORPUS OUT   CORPUS: one string per line, as hex of its bytes. OUT gets per string
//                                    one line of four tab-separated fields: the ids without and with special
//                                    tokens (space-separated), then hex of decode(ids) and of
//                                    decode(ids, skip_special_tokens=true).
//   tokenize_corpus --bench DIR TEXT [ROUNDS [CHUNK]]   encodes the file TEXT on this thread ROUNDS times (3),
//                                    whole or (CHUNK > 0) in pieces cut at the first newline after every CHUNK
//                                    bytes, and prints the best round's MB/s and the id count.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/file_util.h"
#include "tokenizer/tokenizer.h"

namespace {

std::string from_hex(const std::string& hex) {
    ECF8_CHECK(hex.size() % 2 == 0, "odd-length hex line");
    std::string out(hex.size() / 2, '\0');
    for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<char>(std::stoi(hex.substr(2 * i, 2), nullptr, 16));
    return out;
}

std::string to_hex(const std::string& bytes) {
    static const char* digits = "0123456789abcdef";
    std::string out;
    out.reserve(bytes.size() * 2);
    for (const char c : bytes) {
        out += digits[static_cast<unsigned char>(c) >> 4];
        out += digits[static_cast<unsigned char>(c) & 15];
    }
    return out;
}

void write_ids(std::ostream& out, const std::vector<int32_t>& ids) {
    for (size_t i = 0; i < ids.size(); ++i) out << (i ? " " : "") << ids[i];
}

int run_corpus(const std::string& dir, const std::string& corpus, const std::string& output) {
    const auto tokenizer = ecf8::text::Tokenizer::load(dir);
    std::ifstream in(corpus);
    ECF8_CHECK(in, corpus << ": cannot open");
    std::ofstream out(output);
    std::string line;
    while (std::getline(in, line)) {
        const std::string text = from_hex(line);
        const auto plain = tokenizer.encode(text, false);
        const auto special = tokenizer.encode(text, true);
        write_ids(out, plain);
        out << '\t';
        write_ids(out, special);
        out << '\t' << to_hex(tokenizer.decode(plain)) << '\t' << to_hex(tokenizer.decode(plain, true)) << '\n';
    }
    ECF8_CHECK(out.good(), output << ": write failed");
    return 0;
}

// The text in pieces that end at the first newline after every `chunk` bytes (one piece when chunk is 0).
std::vector<std::string_view> cut(std::string_view text, size_t chunk) {
    std::vector<std::string_view> pieces;
    while (!text.empty()) {
        size_t end = chunk == 0 ? std::string_view::npos : text.find('\n', std::min(chunk, text.size() - 1));
        end = end == std::string_view::npos ? text.size() : end + 1;
        pieces.push_back(text.substr(0, end));
        text.remove_prefix(end);
    }
    return pieces;
}

int run_bench(const std::string& dir, const std::string& text_path, int rounds, size_t chunk) {
    const auto tokenizer = ecf8::text::Tokenizer::load(dir);
    const std::string text = ecf8::read_file(text_path);
    const auto pieces = cut(text, chunk);
    double best = 1e30;
    size_t count = 0;
    for (int r = 0; r < rounds; ++r) {
        const auto start = std::chrono::steady_clock::now();
        count = 0;
        for (const auto piece : pieces) count += tokenizer.encode(piece, false).size();
        best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    std::printf("ecf8 encode: %.2f MB in %.3f s = %.2f MB/s, %zu ids\n", text.size() / 1e6, best,
                text.size() / 1e6 / best, count);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        const std::vector<std::string> args(argv + 1, argv + argc);
        if (args.size() >= 3 && args[0] == "--bench") {
            return run_bench(args[1], args[2], args.size() > 3 ? std::stoi(args[3]) : 3,
                             args.size() > 4 ? std::stoul(args[4]) : 0);
        }
        if (args.size() == 3) return run_corpus(args[0], args[1], args[2]);
        std::cerr << "usage: tokenize_corpus DIR CORPUS OUT | tokenize_corpus --bench DIR TEXT [ROUNDS [CHUNK]]\n";
        return 2;
    } catch (const std::exception& e) {
        std::cerr << "tokenize_corpus: " << e.what() << "\n";
        return 1;
    }
}
