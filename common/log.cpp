// Logger implementation: one mutex-protected write per line, to stderr.
#include "common/log.h"

#include <atomic>
#include <cstdio>
#include <mutex>

#include "common/error.h"
#include "common/param.h"

namespace ecf8 {
namespace {

std::atomic<int> g_level{-1};
std::atomic<int> g_rank{-1};
std::mutex g_write_mutex;

const char* level_name(LogLevel level) {
    static const char* names[] = {"error", "warn", "info", "debug", "trace"};
    return names[static_cast<int>(level)];
}

}  // namespace

LogLevel parse_log_level(const std::string& name) {
    for (int i = 0; i <= static_cast<int>(LogLevel::Trace); ++i)
        if (name == level_name(static_cast<LogLevel>(i))) return static_cast<LogLevel>(i);
    ECF8_FAIL("ECF8_LOG_LEVEL='" << name << "' is not one of error, warn, info, debug, trace");
}

LogLevel log_level() {
    int level = g_level.load(std::memory_order_relaxed);
    if (level < 0) {
        level = static_cast<int>(parse_log_level(param_log_level()));
        g_level.store(level, std::memory_order_relaxed);
    }
    return static_cast<LogLevel>(level);
}

void set_log_level(LogLevel level) { g_level.store(static_cast<int>(level)); }

void set_log_rank(int rank, int world_size) { g_rank.store(world_size > 1 ? rank : -1); }

std::string log_prefix(LogLevel level) {
    std::string prefix;
    int rank = g_rank.load();
    if (rank >= 0) prefix += "[rank " + std::to_string(rank) + "] ";
    if (level != LogLevel::Info) prefix += std::string(level_name(level)) + ": ";
    return prefix;
}

void log_write(LogLevel level, const std::string& line) {
    std::string text = log_prefix(level) + line + "\n";
    std::lock_guard<std::mutex> lock(g_write_mutex);
    std::fwrite(text.data(), 1, text.size(), stderr);
    std::fflush(stderr);
}

}  // namespace ecf8
