// A small leveled logger. ECF8_LOG_LEVEL=error|warn|info|debug|trace selects the level (default info).
// When several ranks run, set_log_rank() makes every line start with "[rank R]".
#pragma once

#include <sstream>
#include <string>

namespace ecf8 {

enum class LogLevel { Error = 0, Warn = 1, Info = 2, Debug = 3, Trace = 4 };

LogLevel parse_log_level(const std::string& name);  // throws ecf8::Error naming ECF8_LOG_LEVEL
LogLevel log_level();                               // current level (from the environment at first use)
void set_log_level(LogLevel level);
void set_log_rank(int rank, int world_size);  // world_size > 1 turns the rank prefix on
std::string log_prefix(LogLevel level);
void log_write(LogLevel level, const std::string& line);

}  // namespace ecf8

#define ECF8_LOG(level, msg)                                                    \
    do {                                                                        \
        if (static_cast<int>(level) <= static_cast<int>(::ecf8::log_level())) { \
            std::ostringstream ecf8_log_os_;                                    \
            ecf8_log_os_ << msg;                                                \
            ::ecf8::log_write(level, ecf8_log_os_.str());                       \
        }                                                                       \
    } while (0)

#define LOG_ERROR(msg) ECF8_LOG(::ecf8::LogLevel::Error, msg)
#define LOG_WARN(msg) ECF8_LOG(::ecf8::LogLevel::Warn, msg)
#define LOG_INFO(msg) ECF8_LOG(::ecf8::LogLevel::Info, msg)
#define LOG_DEBUG(msg) ECF8_LOG(::ecf8::LogLevel::Debug, msg)
