// The check macros throw ecf8::Error carrying the message, the condition and the source location.
#include <gtest/gtest.h>

#include "common/error.h"

namespace {

const char* fake_describe(int code) { return code == 7 ? "seven" : "other"; }

TEST(Error, CheckThrowsWithContext) {
    try {
        int tensor_rows = 3;
        ECF8_CHECK(tensor_rows == 4, "tensor 'w' has " << tensor_rows << " rows");
        FAIL() << "no throw";
    } catch (const ecf8::Error& e) {
        std::string what = e.what();
        EXPECT_NE(what.find("tensor 'w' has 3 rows"), std::string::npos) << what;
        EXPECT_NE(what.find("tensor_rows == 4"), std::string::npos) << what;
        EXPECT_NE(what.find("test_error.cpp"), std::string::npos) << what;
    }
}

TEST(Error, CheckPassesSilently) { EXPECT_NO_THROW(ECF8_CHECK(1 + 1 == 2, "math")); }

TEST(Error, StatusCheckNamesLibraryAndCode) {
    try {
        ECF8_STATUS_CHECK("FakeLib", 7, 0, fake_describe);
        FAIL() << "no throw";
    } catch (const ecf8::Error& e) {
        std::string what = e.what();
        EXPECT_NE(what.find("FakeLib"), std::string::npos) << what;
        EXPECT_NE(what.find("seven"), std::string::npos) << what;
        EXPECT_NE(what.find("code 7"), std::string::npos) << what;
    }
}

}  // namespace
