// Shared helpers of the corruption tests: error expectations on ecf8::Error messages.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "common/error.h"

namespace ecf8::test {

using Bytes = std::vector<uint8_t>;

inline bool contains(const std::string& haystack, const std::string& needle) {
    return haystack.find(needle) != std::string::npos;
}

// Runs fn, expecting an ecf8::Error whose message contains every string of `needles`. Returns the message.
inline std::string expect_error(const std::function<void()>& fn, const std::vector<std::string>& needles) {
    try {
        fn();
    } catch (const Error& e) {
        std::string what = e.what();
        for (const auto& n : needles) EXPECT_TRUE(contains(what, n)) << "'" << n << "' not in: " << what;
        return what;
    }
    ADD_FAILURE() << "no ecf8::Error thrown; expected one mentioning '" << needles.front() << "'";
    return {};
}

}  // namespace ecf8::test
