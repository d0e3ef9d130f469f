// ProgressBar drawing: "label [#####.....]  45%  1.2 GiB/2.6 GiB  310 MiB/s".
#include "common/progress.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>

namespace ecf8 {

std::string format_bytes(double bytes) {
    static const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (bytes >= 1024.0 && u < 4) {
        bytes /= 1024.0;
        ++u;
    }
    char buf[32];
    std::snprintf(buf, sizeof(buf), u == 0 ? "%.0f %s" : "%.1f %s", bytes, units[u]);
    return buf;
}

bool ProgressBar::enabled_for_stderr() { return isatty(STDERR_FILENO) && std::getenv("CI") == nullptr; }

ProgressBar::ProgressBar(std::string label, uint64_t total, std::string unit, bool show)
    : label_(std::move(label)), unit_(std::move(unit)), total_(total), enabled_(show && enabled_for_stderr()) {
    start_ = last_draw_ = std::chrono::steady_clock::now();
}

ProgressBar::~ProgressBar() { finish(); }

void ProgressBar::advance(uint64_t units) {
    done_.fetch_add(units, std::memory_order_relaxed);
    if (!enabled_) return;
    auto now = std::chrono::steady_clock::now();
    std::unique_lock<std::mutex> lock(draw_mutex_, std::try_to_lock);
    if (!lock.owns_lock() || now - last_draw_ < std::chrono::milliseconds(100)) return;
    last_draw_ = now;
    draw(false);
}

void ProgressBar::finish() {
    std::lock_guard<std::mutex> lock(draw_mutex_);
    if (finished_) return;
    finished_ = true;
    if (enabled_) draw(true);
}

void ProgressBar::draw(bool final_line) {
    const int width = 30;
    uint64_t done = done_.load();
    double frac = total_ ? static_cast<double>(done) / static_cast<double>(total_) : 1.0;
    if (frac > 1.0) frac = 1.0;
    int filled = static_cast<int>(frac * width);
    std::string bar(filled, '#');
    bar += std::string(width - filled, '.');
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    double rate = secs > 0 ? static_cast<double>(done) / secs : 0.0;
    std::string amount = unit_ == "B" ? format_bytes(static_cast<double>(done)) + "/" +
                                            format_bytes(static_cast<double>(total_)) + "  " + format_bytes(rate) + "/s"
                                      : std::to_string(done) + "/" + std::to_string(total_) + " " + unit_;
    std::fprintf(stderr, "\r%s [%s] %3d%%  %s%s", label_.c_str(), bar.c_str(), static_cast<int>(frac * 100),
                 amount.c_str(), final_line ? "\n" : "");
    std::fflush(stderr);
}

}  // namespace ecf8
