// Shared by `ecf8 inspect` and `ecf8 demo`: statistics of a file and their table.
#pragma once

#include <string>
#include <vector>

#include "codec/stats.h"

namespace ecf8 {

// Statistics of every tensor; an uncompressed FILE is compressed to a temporary file first.
std::vector<TensorStats> inspect_stats(const std::string& path, int threads);
void print_inspect_table(const std::string& path, const std::vector<TensorStats>& stats);

}  // namespace ecf8
