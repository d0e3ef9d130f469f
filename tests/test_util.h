// Helpers shared by the unit tests: a self-removing temporary directory and the message of an expected error.
#pragma once

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>

#include "common/error.h"

namespace ecf8::test {

// A fresh directory under the system temp dir, removed with the object.
class TempDir {
public:
    explicit TempDir(const std::string& tag) {
        const auto now = std::chrono::steady_clock::now().time_since_epoch().count();
        path_ = std::filesystem::temp_directory_path() /
                ("ecf8-test-" + tag + "-" + std::to_string(::getpid()) + "-" + std::to_string(now));
        std::filesystem::create_directories(path_);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    const std::filesystem::path& path() const { return path_; }
    std::string str() const { return path_.string(); }
    std::string file(const std::string& name) const { return (path_ / name).string(); }

private:
    std::filesystem::path path_;
};

// The message of the ecf8::Error thrown by f, or "" when none is thrown.
template <typename F>
std::string error_of(F&& f) {
    try {
        f();
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}

}  // namespace ecf8::test
