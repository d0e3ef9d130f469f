// A terminal progress bar for long work. It draws only when stderr is a terminal (and not under CI),
// redraws at most ten times a second and is safe to advance from several threads.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

namespace ecf8 {

class ProgressBar {
public:
    // total: units of work (bytes, tensors); unit: shown after the rate, e.g. "B" for bytes.
    // show = false never draws (a caller's --quiet or progress option).
    ProgressBar(std::string label, uint64_t total, std::string unit = "B", bool show = true);
    ~ProgressBar();
    void advance(uint64_t units);
    void finish();
    static bool enabled_for_stderr();

private:
    void draw(bool final_line);
    std::string label_, unit_;
    uint64_t total_;
    std::atomic<uint64_t> done_{0};
    bool enabled_, finished_ = false;
    std::chrono::steady_clock::time_point start_, last_draw_;
    std::mutex draw_mutex_;
};

// Formats a byte count as "12.3 MiB".
std::string format_bytes(double bytes);

}  // namespace ecf8
