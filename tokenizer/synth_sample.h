// The embedded text sample that the synthetic models' tokenizer is trained on (synth_tokenizer.h).
#pragma once

#include <string_view>

namespace ecf8::text {

// About 34 KB of UTF-8: English prose, Chinese and other scripts, code and numbers.
std::string_view synth_sample_text();

}  // namespace ecf8::text
