// Environment-variable knobs, each read once and cached (as NCCL's param.h does).
// Only tuning and debug settings live here; behaviour comes from the CLI and YAML.
#pragma once

#include <cstdlib>
#include <string>

namespace ecf8 {

// Returns the value of `name` from the environment at first call, or `fallback` when unset.
inline std::string env_string(const char* name, const char* fallback) {
    const char* v = std::getenv(name);
    return v ? std::string(v) : std::string(fallback);
}

#define ECF8_PARAM_STRING(fn, env, fallback)                                 \
    inline const std::string& fn() {                                         \
        static const std::string cached = ::ecf8::env_string(env, fallback); \
        return cached;                                                       \
    }

ECF8_PARAM_STRING(param_log_level, "ECF8_LOG_LEVEL", "info")

}  // namespace ecf8
