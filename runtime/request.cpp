// Requests: their sampling parameters' checks and the names of finish reasons.
#include "runtime/request.h"

#include "common/error.h"

namespace ecf8 {

void SamplingParams::validate() const {
    ECF8_CHECK(max_new_tokens >= 1, "max_new_tokens must be >= 1, got " << max_new_tokens);
    ECF8_CHECK(top_p > 0.0f && top_p <= 1.0f, "top_p must be in (0, 1], got " << top_p);
    ECF8_CHECK(temperature >= 0.0f, "temperature must be >= 0, got " << temperature);
    ECF8_CHECK(stop.size() <= kMaxStopStrings, "stop: at most " << kMaxStopStrings << " strings, got " << stop.size());
    for (const std::string& s : stop)
        ECF8_CHECK(!s.empty() && s.size() <= kMaxStopStringBytes,
                   "stop: each string must hold 1 to " << kMaxStopStringBytes << " bytes, got " << s.size());
}

const char* finish_reason_name(FinishReason r) {
    return r == FinishReason::Stop ? "stop" : r == FinishReason::Length ? "length" : "none";
}

}  // namespace ecf8
