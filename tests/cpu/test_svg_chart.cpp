// The SVG line-chart writer (layers/svg_chart.h): well-formed XML (checked by a small parser
// written here), title / axis labels / legend present and escaped, one path per series with
// breaks at undrawable points, linear and logarithmic ticks, point coordinates and layout against
// their closed forms, series styles and colours, and the errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <sstream>
#include <utility>

#include "error_text.h"
#include "temp_dir.h"
#include "kestrel/core/error.h"
#include "kestrel/layers/svg_chart.h"

using namespace kestrel;

namespace {
// Checks that `doc` is well-formed XML: one root element, properly nested and closed tags,
// quoted attribute values, no raw '<' or unknown '&' entity in text. Returns "" or the problem.
std::string xml_problem(const std::string& doc) {
  std::vector<std::string> stack;
  std::size_t i = 0;
  int roots = 0;
  auto entity_ok = [&](std::size_t at) {
    for (const char* e : {"&amp;", "&lt;", "&gt;", "&quot;", "&apos;"})
      if (doc.compare(at, std::strlen(e), e) == 0) return true;
    return false;
  };
  while (i < doc.size()) {
    if (doc[i] != '<') {
      if (doc[i] == '&' && !entity_ok(i)) return "bad entity at " + std::to_string(i);
      if (doc[i] == '>') return "raw '>' in text at " + std::to_string(i);
      ++i;
      continue;
    }
    if (doc.compare(i, 5, "<?xml") == 0) {
      const std::size_t end = doc.find("?>", i);
      if (end == std::string::npos) return "unterminated declaration";
      i = end + 2;
      continue;
    }
    const bool closing = doc[i + 1] == '/';
    std::size_t j = i + (closing ? 2 : 1);
    const std::size_t name_start = j;
    while (j < doc.size() && (std::isalnum(static_cast<unsigned char>(doc[j])) || doc[j] == '-' || doc[j] == ':')) ++j;
    const std::string name = doc.substr(name_start, j - name_start);
    if (name.empty()) return "tag without a name at " + std::to_string(i);
    // Attributes: name="value" pairs until '>' or '/>'.
    while (j < doc.size() && doc[j] != '>' && !(doc[j] == '/' && doc[j + 1] == '>')) {
      if (std::isspace(static_cast<unsigned char>(doc[j]))) {
        ++j;
        continue;
      }
      if (closing) return "attribute in closing tag " + name;
      while (j < doc.size() && doc[j] != '=' && !std::isspace(static_cast<unsigned char>(doc[j]))) ++j;
      if (doc[j] != '=' || doc[j + 1] != '"') return "unquoted attribute in <" + name + ">";
      const std::size_t close = doc.find('"', j + 2);
      if (close == std::string::npos) return "unterminated attribute in <" + name + ">";
      const std::string value = doc.substr(j + 2, close - j - 2);
      if (value.find('<') != std::string::npos) return "'<' in an attribute of <" + name + ">";
      j = close + 1;
    }
    if (j >= doc.size()) return "unterminated tag <" + name + ">";
    const bool self_closing = doc[j] == '/';
    i = j + (self_closing ? 2 : 1);
    if (closing) {
      if (stack.empty() || stack.back() != name) return "</" + name + "> closes " + (stack.empty() ? "nothing" : "<" + stack.back() + ">");
      stack.pop_back();
    } else if (!self_closing) {
      if (stack.empty()) ++roots;
      stack.push_back(name);
    } else if (stack.empty()) {
      ++roots;
    }
  }
  if (!stack.empty()) return "<" + stack.back() + "> is never closed";
  if (roots != 1) return std::to_string(roots) + " root elements";
  return "";
}

int count(const std::string& s, const std::string& what) {
  int n = 0;
  for (std::size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) ++n;
  return n;
}

// Texts of the <text> elements inside <g class="NAME">.
std::vector<std::string> group_texts(const std::string& svg, const std::string& group) {
  const std::size_t start = svg.find("<g class=\"" + group + "\"");
  const std::size_t end = svg.find("</g>", start);
  std::vector<std::string> out;
  const std::string body = svg.substr(start, end - start);
  // Each <text ...>CONTENT</text> whose CONTENT has no '<' (no std::regex: under ASan GCC 12
  // warns about uninitialised members inside libstdc++'s regex compiler).
  for (std::size_t open = body.find("<text"); open != std::string::npos; open = body.find("<text", open + 1)) {
    const std::size_t gt = body.find('>', open);
    if (gt == std::string::npos) break;
    const std::size_t lt = body.find('<', gt + 1);
    if (lt == std::string::npos) break;
    if (body.compare(lt, 7, "</text>") == 0) {
      out.push_back(body.substr(gt + 1, lt - gt - 1));
      open = lt;
    }
  }
  return out;
}

LineChart two_series() {
  LineChart c;
  c.title = "Loss & <accuracy>";
  c.x_label = "epoch";
  c.y_label = "d loss / d \"x\"";
  ChartSeries a, b;
  a.name = "train";
  b.name = "test";
  b.dashed = true;
  b.markers = true;
  for (int i = 0; i < 10; ++i) {
    a.x.push_back(i);
    a.y.push_back(0.1 * i * i);
    b.x.push_back(i);
    b.y.push_back(10.0 - i);
  }
  c.series = {a, b};
  return c;
}
}  // namespace

TEST(SvgChart, IsWellFormedWithTitleLabelsLegendAndOnePathPerSeries) {
  const std::string svg = render_svg(two_series());
  EXPECT_EQ(xml_problem(svg), "");
  EXPECT_EQ(svg.rfind("<?xml", 0), 0u);
  EXPECT_NE(svg.find("xmlns=\"http://www.w3.org/2000/svg\""), std::string::npos);
  EXPECT_NE(svg.find(">Loss &amp; &lt;accuracy&gt;</text>"), std::string::npos);
  EXPECT_NE(svg.find("class=\"x-label\""), std::string::npos);
  EXPECT_NE(svg.find(">epoch</text>"), std::string::npos);
  EXPECT_NE(svg.find(">d loss / d &quot;x&quot;</text>"), std::string::npos);
  EXPECT_EQ(count(svg, "<path class=\"series\""), 2);
  EXPECT_EQ(group_texts(svg, "legend"), (std::vector<std::string>{"train", "test"}));
  EXPECT_EQ(count(svg, "stroke-dasharray"), 2);  // the dashed series and its legend sample
  EXPECT_EQ(count(svg, "<circle"), 10);           // markers of the second series
  // Linear ticks: nice multiples covering the data (x 0..9, y 0..10).
  EXPECT_EQ(group_texts(svg, "x-ticks"), (std::vector<std::string>{"0", "2", "4", "6", "8", "10"}));
  const std::vector<std::string> y = group_texts(svg, "y-ticks");
  ASSERT_FALSE(y.empty());
  EXPECT_EQ(y.front(), "0");
  EXPECT_EQ(y.back(), "10");
}

TEST(SvgChart, LogAxisHasDecadeTicksAndSkipsNonPositivePoints) {
  LineChart c;
  c.title = "gradient norms";
  c.x_label = "layer";
  c.y_label = "norm";
  c.log_y = true;
  ChartSeries s;
  s.name = "relu";
  // 1e-6 .. 1e2 with a zero and a NaN in the middle: the line breaks twice.
  const std::vector<double> y = {1e-6, 3e-5, 0.0, 1e-3, 2e-2, NAN, 0.5, 7.0, 1e2};
  for (std::size_t i = 0; i < y.size(); ++i) {
    s.x.push_back(static_cast<double>(i + 1));
    s.y.push_back(y[i]);
  }
  c.series = {s};
  const std::string svg = render_svg(c);
  EXPECT_EQ(xml_problem(svg), "");
  EXPECT_EQ(group_texts(svg, "y-ticks"),
            (std::vector<std::string>{"1e-6", "1e-5", "1e-4", "0.001", "0.01", "0.1", "1", "10", "100"}));
  const std::size_t p = svg.find("<path class=\"series\"");
  const std::string path = svg.substr(p, svg.find("/>", p) - p);
  EXPECT_EQ(count(path, "M"), 3) << path;  // three runs: [1e-6, 3e-5], [1e-3, 2e-2], [0.5, 7, 1e2]
  EXPECT_EQ(count(path, "L"), 4) << path;
  // Eight decades: major ticks only. Over a few decades, 2..9 x 10^k minor ticks appear.
  auto minor_lines = [](const std::string& doc) {
    const std::size_t start = doc.find("<g class=\"minor-ticks\"");
    return count(doc.substr(start, doc.find("</g>", start) - start), "<line");
  };
  EXPECT_EQ(minor_lines(svg), 0);
  c.series[0].y = {0.02, 0.5, 3.0, 7.0, 15.0, 0.1, 0.3, 0.9, 1.0};
  EXPECT_EQ(minor_lines(render_svg(c)), 4 * 8);  // the axis spans 0.01 .. 100: four decades
}

TEST(SvgChart, TickHelpers) {
  const std::vector<double> fifths = linear_ticks(0.0, 1.0, 5);
  ASSERT_EQ(fifths.size(), 6u);
  for (std::size_t i = 0; i < fifths.size(); ++i) EXPECT_NEAR(fifths[i], 0.2 * static_cast<double>(i), 1e-12);
  const std::vector<double> t = linear_ticks(-3.0, 17.0, 4);  // step 5
  EXPECT_EQ(t, (std::vector<double>{0.0, 5.0, 10.0, 15.0}));
  EXPECT_EQ(log_ticks(1e-3, 1e3), (std::vector<double>{1e-3, 1e-2, 1e-1, 1.0, 1e1, 1e2, 1e3}));
  const std::vector<double> wide = log_ticks(1e-28, 1e8, 10);  // 37 decades: every 4th
  EXPECT_LE(wide.size(), 10u);
  EXPECT_DOUBLE_EQ(wide.front(), 1e-28);
  EXPECT_NEAR(std::log10(wide[1]) - std::log10(wide[0]), 4.0, 1e-9);
  EXPECT_EQ(tick_label(0.25, 0.05, false), "0.25");
  EXPECT_EQ(tick_label(0.0, 0.5, false), "0");
  EXPECT_EQ(tick_label(2000.0, 500.0, false), "2000");
  EXPECT_EQ(tick_label(1e-12, 1.0, true), "1e-12");
  EXPECT_EQ(tick_label(1e4, 1.0, true), "1e4");
  EXPECT_EQ(tick_label(1e3, 1.0, true), "1000");
  EXPECT_THROW(linear_ticks(1.0, 1.0, 5), Error);
  EXPECT_THROW(log_ticks(0.0, 1.0), Error);
}

TEST(SvgChart, OneValueStillGetsAnAxisAndBadSeriesRaise) {
  LineChart c;
  c.title = "flat";
  ChartSeries s;
  s.name = "constant";
  s.x = {1, 2, 3};
  s.y = {0.5, 0.5, 0.5};
  c.series = {s};
  EXPECT_EQ(xml_problem(render_svg(c)), "");
  c.series[0].y.pop_back();
  EXPECT_THROW(render_svg(c), Error);
  EXPECT_TRUE(has_drawable_point(c)) << "a series of unequal length still has drawable points";
  c.series[0].y = {NAN, INFINITY, NAN};
  EXPECT_FALSE(has_drawable_point(c));
  try {
    render_svg(c);
    ADD_FAILURE() << "no error for a chart with nothing to draw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no series has a point to draw"), std::string::npos) << e.what();
  }
  c.log_y = true;
  c.series[0].y = {-1.0, 0.0, -2.0};
  EXPECT_FALSE(has_drawable_point(c)) << "nothing positive on a log axis";
  EXPECT_THROW(render_svg(c), Error);
  c.series[0].y = {-1.0, 0.0, 1e-30};
  EXPECT_TRUE(has_drawable_point(c));
  EXPECT_EQ(xml_problem(render_svg(c)), "");
  EXPECT_FALSE(has_drawable_point(LineChart{})) << "no series at all";
  LineChart small = two_series();
  small.width = 100;
  EXPECT_THROW(render_svg(small), Error);
}

TEST(SvgChart, WriteSvgWritesTheDocument) {
  kestrel::testing::TempDir dir("svg_chart");
  const LineChart c = two_series();
  write_svg(c, dir / "chart.svg");
  const std::vector<std::uint8_t> bytes = kestrel::testing::read_bytes(dir / "chart.svg");
  EXPECT_EQ(std::string(bytes.begin(), bytes.end()), render_svg(c));
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"chart.svg"});  // no temporary left behind
  EXPECT_THROW(write_svg(c, dir / "missing/chart.svg"), Error);
}

namespace {
LineChart one_series(const std::vector<double>& x, const std::vector<double>& y, bool log_y = false) {
  LineChart c;
  c.title = "review";
  c.log_y = log_y;
  ChartSeries s;
  s.name = "s";
  s.x = x;
  s.y = y;
  c.series = {s};
  return c;
}

// y1 of every <line> in <g class="minor-ticks">, and the frame's top edge.
std::vector<double> minor_tick_ys(const std::string& svg) {
  const std::size_t start = svg.find("<g class=\"minor-ticks\"");
  const std::string body = svg.substr(start, svg.find("</g>", start) - start);
  std::vector<double> ys;
  for (std::size_t p = body.find(" y1=\""); p != std::string::npos; p = body.find(" y1=\"", p + 1))
    ys.push_back(std::stod(body.substr(p + 5)));
  return ys;
}
double frame_top(const std::string& svg) {
  const std::size_t p = svg.find("<rect class=\"frame\"");
  return std::stod(svg.substr(svg.find(" y=\"", p) + 4));
}
}  // namespace

// Values one rounding step apart used to pick a step of ~1e-17 (or 5 around 1e17) whose tick
// counter passed 2^53 and never moved: render_svg hung or ran out of memory.
TEST(SvgChart, ValuesOneRoundingStepApartAreOneValue) {
  for (const std::vector<double>& y : {std::vector<double>{0.3, 0.1 + 0.2, 0.3}, std::vector<double>{1e17, 1e17 + 16}}) {
    std::vector<double> x;
    for (std::size_t i = 0; i < y.size(); ++i) x.push_back(static_cast<double>(i + 1));
    const std::string svg = render_svg(one_series(x, y));
    EXPECT_EQ(xml_problem(svg), "");
    const std::vector<std::string> ticks = group_texts(svg, "y-ticks");
    EXPECT_GE(ticks.size(), 2u) << y[0];
    EXPECT_LE(ticks.size(), 12u) << y[0];
  }
  EXPECT_THROW(linear_ticks(1e17, 1e17 + 16, 6), Error) << "a range below the values' precision";
}

// make_axis rounded the range to its step but linear_ticks picked a coarser one, so the axis
// (0 .. 1.4) ended between ticks (0, 0.5, 1.0).
TEST(SvgChart, LinearAxisEndsOnATick) {
  const std::string svg = render_svg(one_series({1, 2}, {0.19, 1.384}));
  const std::vector<std::string> y = group_texts(svg, "y-ticks");
  ASSERT_FALSE(y.empty());
  EXPECT_EQ(y.front(), "0");
  EXPECT_EQ(y.back(), "1.4");
  EXPECT_EQ(y.size(), 8u);  // step 0.2
}

// The minor-tick loop multiplied by 10 from the axis' lower end: rounding ran it one decade past
// 1e-4 (24 ticks, 8 above the frame).
TEST(SvgChart, LogMinorTicksStayInTheFrame) {
  const std::string svg = render_svg(one_series({1, 2, 3}, {2e-6, 5e-5, 3e-6}, /*log_y=*/true));
  EXPECT_EQ(group_texts(svg, "y-ticks"), (std::vector<std::string>{"1e-6", "1e-5", "1e-4"}));
  const std::vector<double> ys = minor_tick_ys(svg);
  EXPECT_EQ(ys.size(), 16u);
  const double top = frame_top(svg);
  for (double v : ys) EXPECT_GE(v, top);
  // Another pair whose decade count rounded up.
  EXPECT_EQ(minor_tick_ys(render_svg(one_series({1, 2}, {2e-12, 5e-9}, true))).size(), 4u * 8u);
}

TEST(SvgChart, LogTicksKeepToMaxLabels) {
  for (const auto& [lo, hi] : {std::make_pair(1e-5, 1e5), std::make_pair(1e-1, 1e9), std::make_pair(1e-9, 1e0)}) {
    const std::vector<double> t = log_ticks(lo, hi, 10);
    EXPECT_LE(t.size(), 10u) << lo << " .. " << hi;
    EXPECT_GE(t.size(), 5u) << lo << " .. " << hi;
  }
  EXPECT_EQ(log_ticks(1e-5, 1e5, 10).size(), 5u);  // every second decade, 1 among them
  EXPECT_EQ(log_ticks(1e-4, 1e5, 10).size(), 10u);  // nine decades: all ten labelled
}

// A run of one drawable point (a series of one point, or a point between NaNs) is a path of a
// lone "M": nothing visible unless it gets a marker.
TEST(SvgChart, LonePointsGetAMarker) {
  EXPECT_EQ(count(render_svg(one_series({1}, {0.5})), "<circle"), 1);
  EXPECT_EQ(count(render_svg(one_series({1, 2, 3, 4, 5, 6}, {1, NAN, 2, NAN, 3, 4})), "<circle"), 2);
  EXPECT_EQ(count(render_svg(one_series({1, 2, 3}, {1, 2, 3})), "<circle"), 0) << "a line needs no marker";
}

// XML 1.0 allows no control characters but tab, newline and carriage return.
TEST(SvgChart, ControlCharactersAreNotWritten) {
  LineChart c = one_series({1, 2}, {1, 2});
  c.title = std::string("bell\x07 and\x1f unit");
  c.series[0].name = std::string("nul\x01", 4);
  const std::string svg = render_svg(c);
  for (char ch = 1; ch < 0x20; ++ch) {
    const bool allowed = ch == '\t' || ch == '\n' || ch == '\r';
    EXPECT_TRUE(allowed || svg.find(ch) == std::string::npos) << "control character " << static_cast<int>(ch);
  }
  EXPECT_EQ(xml_problem(svg), "");
}

// Finite values whose span is not (1e308 - -1e308 overflows to inf): the step came out inf, the
// axis ends NaN, the tick count a NaN cast to long long (undefined behaviour), and the series'
// coordinates "nan". No axis can show them: an Error, as for a log axis past 1e308.
TEST(SvgChart, FiniteValuesWhoseSpanOverflowsAreAnErrorNotNaNCoordinates) {
  for (const std::vector<double>& y : {std::vector<double>{-1e308, 0.0, 1e308}, std::vector<double>{0.0, 1.7e308}}) {
    try {
      const std::string svg = render_svg(one_series({1, 2}, {y.front(), y.back()}));
      ADD_FAILURE() << "rendered with " << (svg.find("nan") != std::string::npos ? "NaN coordinates" : "no NaN")
                    << ", y-ticks " << group_texts(svg, "y-ticks").size();
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("span more than a double holds"), std::string::npos) << e.what();
    }
  }
}

namespace {
// The number in attribute `name`="..." of the element that starts at `at` in `svg`.
double attr_at(const std::string& svg, std::size_t at, const std::string& name) {
  const std::string key = " " + name + "=\"";
  const std::size_t end = svg.find('>', at);
  const std::size_t p = svg.find(key, at);
  if (p == std::string::npos || p > end) {
    ADD_FAILURE() << "no " << name << " in " << svg.substr(at, end - at);
    return NAN;
  }
  return std::stod(svg.substr(p + key.size()));
}

// The (x, y) pairs of the `index`-th series path's "d" (M and L commands).
std::vector<std::pair<double, double>> path_points(const std::string& svg, int index = 0) {
  std::size_t p = svg.find("<path class=\"series\"");
  for (int i = 0; i < index; ++i) p = svg.find("<path class=\"series\"", p + 1);
  const std::size_t d = svg.find(" d=\"", p) + 4;
  std::string text = svg.substr(d, svg.find('"', d) - d);
  for (char& ch : text)
    if (ch == 'M' || ch == 'L') ch = ' ';
  std::istringstream in(text);
  std::vector<std::pair<double, double>> out;
  for (double x, y; in >> x >> y;) out.emplace_back(x, y);
  return out;
}

// The opening tag of the `index`-th element that starts with `start`.
std::string nth_tag(const std::string& svg, const std::string& start, int index) {
  std::size_t p = svg.find(start);
  for (int i = 0; i < index && p != std::string::npos; ++i) p = svg.find(start, p + 1);
  if (p == std::string::npos) return "";
  return svg.substr(p, svg.find('>', p) + 1 - p);
}

// The default 760 x 460 chart: plot frame x 78 .. 760 - right, y 44 .. 460 - 58, where
// right = min(0.4 * 760, 56 + 7 * longest series name).
constexpr double kX0 = 78, kY0 = 44, kY1 = 460 - 58;
double frame_right(std::size_t longest_name) { return 760 - std::min(0.4 * 760, 56.0 + 7.0 * longest_name); }
// Coordinates are written with two decimals.
constexpr double kCoordTol = 0.006;
}  // namespace

// Data coordinates map linearly (or by log10) from the axis ends onto the frame: x grows to the
// right, y upwards (SVG's y grows downwards). x 0..4 with about 8 ticks takes step 0.5, y 0..4
// with about 6 takes step 1, so both axes end exactly at the data's ends.
TEST(SvgChart, PointsMapOntoThePlotFrameFromTheAxisEnds) {
  const std::string svg = render_svg(one_series({0, 1, 2.5, 4}, {4, 0, 1.5, 3}));
  EXPECT_EQ(group_texts(svg, "x-ticks"),
            (std::vector<std::string>{"0", "0.5", "1.0", "1.5", "2.0", "2.5", "3.0", "3.5", "4.0"}));
  EXPECT_EQ(group_texts(svg, "y-ticks"), (std::vector<std::string>{"0", "1", "2", "3", "4"}));
  const double x1 = frame_right(1);  // series "s"
  const std::vector<std::pair<double, double>> pts = path_points(svg);
  const std::vector<std::pair<double, double>> data = {{0, 4}, {1, 0}, {2.5, 1.5}, {4, 3}};
  ASSERT_EQ(pts.size(), data.size());
  for (std::size_t i = 0; i < data.size(); ++i) {
    EXPECT_NEAR(pts[i].first, kX0 + data[i].first / 4.0 * (x1 - kX0), kCoordTol) << "point " << i;
    EXPECT_NEAR(pts[i].second, kY1 - data[i].second / 4.0 * (kY1 - kY0), kCoordTol) << "point " << i;
  }
  // Log y from 1e-2 to 1e2: 1 sits halfway up, 0.1 a quarter of the way.
  const std::vector<std::pair<double, double>> log_pts =
      path_points(render_svg(one_series({0, 1, 2, 3}, {1e-2, 0.1, 1, 1e2}, /*log_y=*/true)));
  ASSERT_EQ(log_pts.size(), 4u);
  const double frac[] = {0.0, 0.25, 0.5, 1.0};
  for (std::size_t i = 0; i < 4; ++i)
    EXPECT_NEAR(log_pts[i].second, kY1 - frac[i] * (kY1 - kY0), kCoordTol) << "log point " << i;
}

// The frame leaves the legend 56 px plus 7 px per character of the longest name, at most 40% of
// the width; legend entries sit 20 px apart beside the frame.
TEST(SvgChart, FrameAndLegendLeaveRoomForTheLongestName) {
  LineChart c = one_series({1, 2}, {1, 2});
  c.series[0].name = "ab";
  c.series.push_back(c.series[0]);
  c.series[1].name = "abcde";
  for (const std::size_t longest : {std::size_t{5}, std::size_t{50}}) {
    if (longest == 50) c.series[1].name = std::string(50, 'n');
    const std::string svg = render_svg(c);
    const double x1 = frame_right(longest);
    const std::size_t frame = svg.find("<rect class=\"frame\"");
    EXPECT_NEAR(attr_at(svg, frame, "x"), kX0, kCoordTol);
    EXPECT_NEAR(attr_at(svg, frame, "y"), kY0, kCoordTol);
    EXPECT_NEAR(attr_at(svg, frame, "width"), x1 - kX0, kCoordTol) << "longest name " << longest;
    EXPECT_NEAR(attr_at(svg, frame, "height"), kY1 - kY0, kCoordTol);
    const std::string legend = svg.substr(svg.find("<g class=\"legend\""));
    for (int k = 0; k < 2; ++k) {
      const std::string text = nth_tag(legend, "<text", k);
      EXPECT_NEAR(attr_at(text, 0, "x"), x1 + 42, kCoordTol) << "entry " << k;
      EXPECT_NEAR(attr_at(text, 0, "y"), kY0 + 10 + 20.0 * k + 4, kCoordTol) << "entry " << k;
    }
  }
}

// Minor ticks: 2..9 x 10^k on log axes of up to six decades, none at seven; on the y axis they
// are 3 px stubs left of the frame, on the x axis 3 px stubs below it.
TEST(SvgChart, LogMinorTicksUpToSixDecadesOnTheirOwnAxis) {
  auto minor_tags = [](const std::string& svg) {
    std::vector<std::string> tags;
    const std::size_t start = svg.find("<g class=\"minor-ticks\"");
    const std::size_t end = svg.find("</g>", start);
    for (std::size_t p = svg.find("<line", start); p < end; p = svg.find("<line", p + 1))
      tags.push_back(svg.substr(p, svg.find('>', p) + 1 - p));
    return tags;
  };
  EXPECT_EQ(minor_tags(render_svg(one_series({1, 2}, {1e-3, 1e4}, true))).size(), 0u) << "seven decades";
  const std::string svg = render_svg(one_series({1, 2}, {1e-2, 1e4}, true));
  const std::vector<std::string> y_minor = minor_tags(svg);
  EXPECT_EQ(y_minor.size(), 6u * 8u) << "six decades";
  for (const std::string& t : y_minor) {
    EXPECT_NEAR(attr_at(t, 0, "x1"), kX0 - 3, kCoordTol) << t;
    EXPECT_NEAR(attr_at(t, 0, "x2"), kX0, kCoordTol) << t;
    EXPECT_EQ(attr_at(t, 0, "y1"), attr_at(t, 0, "y2")) << t;
  }
  // 2 x 10^-2 sits log10(2) / 6 of the way up.
  EXPECT_NEAR(attr_at(y_minor[0], 0, "y1"), kY1 - std::log10(2.0) / 6.0 * (kY1 - kY0), kCoordTol);
  LineChart c = one_series({1e-1, 1e1}, {1, 2});
  c.log_x = true;
  const std::vector<std::string> x_minor = minor_tags(render_svg(c));
  EXPECT_EQ(x_minor.size(), 2u * 8u);
  for (const std::string& t : x_minor) {
    EXPECT_NEAR(attr_at(t, 0, "y1"), kY1, kCoordTol) << t;
    EXPECT_NEAR(attr_at(t, 0, "y2"), kY1 + 3, kCoordTol) << t;
    EXPECT_EQ(attr_at(t, 0, "x1"), attr_at(t, 0, "x2")) << t;
  }
}

// `dashed` and `markers` act separately; an explicit colour (0 included, taken modulo the
// palette) overrides the series' position in both the line and its legend sample.
TEST(SvgChart, DashedMarkersAndColoursFollowEachSeries) {
  LineChart c = one_series({1, 2, 3}, {1, 2, 3});
  c.series.resize(3, c.series[0]);
  c.series[0].dashed = true;  // no markers
  c.series[0].color = 13;     // palette[3]
  c.series[1].markers = true;  // not dashed
  c.series[1].color = 0;       // palette[0], not its position 1
  const std::string svg = render_svg(c);  // series 2: defaults, palette[2]
  const char* want[] = {"#d62728", "#1f77b4", "#2ca02c"};
  for (int k = 0; k < 3; ++k) {
    const std::string path = nth_tag(svg, "<path class=\"series\"", k);
    EXPECT_NE(path.find(std::string("stroke=\"") + want[k] + "\""), std::string::npos) << path;
    EXPECT_EQ(path.find("stroke-dasharray") != std::string::npos, k == 0) << path;
    const std::string sample = nth_tag(svg.substr(svg.find("<g class=\"legend\"")), "<line", k);
    EXPECT_NE(sample.find(std::string("stroke=\"") + want[k] + "\""), std::string::npos) << sample;
    EXPECT_EQ(sample.find("stroke-dasharray") != std::string::npos, k == 0) << sample;
  }
  EXPECT_EQ(count(svg, "<circle"), 3) << "markers of series 1 only";
  EXPECT_EQ(count(svg, "fill=\"#1f77b4\" stroke=\"none\""), 3) << "in series 1's colour";
}

// A constant series gets a window of +-10% around its value (+-1 around zero); an axis whose
// lower end is a rounded multiple of its step (3 x 0.1 = 0.30000000000000004) still starts on a
// tick.
TEST(SvgChart, ConstantSeriesAndRoundedAxisEndsGetTheirTicks) {
  EXPECT_EQ(group_texts(render_svg(one_series({1, 2, 3}, {0, 0, 0})), "y-ticks"),
            (std::vector<std::string>{"-1.0", "-0.5", "0", "0.5", "1.0"}));
  // [0.45, 0.55] in about six steps: step 0.02, ends 0.44 and 0.56.
  EXPECT_EQ(group_texts(render_svg(one_series({1, 2, 3}, {0.5, 0.5, 0.5})), "y-ticks"),
            (std::vector<std::string>{"0.44", "0.46", "0.48", "0.50", "0.52", "0.54", "0.56"}));
  EXPECT_EQ(group_texts(render_svg(one_series({1, 2}, {0.31, 0.85})), "y-ticks"),
            (std::vector<std::string>{"0.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9"}));
}

TEST(SvgChart, TickAndSizeBoundaries) {
  const std::vector<double> units = linear_ticks(0.0, 10.0, 10);  // a raw step of exactly 1
  ASSERT_EQ(units.size(), 11u);
  for (std::size_t i = 0; i < units.size(); ++i) EXPECT_EQ(units[i], static_cast<double>(i));
  // Fixed notation below 1e6 and for steps from 1e-4; general notation (3 digits) otherwise.
  EXPECT_EQ(tick_label(8e5, 2e5, false), "800000");
  EXPECT_EQ(tick_label(1e6, 2e5, false), "1e+06");
  EXPECT_EQ(tick_label(0.1234, 1e-4, false), "0.1234");
  EXPECT_EQ(tick_label(0.1234, 5e-5, false), "0.123");
  // A step a rounding step below 1 still asks for no decimals.
  EXPECT_EQ(tick_label(3.0, std::nextafter(1.0, 0.0), false), "3");
  LineChart c = one_series({1, 2}, {1, 2});
  c.width = 200;
  c.height = 150;
  EXPECT_EQ(xml_problem(render_svg(c)), "") << "the smallest size allowed";
  c.height = 149;
  const std::string e = kestrel::testing::error_of([&] { render_svg(c); });
  EXPECT_NE(e.find("size 200x149 is too small (at least 200x150)"), std::string::npos) << e;
}
