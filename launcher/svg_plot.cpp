// Hand-written SVG: two panels side by side, no dependencies.
#include "launcher/svg_plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <sstream>

namespace ecf8 {
namespace {

constexpr double kPanelW = 520, kPanelH = 360, kMargin = 60;

std::string fmt(double v, int prec = 2) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%.*f", prec, v);
    return buf;
}

std::string escape(const std::string& s) {
    std::string out;
    for (char c : s) {
        if (c == '<')
            out += "&lt;";
        else if (c == '>')
            out += "&gt;";
        else if (c == '&')
            out += "&amp;";
        else
            out += c;
    }
    return out;
}

void axes(std::ostringstream& o, double x0, double y0, const std::string& xlabel, const std::string& ylabel,
          const std::string& title) {
    o << "<line x1='" << x0 << "' y1='" << y0 + kPanelH << "' x2='" << x0 + kPanelW << "' y2='" << y0 + kPanelH
      << "' stroke='black'/>\n";
    o << "<line x1='" << x0 << "' y1='" << y0 << "' x2='" << x0 << "' y2='" << y0 + kPanelH << "' stroke='black'/>\n";
    o << "<text x='" << x0 + kPanelW / 2 << "' y='" << y0 + kPanelH + 40 << "' text-anchor='middle'>" << xlabel
      << "</text>\n";
    o << "<text x='" << x0 - 45 << "' y='" << y0 + kPanelH / 2 << "' text-anchor='middle' transform='rotate(-90 "
      << x0 - 45 << " " << y0 + kPanelH / 2 << ")'>" << ylabel << "</text>\n";
    o << "<text x='" << x0 + kPanelW / 2 << "' y='" << y0 - 12 << "' text-anchor='middle' font-weight='bold'>" << title
      << "</text>\n";
}

// Left panel: exponent frequency per dtype family, as bars.
void histogram_panel(std::ostringstream& o, const std::vector<TensorStats>& stats, double x0, double y0) {
    std::map<std::string, std::array<double, 256>> hist;
    std::map<std::string, int> bins;
    for (const TensorStats& s : stats) {
        int bits = exponent_bits_of(s.dtype);
        if (!bits) continue;
        auto& h = hist[dtype_name(s.dtype)];
        bins[dtype_name(s.dtype)] = 1 << bits;
        for (int i = 0; i < 256; ++i) h[i] += static_cast<double>(s.exponent_histogram[i]);
    }
    axes(o, x0, y0, "exponent field value", "share of weights", "Exponent histogram");
    static const char* colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd"};
    int series = 0;
    for (auto& [name, h] : hist) {
        double total = 0, peak = 0;
        for (int i = 0; i < bins[name]; ++i) total += h[i];
        for (int i = 0; i < bins[name]; ++i) peak = std::max(peak, h[i] / std::max(total, 1.0));
        int first = 0, last = bins[name] - 1;
        while (first < last && h[first] == 0) ++first;
        while (last > first && h[last] == 0) --last;
        double bw = kPanelW / (last - first + 1);
        for (int i = first; i <= last; ++i) {
            double share = h[i] / std::max(total, 1.0);
            double bh = peak > 0 ? share / peak * (kPanelH - 20) : 0;
            o << "<rect x='" << fmt(x0 + (i - first) * bw + series * bw / 4) << "' y='" << fmt(y0 + kPanelH - bh)
              << "' width='" << fmt(bw / 4) << "' height='" << fmt(bh) << "' fill='" << colors[series % 4]
              << "'><title>" << name << " exponent " << i << ": " << fmt(100 * share, 2) << "%</title></rect>\n";
        }
        o << "<text x='" << x0 + kPanelW - 10 << "' y='" << y0 + 20 + 18 * series << "' text-anchor='end' fill='"
          << colors[series % 4] << "'>" << name << " (max " << fmt(100 * peak, 1) << "%)</text>\n";
        ++series;
    }
}

// Right panel: per tensor, achieved bits/weight against the bound raw_bits + H(exp); the diagonal is
// the bound itself, so points on or below it are at or beyond the exponent-coding ideal.
void bound_panel(std::ostringstream& o, const std::vector<TensorStats>& stats, double x0, double y0) {
    double lo = 1e9, hi = 0;
    for (const TensorStats& s : stats) {
        if (!s.ecf8 || !s.numel) continue;
        lo = std::min({lo, s.bound_bits, s.bits_per_weight});
        hi = std::max({hi, s.bound_bits, s.bits_per_weight});
    }
    axes(o, x0, y0, "bound: raw bits + H(exponent) per weight", "achieved bits per weight (all counted)",
         "ECF8 against the entropy bound");
    if (hi <= 0) return;
    lo = std::floor(lo * 4 - 1) / 4;
    hi = std::ceil(hi * 4 + 1) / 4;
    auto px = [&](double v) { return x0 + (v - lo) / (hi - lo) * kPanelW; };
    auto py = [&](double v) { return y0 + kPanelH - (v - lo) / (hi - lo) * kPanelH; };
    o << "<line x1='" << fmt(px(lo)) << "' y1='" << fmt(py(lo)) << "' x2='" << fmt(px(hi)) << "' y2='" << fmt(py(hi))
      << "' stroke='gray' stroke-dasharray='4 4'/>\n";
    for (double t = std::ceil(lo); t <= hi; t += 1) {
        o << "<text x='" << fmt(px(t)) << "' y='" << y0 + kPanelH + 16 << "' text-anchor='middle'>" << t << "</text>";
        o << "<text x='" << x0 - 8 << "' y='" << fmt(py(t) + 4) << "' text-anchor='end'>" << t << "</text>\n";
    }
    for (const TensorStats& s : stats) {
        if (!s.ecf8 || !s.numel) continue;
        o << "<circle cx='" << fmt(px(s.bound_bits)) << "' cy='" << fmt(py(s.bits_per_weight)) << "' r='4' fill='"
          << (dtype_size(s.dtype) == 1 ? "#1f77b4" : "#d62728") << "' fill-opacity='0.7'><title>" << escape(s.name)
          << ": " << fmt(s.bits_per_weight, 3) << " bits vs bound " << fmt(s.bound_bits, 3) << "</title></circle>\n";
    }
}

}  // namespace

std::string render_inspect_svg(const std::vector<TensorStats>& stats, const std::string& title) {
    std::ostringstream o;
    const double width = 2 * kPanelW + 3 * kMargin + 20, height = kPanelH + 2 * kMargin + 40;
    o << "<svg xmlns='http://www.w3.org/2000/svg' width='" << width << "' height='" << height
      << "' font-family='sans-serif' font-size='12'>\n<rect width='100%' height='100%' fill='white'/>\n";
    o << "<text x='" << width / 2 << "' y='20' text-anchor='middle' font-size='15'>" << escape(title) << "</text>\n";
    histogram_panel(o, stats, kMargin, kMargin);
    bound_panel(o, stats, 2 * kMargin + kPanelW + 20, kMargin);
    o << "</svg>\n";
    return o.str();
}

}  // namespace ecf8
