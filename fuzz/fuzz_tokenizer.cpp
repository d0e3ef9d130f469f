// libFuzzer target for the tokenizer. The first byte picks what the rest is:
//   even: text, encoded with the synthetic tokenizer (DeepSeek's pre-tokenizer and special tokens), then
//         decoded whole and streamed; valid UTF-8 must come back unchanged and the stream must equal decode;
//   odd:  a tokenizer.json, loaded and, when accepted, used to encode and decode a fixed mixed text.
// Every problem must surface as an ecf8::Error; any other exception, crash, hang or bad access is a bug.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "common/error.h"
#include "fuzz/synth_tokenizer_once.h"
#include "tokenizer/detokenizer.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace {

void round_trip(const ecf8::text::Tokenizer& tok, const std::string& text) {
    const std::vector<int32_t> ids = tok.encode(text, false);
    const std::string back = tok.decode(ids, false);
    if (ecf8::text::is_valid_utf8(text) && back != text) std::abort();  // lossless on valid text
    if (!ecf8::text::is_valid_utf8(back)) std::abort();                 // decode always gives UTF-8
    ecf8::text::StreamingDetokenizer stream(tok, false);
    std::string streamed;
    for (int32_t id : ids) streamed += stream.push(id);
    streamed += stream.finish();
    if (streamed != back) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1) return 0;
    const std::string rest(reinterpret_cast<const char*>(data) + 1, size - 1);
    try {
        if (data[0] % 2 == 0) {
            round_trip(ecf8::fuzz::synth_tokenizer(), rest);
        } else {
            const ecf8::text::Tokenizer tok = ecf8::text::Tokenizer::from_json(rest, "", "fuzz.json");
            (void)tok.decode(tok.encode("Hello, 世界! 12345 <｜User｜> \xF0\x9F\x99\x82", true), true);
        }
    } catch (const ecf8::Error&) {
        // Rejected with a message: the expected outcome for bad input.
    }
    return 0;
}
