// Small file-system helpers for writers that must never leave a half-written file behind.
#pragma once

#include <string>

namespace ecf8 {

// Every writer that publishes with tmp + rename calls this first: the rename would replace whatever
// `path` names, so a path that exists and is not a regular file (symlinks followed) is an error naming it
// and what it is (a directory, a FIFO, a device node such as /dev/null). A missing path is fine.
void check_output_path(const std::string& path);

// Writes `contents` to path + ".tmp", flushes and fsyncs it, then renames it over `path`. On any error the
// tmp file is removed and ecf8::Error names the path and the system error.
void write_file_atomic(const std::string& path, const std::string& contents);

// Reads a whole file; throws naming the path when it cannot.
std::string read_file(const std::string& path);

// Makes renames inside `dir` durable (best effort: errors are ignored).
void fsync_dir(const std::string& dir);

}  // namespace ecf8
