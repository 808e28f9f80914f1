// A small SVG line-chart writer for the experiment programs: several named series, linear or
// logarithmic axes with ticks and labels, a title and a legend. Output is a standalone SVG 1.1
// document (no scripts, no external resources) that browsers and image viewers render as is.
//
// Contract:
// - A point with a non-finite coordinate, or a non-positive one on a logarithmic axis, is not
//   drawn and breaks its series' line there (a series of such points draws nothing). A point
//   with no drawable neighbour (a series of one point) gets a dot, as if `markers` were set.
// - The axes cover every drawable point; linear axes end on "nice" ticks (1, 2, 5 x 10^k),
//   logarithmic axes on powers of ten, with a labelled tick at each decade (every few decades
//   when there are many) and unlabelled minor ticks at 2..9 x 10^k (up to six decades). Values
//   that differ only by rounding (0.1 + 0.2 and 0.3) are one value, shown in a window around it.
// - Text is XML-escaped; control characters XML cannot hold (below 0x20 but tab, newline and
//   carriage return) become spaces. Raises kestrel::Error when a series' x and y differ in length
//   or no series has a drawable point.
#pragma once

#include <string>
#include <vector>

namespace kestrel {

struct ChartSeries {
  std::string name;
  std::vector<double> x, y;
  bool dashed = false;   // a dashed line (e.g. "train" next to a solid "test")
  bool markers = false;  // a dot at every point (sparse series)
  int color = -1;        // palette index; -1: the series' position in the chart
};

struct LineChart {
  std::string title, x_label, y_label;
  bool log_x = false, log_y = false;
  int width = 760, height = 460;  // pixels
  std::vector<ChartSeries> series;
};

// The SVG document.
std::string render_svg(const LineChart& chart);
// Whether some series has a point render_svg would draw (when not, render_svg raises): a report
// written part by part asks this before it draws a chart of a part that may have no data yet.
bool has_drawable_point(const LineChart& chart);
// Writes render_svg(chart) to `path` atomically (a temporary file renamed into place).
void write_svg(const LineChart& chart, const std::string& path);

// Axis helpers (exposed for tests). linear_ticks: multiples of a nice step (1, 2, 5 x 10^k)
// within [lo, hi], about `target` of them (raises when hi - lo is below the precision of the
// values). log_ticks: the powers of ten within [lo, hi] (every k-th decade, exponents multiples of
// k, so that at most `max_labels` remain); lo, hi > 0.
std::vector<double> linear_ticks(double lo, double hi, int target);
std::vector<double> log_ticks(double lo, double hi, int max_labels = 10);
// Tick label text: "0.25", "100", "1e-6".
std::string tick_label(double v, double step, bool log_axis);

}  // namespace kestrel
