// The benchmark harness' JSON lines (python_free_examples/bench/harness.h): every line must parse,
// because tools/gpu_summary.py skips a line that does not, and with it a benchmark row.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>

#include <nlohmann/json.hpp>

#include "harness.h"
#include "kestrel/core/error.h"

namespace {

using kestrel::bench::json_line;
using nlohmann::json;
using nlohmann::ordered_json;

TEST(BenchJson, ALineStartsWithImplAndDeviceAndKeepsTheFieldsInOrder) {
  const std::string line = json_line("NVIDIA H200", ordered_json{{"bench", "dropout_fwd"},
                                                                {"config", "fp32 64M p=0.5"},
                                                                {"median_us", 188.25},
                                                                {"workspace_in_arena", true},
                                                                {"untuned_conv_plans", 3}});
  EXPECT_EQ(line.find('\n'), std::string::npos);  // one line
  const ordered_json parsed = ordered_json::parse(line);
  std::string keys;
  for (auto it = parsed.begin(); it != parsed.end(); ++it) keys += it.key() + ",";
  EXPECT_EQ(keys, "impl,device,bench,config,median_us,workspace_in_arena,untuned_conv_plans,");
  EXPECT_EQ(parsed["impl"], "kestrel");
  EXPECT_EQ(parsed["device"], "NVIDIA H200");
  EXPECT_EQ(parsed["config"], "fp32 64M p=0.5");
  EXPECT_DOUBLE_EQ(parsed["median_us"].get<double>(), 188.25);
  EXPECT_EQ(parsed["workspace_in_arena"], true);
  EXPECT_EQ(parsed["untuned_conv_plans"], 3);
}

// A 0 us median (below the events' resolution) makes the rate infinite; printf wrote "inf",
// which is not JSON. Such numbers are written as null, which gpu_summary.py prints as "-".
TEST(BenchJson, NumbersThatAreNotFiniteBecomeNull) {
  const double inf = std::numeric_limits<double>::infinity();
  const json parsed = json::parse(json_line(
      "dev", ordered_json{{"gbps", inf}, {"pct_copy", -inf}, {"x", std::nan("")}, {"median_us", 0.0}}));
  EXPECT_TRUE(parsed["gbps"].is_null());
  EXPECT_TRUE(parsed["pct_copy"].is_null());
  EXPECT_TRUE(parsed["x"].is_null());
  EXPECT_EQ(parsed["median_us"], 0.0);
}

TEST(BenchJson, QuotesAndControlCharactersInNamesAreEscaped) {
  const std::string device = "GPU \"x\"\n\\";
  const std::string line = json_line(device, ordered_json{{"config", "tab\there"}});
  EXPECT_EQ(line.find('\n'), std::string::npos);
  const json parsed = json::parse(line);
  EXPECT_EQ(parsed["device"], device);
  EXPECT_EQ(parsed["config"], "tab\there");
}

TEST(BenchJson, InvalidUtf8InADeviceNameIsReplacedNotThrown) {
  const json parsed = json::parse(json_line("bad \xff name", ordered_json{{"bench", "copy"}}));
  EXPECT_EQ(parsed["device"], "bad \xEF\xBF\xBD name");  // U+FFFD
}

TEST(BenchJson, FieldsThatAreNotAnObjectAreAnError) {
  EXPECT_THROW(json_line("dev", ordered_json::array({1, 2})), kestrel::Error);
}

}  // namespace
