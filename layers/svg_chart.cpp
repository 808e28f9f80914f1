#include "kestrel/layers/svg_chart.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "kestrel/layers/file_io_internal.h"
#include "kestrel/core/error.h"
#include "kestrel/core/number_text_internal.h"

namespace kestrel {
namespace {
// Tableau 10: distinct on screen and in print.
constexpr const char* kPalette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
constexpr int kPaletteSize = 10;

std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    // XML 1.0 has no way to write other control characters: a parser rejects the document.
    if (static_cast<unsigned char>(c) < 0x20 && c != '\t' && c != '\n' && c != '\r') {
      out += ' ';
      continue;
    }
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string num(double v) { return detail::fixed_text(v, 2); }

bool drawable(double v, bool log_axis) { return std::isfinite(v) && (!log_axis || v > 0.0); }

double nice_step(double raw) {
  const double p = std::pow(10.0, std::floor(std::log10(raw)));
  const double f = raw / p;
  return (f <= 1.0 ? 1.0 : f <= 2.0 ? 2.0 : f <= 5.0 ? 5.0 : 10.0) * p;
}

// One axis: its range in data units, its ticks and how to map a value to [0, 1].
struct Axis {
  bool log = false;
  double lo = 0.0, hi = 1.0, step = 1.0;
  std::vector<double> ticks;
  double t(double v) const { return log ? std::log10(v) : v; }
  double frac(double v) const { return (t(v) - t(lo)) / (t(hi) - t(lo)); }
};

// A span this small against the values' magnitude is rounding noise (0.1 + 0.2 against 0.3): a
// step fitted to it would need more multiples from zero than a double counts exactly.
bool below_precision(double lo, double hi) {
  return hi - lo <= 1e-9 * std::max(std::fabs(lo), std::fabs(hi));
}

constexpr long long kMaxTicks = 1000;  // a bound for the loops, far above what a chart shows

// Every multiple of `step` in [lo, hi] (a hair of slack at both ends), counted by an integer
// index: a double counter k += 1 stops moving past 2^53.
std::vector<double> multiples(double lo, double hi, double step) {
  const double first = std::ceil(lo / step - 1e-9), last = std::floor(hi / step + 1e-9);
  const long long n = static_cast<long long>(std::min(last - first + 1.0, static_cast<double>(kMaxTicks)));
  std::vector<double> t;
  for (long long i = 0; i < n; ++i) {
    const double v = (first + static_cast<double>(i)) * step;
    t.push_back(std::fabs(v) < step * 1e-9 ? 0.0 : v);
  }
  return t;
}

Axis make_axis(double min, double max, bool log_axis, int target) {
  Axis a;
  a.log = log_axis;
  if (log_axis) {
    a.lo = std::pow(10.0, std::floor(std::log10(min)));
    a.hi = std::pow(10.0, std::ceil(std::log10(max)));
    if (a.hi <= a.lo) a.hi = a.lo * 10.0;
    a.ticks = log_ticks(a.lo, a.hi);
    return a;
  }
  if (below_precision(min, max)) {  // one value: open a window around it
    const double pad = min == 0.0 ? 1.0 : std::fabs(min) * 0.1;
    min -= pad;
    max += pad;
  }
  a.step = nice_step((max - min) / target);
  a.lo = std::floor(min / a.step) * a.step;
  a.hi = std::ceil(max / a.step) * a.step;
  // Finite values can span more than a double holds (-1e308 .. 1e308), or round out past the
  // largest one: the step is then inf and the ends NaN, which multiples() would cast to a count.
  KESTREL_CHECK(std::isfinite(a.hi - a.lo), "chart axis: values from ", min, " to ", max,
                " span more than a double holds");
  // The ticks use the step the range was rounded to, so the axis ends on one; a step re-picked
  // from [lo, hi] can be coarser and leave the ends between ticks.
  a.ticks = multiples(a.lo, a.hi, a.step);
  return a;
}
}  // namespace

std::vector<double> linear_ticks(double lo, double hi, int target) {
  KESTREL_CHECK(std::isfinite(lo) && std::isfinite(hi) && hi > lo && target > 0, "linear_ticks: bad range [", lo,
                ", ", hi, "] or target ", target);
  KESTREL_CHECK(!below_precision(lo, hi), "linear_ticks: range [", lo, ", ", hi,
                "] is narrower than the precision of its values");
  return multiples(lo, hi, nice_step((hi - lo) / target));
}

std::vector<double> log_ticks(double lo, double hi, int max_labels) {
  KESTREL_CHECK(lo > 0.0 && hi > lo && std::isfinite(hi) && max_labels > 1, "log_ticks: bad range [", lo, ", ",
                hi, "]");
  const int k0 = static_cast<int>(std::ceil(std::log10(lo) - 1e-9));
  const int k1 = static_cast<int>(std::floor(std::log10(hi) + 1e-9));
  // n labels span n - 1 gaps of `every` decades.
  const int every = std::max(1, (k1 - k0 + max_labels - 2) / (max_labels - 1));
  // Multiples of `every` (so 10^0 = 1 is labelled whenever it is in range).
  int first = k0 + ((every - k0 % every) % every);
  std::vector<double> t;
  for (int k = first; k <= k1; k += every) t.push_back(std::pow(10.0, k));
  return t;
}

std::string tick_label(double v, double step, bool log_axis) {
  if (log_axis) {
    const int k = static_cast<int>(std::lround(std::log10(v)));
    if (k >= -3 && k <= 3) return detail::general_text(std::pow(10.0, k), 6);
    return "1e" + std::to_string(k);
  }
  if (v == 0.0) return "0";
  if (step >= 1e-4 && std::fabs(v) < 1e6) {
    const int decimals = std::max(0, static_cast<int>(-std::floor(std::log10(step) + 1e-9)));
    return detail::fixed_text(v, decimals);
  }
  return detail::general_text(v, 3);
}

bool has_drawable_point(const LineChart& c) {
  for (const ChartSeries& s : c.series)
    for (std::size_t i = 0; i < std::min(s.x.size(), s.y.size()); ++i)
      if (drawable(s.x[i], c.log_x) && drawable(s.y[i], c.log_y)) return true;
  return false;
}

std::string render_svg(const LineChart& c) {
  KESTREL_CHECK(c.width >= 200 && c.height >= 150, "chart '", c.title, "': size ", c.width, "x", c.height,
                " is too small (at least 200x150)");
  double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
  std::size_t longest = 0;
  for (const ChartSeries& s : c.series) {
    KESTREL_CHECK(s.x.size() == s.y.size(), "chart '", c.title, "': series '", s.name, "' has ", s.x.size(),
                  " x values but ", s.y.size(), " y values");
    longest = std::max(longest, s.name.size());
    for (std::size_t i = 0; i < s.x.size(); ++i) {
      if (!drawable(s.x[i], c.log_x) || !drawable(s.y[i], c.log_y)) continue;
      xmin = std::min(xmin, s.x[i]);
      xmax = std::max(xmax, s.x[i]);
      ymin = std::min(ymin, s.y[i]);
      ymax = std::max(ymax, s.y[i]);
    }
  }
  KESTREL_CHECK(xmin <= xmax, "chart '", c.title, "': no series has a point to draw");
  const Axis ax = make_axis(xmin, xmax, c.log_x, 8);
  const Axis ay = make_axis(ymin, ymax, c.log_y, 6);

  const double left = 78, top = 44, bottom = 58;
  const double right = std::min(c.width * 0.4, 56.0 + 7.0 * static_cast<double>(longest));
  const double x0 = left, x1 = c.width - right, y0 = top, y1 = c.height - bottom;
  auto px = [&](double v) { return x0 + ax.frac(v) * (x1 - x0); };
  auto py = [&](double v) { return y1 - ay.frac(v) * (y1 - y0); };

  std::ostringstream o;
  o << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    << "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"" << c.width << "\" height=\"" << c.height
    << "\" viewBox=\"0 0 " << c.width << " " << c.height << "\" font-family=\"Helvetica, Arial, sans-serif\">\n"
    << "<title>" << escape(c.title) << "</title>\n"
    << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    << "<defs><clipPath id=\"plot\"><rect x=\"" << num(x0) << "\" y=\"" << num(y0) << "\" width=\"" << num(x1 - x0)
    << "\" height=\"" << num(y1 - y0) << "\"/></clipPath></defs>\n";
  o << "<text class=\"title\" x=\"" << num(c.width / 2.0) << "\" y=\"26\" text-anchor=\"middle\" font-size=\"16\" "
    << "font-weight=\"bold\">" << escape(c.title) << "</text>\n";

  // Grid, minor ticks, tick labels.
  o << "<g class=\"grid\" stroke=\"#e4e4e4\" stroke-width=\"1\">\n";
  for (double t : ax.ticks) o << "<line x1=\"" << num(px(t)) << "\" y1=\"" << num(y0) << "\" x2=\"" << num(px(t)) << "\" y2=\"" << num(y1) << "\"/>\n";
  for (double t : ay.ticks) o << "<line x1=\"" << num(x0) << "\" y1=\"" << num(py(t)) << "\" x2=\"" << num(x1) << "\" y2=\"" << num(py(t)) << "\"/>\n";
  o << "</g>\n<g class=\"minor-ticks\" stroke=\"#444\" stroke-width=\"1\">\n";
  auto minor = [&](const Axis& a, bool is_x) {
    if (!a.log || a.t(a.hi) - a.t(a.lo) > 6.5) return;  // dense decades: major ticks only
    // By decade index: d *= 10 from lo accumulates rounding and can run one decade past hi.
    const long k0 = std::lround(a.t(a.lo)), k1 = std::lround(a.t(a.hi));
    for (long k = k0; k < k1; ++k)
      for (int m = 2; m <= 9; ++m) {
        const double v = std::pow(10.0, static_cast<double>(k)) * m;
        if (is_x) o << "<line x1=\"" << num(px(v)) << "\" y1=\"" << num(y1) << "\" x2=\"" << num(px(v)) << "\" y2=\"" << num(y1 + 3) << "\"/>\n";
        else o << "<line x1=\"" << num(x0 - 3) << "\" y1=\"" << num(py(v)) << "\" x2=\"" << num(x0) << "\" y2=\"" << num(py(v)) << "\"/>\n";
      }
  };
  minor(ax, true);
  minor(ay, false);
  o << "</g>\n<g class=\"x-ticks\" font-size=\"12\" text-anchor=\"middle\">\n";
  for (double t : ax.ticks)
    o << "<line x1=\"" << num(px(t)) << "\" y1=\"" << num(y1) << "\" x2=\"" << num(px(t)) << "\" y2=\"" << num(y1 + 6)
      << "\" stroke=\"#222\"/><text x=\"" << num(px(t)) << "\" y=\"" << num(y1 + 20) << "\">"
      << escape(tick_label(t, ax.step, ax.log)) << "</text>\n";
  o << "</g>\n<g class=\"y-ticks\" font-size=\"12\" text-anchor=\"end\">\n";
  for (double t : ay.ticks)
    o << "<line x1=\"" << num(x0 - 6) << "\" y1=\"" << num(py(t)) << "\" x2=\"" << num(x0) << "\" y2=\"" << num(py(t))
      << "\" stroke=\"#222\"/><text x=\"" << num(x0 - 9) << "\" y=\"" << num(py(t) + 4) << "\">"
      << escape(tick_label(t, ay.step, ay.log)) << "</text>\n";
  o << "</g>\n";
  o << "<rect class=\"frame\" x=\"" << num(x0) << "\" y=\"" << num(y0) << "\" width=\"" << num(x1 - x0) << "\" height=\""
    << num(y1 - y0) << "\" fill=\"none\" stroke=\"#222\"/>\n";
  o << "<text class=\"x-label\" x=\"" << num((x0 + x1) / 2) << "\" y=\"" << num(c.height - 14.0)
    << "\" text-anchor=\"middle\" font-size=\"13\">" << escape(c.x_label) << "</text>\n";
  o << "<text class=\"y-label\" x=\"18\" y=\"" << num((y0 + y1) / 2) << "\" text-anchor=\"middle\" font-size=\"13\" "
    << "transform=\"rotate(-90 18 " << num((y0 + y1) / 2) << ")\">" << escape(c.y_label) << "</text>\n";

  // Series and legend.
  o << "<g class=\"series-group\" clip-path=\"url(#plot)\" fill=\"none\" stroke-width=\"2\">\n";
  for (std::size_t k = 0; k < c.series.size(); ++k) {
    const ChartSeries& s = c.series[k];
    const char* color = kPalette[(s.color >= 0 ? s.color : static_cast<int>(k)) % kPaletteSize];
    auto ok = [&](std::size_t i) { return i < s.x.size() && drawable(s.x[i], c.log_x) && drawable(s.y[i], c.log_y); };
    std::string d;
    for (std::size_t i = 0; i < s.x.size(); ++i) {
      if (!ok(i)) continue;
      const bool pen_down = i > 0 && ok(i - 1);
      d += (pen_down ? " L" : (d.empty() ? "M" : " M")) + num(px(s.x[i])) + " " + num(py(s.y[i]));
    }
    o << "<path class=\"series\" data-name=\"" << escape(s.name) << "\" stroke=\"" << color << "\""
      << (s.dashed ? " stroke-dasharray=\"7 4\"" : "") << " d=\"" << d << "\"/>\n";
    // A run of one point is a lone "M" that draws nothing: it gets a marker even without markers.
    for (std::size_t i = 0; i < s.x.size(); ++i) {
      const bool lone = !(i > 0 && ok(i - 1)) && !ok(i + 1);
      if (ok(i) && (s.markers || lone))
        o << "<circle cx=\"" << num(px(s.x[i])) << "\" cy=\"" << num(py(s.y[i])) << "\" r=\"3\" fill=\"" << color
          << "\" stroke=\"none\"/>\n";
    }
  }
  o << "</g>\n<g class=\"legend\" font-size=\"12\">\n";
  for (std::size_t k = 0; k < c.series.size(); ++k) {
    const ChartSeries& s = c.series[k];
    const char* color = kPalette[(s.color >= 0 ? s.color : static_cast<int>(k)) % kPaletteSize];
    const double ly = y0 + 10 + 20.0 * static_cast<double>(k);
    o << "<line x1=\"" << num(x1 + 12) << "\" y1=\"" << num(ly) << "\" x2=\"" << num(x1 + 36) << "\" y2=\"" << num(ly)
      << "\" stroke=\"" << color << "\" stroke-width=\"2\"" << (s.dashed ? " stroke-dasharray=\"7 4\"" : "")
      << "/><text x=\"" << num(x1 + 42) << "\" y=\"" << num(ly + 4) << "\">" << escape(s.name) << "</text>\n";
  }
  o << "</g>\n</svg>\n";
  return o.str();
}

void write_svg(const LineChart& chart, const std::string& path) {
  const std::string text = render_svg(chart);
  detail::write_file_atomic(reinterpret_cast<const std::uint8_t*>(text.data()), text.size(), path);
}

}  // namespace kestrel
