// SVG figures for `ecf8 inspect --plot`: the exponent histogram and each tensor's bits per weight against
// its exponent-entropy bound, in the spirit of the ECF8 paper's figures.
#pragma once

#include <string>
#include <vector>

#include "codec/stats.h"

namespace ecf8 {

std::string render_inspect_svg(const std::vector<TensorStats>& stats, const std::string& title);

}  // namespace ecf8
