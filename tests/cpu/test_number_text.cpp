// Numbers in files other programs read are written and parsed the same whatever locale the linking
// program sets (core/number_text_internal.h). Under a German LC_NUMERIC, printf writes "0,1" and
// strtof stops at '.': a checkpoint written under the C locale then failed to load ("lr" is
// "0.100000001", not a number), and one written under de_DE stored "0,100000001".
#include <gtest/gtest.h>

#include <clocale>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <random>
#include <string>

#include "kestrel/core/executor.h"
#include "kestrel/core/number_text_internal.h"
#include "kestrel/layers/checkpoint.h"
#include "kestrel/layers/experiments/common.h"
#include "kestrel/layers/nn.h"
#include "kestrel/layers/svg_chart.h"
#include "temp_dir.h"

using namespace kestrel;

TEST(NumberText, FormatsAsPrintfInTheCLocaleAndParsesWholeStringsOnly) {
  EXPECT_EQ(detail::general_text(0.1, 17), "0.10000000000000001");
  EXPECT_EQ(detail::general_text(1e-5, 3), "1e-05");
  EXPECT_EQ(detail::general_text(123456.0, 3), "1.23e+05");
  EXPECT_EQ(detail::fixed_text(2.5, 2), "2.50");
  EXPECT_EQ(detail::fixed_text(-0.004, 2), "-0.00");
  EXPECT_EQ(detail::shortest_float_text(0.3f), "0.3");
  EXPECT_EQ(detail::shortest_float_text(0.1f), "0.1");
  EXPECT_EQ(detail::shortest_float_text(16777217.f), "16777216");
  EXPECT_EQ(detail::shortest_double_text(0.9), "0.9");
  EXPECT_EQ(detail::shortest_double_text(0.75), "0.75");
  EXPECT_EQ(detail::shortest_double_text(0.1 + 0.2), "0.30000000000000004");  // 17 digits needed
  float f = -1.f;
  EXPECT_TRUE(detail::parse_float("0.100000001", &f));
  EXPECT_EQ(f, 0.1f);
  EXPECT_TRUE(detail::parse_float("+2.5e-3", &f));
  EXPECT_EQ(f, 2.5e-3f);
  double d = 0.0;
  EXPECT_TRUE(detail::parse_double("inf", &d));
  EXPECT_TRUE(std::isinf(d));
  for (const char* bad : {"", "0,1", "1x", " 1", "1 ", "--1", "+-1", "++1", "+", "0x10", "1e999"}) {
    d = 7.0;
    EXPECT_FALSE(detail::parse_double(bad, &d)) << "'" << bad << "'";
    EXPECT_EQ(d, 7.0) << "untouched on failure";
  }
}

namespace {
template <typename To, typename From>
To bits_as(From from) {
  static_assert(sizeof(To) == sizeof(From), "same size");
  To to;
  std::memcpy(&to, &from, sizeof to);
  return to;
}

std::string printf_text(const char* format, int digits, double v) {
  const int n = std::snprintf(nullptr, 0, format, digits, v);
  std::string s(static_cast<std::size_t>(n) + 1, '\0');
  std::snprintf(s.data(), s.size(), format, digits, v);
  s.resize(static_cast<std::size_t>(n));
  return s;
}

// The documented rule computed with printf and strtof / strtod (this process runs in the C locale).
std::string reference_shortest_float(float v) {
  for (int d = 6; d < 9; ++d) {
    const std::string s = printf_text("%.*g", d, v);
    if (std::strtof(s.c_str(), nullptr) == v) return s;
  }
  return printf_text("%.*g", 9, v);
}
std::string reference_shortest_double(double v) {
  for (int d = 1; d < 17; ++d) {
    const std::string s = printf_text("%.*g", d, v);
    if (std::strtod(s.c_str(), nullptr) == v) return s;
  }
  return printf_text("%.*g", 17, v);
}
}  // namespace

// The shortest text starts at printf's precision 6 for floats and 1 for doubles: a float that
// reads back from 6 digits gets those even where 7 would print without an exponent
// (9455150.f -> "9.45515e+06", not "9455150"), and 10.0 is "%.1g"'s "1e+01". On random bit
// patterns (fixed seed) and those two, against the rule computed with printf.
TEST(NumberText, ShortestTextIsTheFirstPrecisionThatReadsBackAsPrintfWritesIt) {
  EXPECT_EQ(detail::shortest_float_text(9455150.f), "9.45515e+06");
  EXPECT_EQ(detail::shortest_double_text(10.0), "1e+01");
  std::mt19937_64 rng(20261129);
  int floats = 0, doubles = 0;
  while (floats < 20000 || doubles < 20000) {
    const std::uint64_t bits = rng();
    const float f = bits_as<float>(static_cast<std::uint32_t>(bits));
    if (std::isfinite(f) && floats < 20000) {
      ASSERT_EQ(detail::shortest_float_text(f), reference_shortest_float(f)) << "bits " << std::hex << (bits & 0xffffffffu);
      ++floats;
    }
    // Doubles of every magnitude, and short decimals (k / 2^j), which need few digits.
    const double d = (bits & 1) != 0 ? bits_as<double>(bits) : static_cast<double>(bits % 100000) / 1024.0;
    if (std::isfinite(d) && doubles < 20000) {
      ASSERT_EQ(detail::shortest_double_text(d), reference_shortest_double(d)) << "bits " << std::hex << bits;
      ++doubles;
    }
  }
}

// printf's "%.<digits>f" however long the text: 1e300 has 301 integer digits, and the largest
// double with 100 decimals is over 400 characters (the buffer once held 400 and fell back to
// "%.17g", breaking the promise).
TEST(NumberText, FixedTextOfTheLargestNumbersIsPrintfs) {
  const double max = std::numeric_limits<double>::max();
  for (const double v : {1e300, -1e300, max, -max, 1.5e-300, 123.456})
    for (const int digits : {0, 2, 17, 100, 400}) {
      const std::string want = printf_text("%.*f", digits, v);
      EXPECT_EQ(detail::fixed_text(v, digits), want) << v << " with " << digits << " digits";
      EXPECT_EQ(detail::general_text(v, digits), printf_text("%.*g", digits, v)) << v << " with " << digits;
    }
  EXPECT_GT(detail::fixed_text(max, 100).size(), 400u);
}

namespace {
// Builds a German locale with localedef into a temporary folder (no system locale needed) and
// selects it for LC_NUMERIC; false when this machine cannot (no localedef or locale sources).
bool use_german_numbers(const kestrel::testing::TempDir& dir) {
  const std::string out = dir / "de_DE.UTF-8";
  const std::string cmd = "localedef -i de_DE -f UTF-8 '" + out + "' >/dev/null 2>&1";
  (void)std::system(cmd.c_str());  // warnings give a non-zero status with a usable locale
  if (!std::filesystem::exists(out)) return false;
  ::setenv("LOCPATH", dir.path().c_str(), 1);
  const bool ok = std::setlocale(LC_NUMERIC, "de_DE.UTF-8") != nullptr;
  char buf[16];
  std::snprintf(buf, sizeof buf, "%.1f", 0.5);
  return ok && std::string(buf) == "0,5";
}

struct RestoreCLocale {
  ~RestoreCLocale() {
    std::setlocale(LC_NUMERIC, "C");
    ::unsetenv("LOCPATH");
  }
};
}  // namespace

TEST(NumberText, CheckpointsCsvAndSvgIgnoreTheProgramsLocale) {
  kestrel::testing::TempDir dir("number_locale");
  Context ctx;
  Graph g;
  const Value x = g.input("x", {Shape{1, 3}});
  g.set_loss(nn::softmax_cross_entropy(g, nn::linear(g, "fc", x, 2), nn::label_input(g, "labels")));
  ParameterStore store(g, ctx, 3);
  store.set_learning_rate(0.1f);
  const std::string c_locale_file = dir / "c.safetensors";
  save_checkpoint(store, c_locale_file, {});

  RestoreCLocale restore;
  if (!use_german_numbers(dir)) GTEST_SKIP() << "cannot build a de_DE locale here (localedef)";
  // Written under C, read under de_DE.
  ParameterStore other(g, ctx, 3);
  load_checkpoint(read_safetensors(c_locale_file), other, {}, c_locale_file);
  EXPECT_EQ(other.read_counters().learning_rate, 0.1f);
  // Written under de_DE: a '.' in the file.
  const std::string de_file = dir / "de.safetensors";
  save_checkpoint(store, de_file, {});
  EXPECT_EQ(checkpoint_metadata(read_safetensors(de_file), "lr"), "0.1");
  // Tables and charts.
  EXPECT_EQ(experiments::CsvTable::cell(0.25), "0.25");
  LineChart chart;
  chart.title = "t";
  chart.series.push_back({"s", {0.5, 1.5}, {0.25, 0.75}});
  const std::string svg = render_svg(chart);
  EXPECT_EQ(svg.find(",5"), std::string::npos) << "a decimal comma in the SVG";
  EXPECT_NE(svg.find("0.5"), std::string::npos);
}
