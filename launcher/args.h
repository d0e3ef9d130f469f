// A small command-line parser: positional arguments and --flags, with clear errors for unknown flags.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

namespace ecf8 {

class Args {
public:
    // value_flags take a value (--threads 4 or --threads=4); switch_flags take none (--json).
    Args(const std::vector<std::string>& argv, const std::set<std::string>& value_flags,
         const std::set<std::string>& switch_flags, const std::string& command);

    const std::vector<std::string>& positional() const { return positional_; }
    bool has(const std::string& flag) const;
    std::string get(const std::string& flag, const std::string& fallback) const;
    int get_int(const std::string& flag, int fallback) const;
    double get_double(const std::string& flag, double fallback) const;
    // --threads N: an integer >= 0 (0 = every core), else an error naming --threads.
    int get_threads(int fallback) const;
    // Exactly n positional arguments, else an error quoting `usage`.
    void expect_positional(size_t n, const std::string& usage) const;

private:
    std::string command_;
    std::vector<std::string> positional_;
    std::map<std::string, std::string> values_;
    std::set<std::string> switches_;
};

}  // namespace ecf8
