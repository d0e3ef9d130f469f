// Log levels parse from their names, and the rank prefix appears only with several ranks.
#include <gtest/gtest.h>

#include "common/error.h"
#include "common/log.h"

TEST(Log, ParsesLevels) {
    EXPECT_EQ(ecf8::parse_log_level("debug"), ecf8::LogLevel::Debug);
    EXPECT_EQ(ecf8::parse_log_level("error"), ecf8::LogLevel::Error);
    EXPECT_THROW(ecf8::parse_log_level("loud"), ecf8::Error);
}

TEST(Log, RankPrefixOnlyWithSeveralRanks) {
    ecf8::set_log_rank(3, 1);
    EXPECT_EQ(ecf8::log_prefix(ecf8::LogLevel::Info), "");
    ecf8::set_log_rank(3, 4);
    EXPECT_EQ(ecf8::log_prefix(ecf8::LogLevel::Info), "[rank 3] ");
    EXPECT_EQ(ecf8::log_prefix(ecf8::LogLevel::Warn), "[rank 3] warn: ");
    ecf8::set_log_rank(0, 1);
}

TEST(Log, LevelFiltersMessages) {
    ecf8::set_log_level(ecf8::LogLevel::Error);
    EXPECT_EQ(ecf8::log_level(), ecf8::LogLevel::Error);
    testing::internal::CaptureStderr();
    LOG_INFO("hidden line");
    LOG_ERROR("shown line");
    std::string err = testing::internal::GetCapturedStderr();
    EXPECT_EQ(err.find("hidden line"), std::string::npos);
    EXPECT_NE(err.find("shown line"), std::string::npos);
    ecf8::set_log_level(ecf8::LogLevel::Info);
}
