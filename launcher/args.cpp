// Argument parsing for the ecf8 subcommands.
#include "launcher/args.h"

#include <cstdlib>

#include "common/error.h"

namespace ecf8 {

Args::Args(const std::vector<std::string>& argv, const std::set<std::string>& value_flags,
           const std::set<std::string>& switch_flags, const std::string& command)
    : command_(command) {
    for (size_t i = 0; i < argv.size(); ++i) {
        const std::string& a = argv[i];
        if (a.rfind("--", 0) != 0 || a == "--") {
            positional_.push_back(a);
            continue;
        }
        std::string name = a.substr(2), value;
        bool inline_value = false;
        if (auto eq = name.find('='); eq != std::string::npos) {
            value = name.substr(eq + 1);
            name = name.substr(0, eq);
            inline_value = true;
        }
        if (switch_flags.count(name)) {
            ECF8_CHECK(!inline_value, "ecf8 " << command << ": --" << name << " takes no value");
            switches_.insert(name);
        } else if (value_flags.count(name)) {
            if (!inline_value) {
                ECF8_CHECK(i + 1 < argv.size(), "ecf8 " << command << ": --" << name << " needs a value");
                value = argv[++i];
            }
            values_[name] = value;
        } else {
            std::string known;
            for (const auto& f : value_flags) known += " --" + f;
            for (const auto& f : switch_flags) known += " --" + f;
            ECF8_FAIL("ecf8 " << command << ": unknown option --" << name << " (known:" << known << "); see 'ecf8 "
                              << command << " --help'");
        }
    }
}

bool Args::has(const std::string& flag) const { return switches_.count(flag) || values_.count(flag); }

std::string Args::get(const std::string& flag, const std::string& fallback) const {
    auto it = values_.find(flag);
    return it == values_.end() ? fallback : it->second;
}

int Args::get_int(const std::string& flag, int fallback) const {
    auto it = values_.find(flag);
    if (it == values_.end()) return fallback;
    size_t used = 0;
    int v = 0;
    try {
        v = std::stoi(it->second, &used);
    } catch (const std::exception&) {
        used = 0;
    }
    ECF8_CHECK(used == it->second.size() && !it->second.empty(),
               "ecf8 " << command_ << ": --" << flag << " '" << it->second << "' is not an integer");
    return v;
}

double Args::get_double(const std::string& flag, double fallback) const {
    auto it = values_.find(flag);
    if (it == values_.end()) return fallback;
    char* end = nullptr;
    const double v = std::strtod(it->second.c_str(), &end);
    ECF8_CHECK(!it->second.empty() && end && *end == '\0',
               "ecf8 " << command_ << ": --" << flag << " '" << it->second << "' is not a number");
    return v;
}

int Args::get_threads(int fallback) const {
    const int v = get_int("threads", fallback);
    ECF8_CHECK(v >= 0, "--threads must be >= 0 (0 = every core), got " << v);  // main() prefixes the command
    return v;
}

void Args::expect_positional(size_t n, const std::string& usage) const {
    ECF8_CHECK(positional_.size() == n, "ecf8 " << command_ << ": expected " << n << " argument(s), got "
                                                << positional_.size() << "\nusage: " << usage);
}

}  // namespace ecf8
