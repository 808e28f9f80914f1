// The shared pieces of the seed experiments (layers/experiments/common.h): image features
// (centre crop, block averaging, per-channel normalisation) against sums written here, batch
// feeding with wrap-around, accuracy over a split with a partial last batch, the device-resident
// feed against the host one, and CSV text.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <utility>

#include "error_text.h"
#include "grad_check.h"
#include "temp_dir.h"
#include "kestrel/core/executor.h"
#include "kestrel/layers/experiments/common.h"
#include "kestrel/layers/nn.h"
#include "kestrel/layers/file_io_internal.h"
#include "kestrel/layers/output_files.h"

using namespace kestrel;
using namespace kestrel::experiments;
using kestrel::testing::error_of;

namespace {
// Pixel (c, y, x) of image i: a pattern that differs per image, channel and position.
std::uint8_t pixel(std::int64_t i, int c, int y, int x) {
  return static_cast<std::uint8_t>((i * 31 + c * 67 + y * 7 + x * 3) % 251);
}

CifarDataset tiny(std::int64_t n_train, std::int64_t n_test) {
  CifarDataset d;
  for (CifarSplit* s : {&d.train, &d.test}) {
    const std::int64_t n = s == &d.train ? n_train : n_test;
    const std::int64_t base = s == &d.train ? 0 : 100;
    s->count = n;
    for (std::int64_t i = 0; i < n; ++i) {
      s->labels.push_back(static_cast<std::uint8_t>((i * 3) % 10));
      for (int c = 0; c < 3; ++c)
        for (int y = 0; y < 32; ++y)
          for (int x = 0; x < 32; ++x) s->images.push_back(pixel(base + i, c, y, x));
    }
  }
  d.source = "tiny";
  return d;
}
}  // namespace

TEST(ExperimentSupport, FeaturesAreCroppedPooledAndNormalised) {
  const FloatDataset f = to_float_dataset(tiny(3, 2), 3, 2, 8, 2);  // centre 8x8, 2x2 means: 4x4
  EXPECT_EQ(f.train.side, 4);
  EXPECT_EQ(f.train.features(), 48);
  ASSERT_EQ(f.test.x.size(), 2u * 48u);
  for (int c = 0; c < 3; ++c) {
    // Channel statistics over the three whole training images.
    double s = 0, s2 = 0;
    for (int i = 0; i < 3; ++i)
      for (int y = 0; y < 32; ++y)
        for (int x = 0; x < 32; ++x) {
          const double v = pixel(i, c, y, x) / 255.0;
          s += v;
          s2 += v * v;
        }
    const double mean = s / 3072.0, sd = std::sqrt(s2 / 3072.0 - mean * mean);
    for (int y = 0; y < 4; ++y)
      for (int x = 0; x < 4; ++x) {
        // Test image 1 is pattern index 101; the crop starts at pixel 12.
        double sum = 0;
        for (int dy = 0; dy < 2; ++dy)
          for (int dx = 0; dx < 2; ++dx) sum += pixel(101, c, 12 + 2 * y + dy, 12 + 2 * x + dx);
        const double want = (sum / 4.0 / 255.0 - mean) / sd;
        EXPECT_NEAR(f.test.x[static_cast<std::size_t>(48 + (c * 4 + y) * 4 + x)], want, 1e-5) << c << y << x;
      }
  }
  EXPECT_EQ(f.test.y, (std::vector<std::int32_t>{0, 3}));
  EXPECT_NE(error_of([] { to_float_dataset(tiny(3, 2), 4, 2, 8, 2); }).find("asked for 4 training"), std::string::npos);
  EXPECT_NE(error_of([] { to_float_dataset(tiny(3, 2), 3, 2, 8, 3); }).find("crop 8 and pool 3"), std::string::npos);
}

// A channel of tiny but non-zero spread is scaled by its own standard deviation (the floor under
// the variance only keeps a constant channel from dividing by zero): channel 0 of every training
// image alternates the levels 100 and 101 by column, so its mean is 100.5/255, its deviation
// 0.5/255 and each of its features -1 or +1 (fp32 arithmetic on values near 0.4 divided by 0.002:
// 1e-3 covers it). A crop larger than the 32x32 image is refused.
TEST(ExperimentSupport, ANearlyConstantChannelIsScaledByItsOwnSpreadAndACropMustFitTheImage) {
  CifarDataset d = tiny(4, 1);
  for (CifarSplit* s : {&d.train, &d.test})
    for (std::int64_t i = 0; i < s->count; ++i)
      for (int p = 0; p < 1024; ++p) s->images[static_cast<std::size_t>(i * 3072 + p)] = static_cast<std::uint8_t>(100 + p % 2);
  const FloatDataset f = to_float_dataset(d, 4, 1, 32, 1);
  for (const FloatImages* split : {&f.train, &f.test})
    for (int p = 0; p < 1024; ++p)
      ASSERT_NEAR(split->x[static_cast<std::size_t>(p)], p % 2 == 0 ? -1.0 : 1.0, 1e-3) << "feature " << p;
  EXPECT_NE(error_of([] { to_float_dataset(tiny(3, 2), 3, 2, 34, 2); }).find("crop 34 and pool 2"), std::string::npos);
  EXPECT_NO_THROW(to_float_dataset(tiny(3, 2), 3, 2, 32, 2));
}

// Half the L1 distance between two distributions, on closed forms.
TEST(ExperimentSupport, TotalVariationIsHalfTheL1Distance) {
  const double a[3] = {1, 0, 0}, b[3] = {0, 1, 0}, c[3] = {0.5, 0.25, 0.25};
  EXPECT_EQ(total_variation(a, b, 3), 1.0);
  EXPECT_EQ(total_variation(c, c, 3), 0.0);
  EXPECT_DOUBLE_EQ(total_variation(a, c, 3), 0.5);
  EXPECT_DOUBLE_EQ(total_variation(c, b, 3), 0.75);
}

TEST(ExperimentSupport, FeedBatchWrapsAndAccuracyCountsOnlyRealImages) {
  const FloatDataset f = to_float_dataset(tiny(5, 5), 5, 5, 2, 1);  // 12 features
  Graph g(kestrel::testing::graph_options(4));
  const Value x = g.input("x", {Shape{4, 12}});
  nn::label_input(g, "labels");
  // The "logits" are the first 10 features, so the prediction is their argmax.
  const std::vector<Value> parts = nn::split(g, x, {10, 2});
  g.mark_output(parts[0], "logits");
  Context ctx;
  ParameterStore store(g, ctx, 1);
  CompileOptions co;
  co.training = false;
  Executor ex(g, store, ctx, co);
  feed_batch(ex, f.train, {4, 1, 3}, 2, "x", "labels");  // order positions 2, 0, 1, 2 -> images 3, 4, 1, 3
  const std::vector<float> fed = ex.input("x").to_float_vector();
  const std::vector<std::int32_t> want_images = {3, 4, 1, 3};
  for (std::size_t b = 0; b < want_images.size(); ++b) {
    for (int k = 0; k < 12; ++k)
      EXPECT_EQ(fed[b * 12 + k], f.train.x[static_cast<std::size_t>(want_images[b] * 12 + k)]);
    EXPECT_EQ(ex.input("labels").data_as<std::int32_t>()[b], f.train.y[static_cast<std::size_t>(want_images[b])]);
  }
  // Accuracy over 5 test images with batch 4: the second batch holds one real image.
  std::int64_t correct = 0;
  for (std::int64_t i = 0; i < 5; ++i) {
    const auto row = f.test.x.begin() + i * 12;
    correct += (std::max_element(row, row + 10) - row) == f.test.y[static_cast<std::size_t>(i)];
  }
  EXPECT_DOUBLE_EQ(accuracy(ex, f.test, "x", "labels", "logits"), static_cast<double>(correct) / 5.0);
  EXPECT_NE(error_of([&] { feed_batch(ex, f.train, {}, 0, "x", "labels"); }).find("feed_batch: no images to feed"),
            std::string::npos);
}

TEST(ExperimentSupport, DeviceResidentFeedGathersWhatTheHostFeedCopiesInEveryDtypeAndLayout) {
  const FloatDataset f = to_float_dataset(tiny(5, 5), 5, 5, 4, 1);  // 3x4x4 images, 48 features
  for (const auto& [dtype, layout] : {std::pair{DType::kFloat32, Layout::kNCHW}, std::pair{DType::kBFloat16, Layout::kNHWC}}) {
    GraphOptions o = kestrel::testing::graph_options(4, layout);
    o.dtype = dtype;
    Graph g(o);
    const Value x = nn::image_input(g, "x", 3, 4, 4);
    nn::label_input(g, "labels");
    g.mark_output(nn::split(g, nn::flatten(g, x), {10, 38})[0], "logits");  // argmax of 10 features
    Context ctx;
    ParameterStore store(g, ctx, 1);
    CompileOptions co;
    co.training = false;
    Executor ex(g, store, ctx, co);
    const DeviceImages d = upload_images(f.train, dtype, layout, ctx);
    EXPECT_EQ(d.x.dtype(), dtype);
    EXPECT_EQ(d.x.layout(), layout);
    std::vector<std::int32_t> positions = {4, 1, 3, 2, 0};
    const Tensor order = Tensor::wrap(positions.data(), Shape{5}, DType::kInt32, Device::cpu());
    feed_batch(ex, d, order, 1, "x", "labels");  // images 1, 3, 2, 0
    const Tensor gathered = Tensor::from_vector(ex.input("x").to_float_vector(), ex.input("x").shape(), dtype, layout);
    const std::vector<std::int32_t> labels(ex.input("labels").data_as<std::int32_t>(),
                                           ex.input("labels").data_as<std::int32_t>() + 4);
    feed_batch(ex, f.train, {1, 3, 2, 0}, 0, "x", "labels");  // the host path, converted per batch
    const Tensor copied = ex.input("x");
    EXPECT_EQ(std::memcmp(gathered.data(), copied.data(), copied.nbytes()), 0) << dtype_name(dtype);
    EXPECT_EQ(labels, (std::vector<std::int32_t>{f.train.y[1], f.train.y[3], f.train.y[2], f.train.y[0]}));
    const DeviceImages t = upload_images(f.test, dtype, layout, ctx);
    EXPECT_DOUBLE_EQ(accuracy(ex, t, "x", "labels", "logits"), accuracy(ex, f.test, "x", "labels", "logits"));
    EXPECT_NE(error_of([&] { feed_batch(ex, d, order, 2, "x", "labels"); }).find("has no positions 2..5"),
              std::string::npos);
    const DeviceImages other = upload_images(f.train, dtype == DType::kFloat32 ? DType::kBFloat16 : DType::kFloat32,
                                             layout, ctx);
    EXPECT_NE(error_of([&] { feed_batch(ex, other, order, 0, "x", "labels"); }).find("does not take images"),
              std::string::npos);
    DeviceImages narrow = d;  // as high as the input takes, but 2 pixels wide
    narrow.x = Tensor::from_vector(std::vector<float>(5 * 3 * 4 * 2, 0.5f), Shape{5, 3, 4, 2}, dtype, layout);
    EXPECT_NE(error_of([&] { feed_batch(ex, narrow, order, 0, "x", "labels"); }).find("does not take images"),
              std::string::npos);
    // Labels that are the network's own predictions: every image counts, the one in the last,
    // partial batch included, on the device and on the host alike.
    FloatImages right = f.test;
    for (const std::int64_t first : {0, 4}) {
      feed_batch(ex, f.test, first == 0 ? std::vector<std::int32_t>{0, 1, 2, 3} : std::vector<std::int32_t>{4}, 0,
                 "x", "labels");
      ex.run();
      const std::vector<float> logits = ex.output("logits").to_float_vector();
      for (std::int64_t b = 0; b < (first == 0 ? 4 : 1); ++b) {
        const auto row = logits.begin() + b * 10;
        right.y[static_cast<std::size_t>(first + b)] = static_cast<std::int32_t>(std::max_element(row, row + 10) - row);
      }
    }
    EXPECT_EQ(accuracy(ex, upload_images(right, dtype, layout, ctx), "x", "labels", "logits"), 1.0);
    EXPECT_EQ(accuracy(ex, right, "x", "labels", "logits"), 1.0);
  }
}

TEST(ExperimentSupport, CsvQuotesTextAndSpellsNonFiniteNumbers) {
  CsvTable t({"name", "value"});
  t.add_row({"plain", CsvTable::cell(0.125)});
  t.add_row({"with, comma \"quoted\"", CsvTable::cell(NAN)});
  t.add_row({"x", CsvTable::cell(-INFINITY)});
  t.add_row({"a\rb", "c\nd"});  // line breaks of either kind are quoted (RFC 4180)
  EXPECT_EQ(t.text(), "name,value\nplain,0.125\n\"with, comma \"\"quoted\"\"\",nan\nx,-inf\n\"a\rb\",\"c\nd\"\n");
  EXPECT_NE(error_of([&] { t.add_row({"one"}); }).find("1 cells for 2 columns"), std::string::npos);
  kestrel::testing::TempDir dir("csv_table");
  kestrel::detail::make_directories(dir / "a/b");
  t.write(dir / "a/b/t.csv");
  const std::vector<std::uint8_t> bytes = kestrel::testing::read_bytes(dir / "a/b/t.csv");
  EXPECT_EQ(std::string(bytes.begin(), bytes.end()), t.text());
  EXPECT_DOUBLE_EQ(l2_norm({3.f, 4.f}), 5.0);
  // Numbers keep their precision to well past a float's 7 digits of interest (within 1e-7).
  for (double v : {1.2345678, 0.0012345678, 98765.4321})
    EXPECT_NEAR(std::stod(CsvTable::cell(v)), v, std::abs(v) * 1e-7) << CsvTable::cell(v);
}

TEST(ExperimentSupport, ReportFolderHandsOutPresentPartsAndRemovesStaleOnes) {
  kestrel::testing::TempDir dir("report_folder");
  const std::string root = dir / "reports/run";
  {
    ReportFolder first(root);  // creates the folder and its parents
    for (const char* name : {"a.svg", "b.svg", "b.csv"}) {
      const std::string p = first.file(name, true);
      ASSERT_EQ(p, root + "/" + name);
      CsvTable({"x"}).write(p);
    }
    EXPECT_EQ(first.written().size(), 3u);
  }
  ReportFolder second(root);
  EXPECT_EQ(second.file("a.svg", true), root + "/a.svg");
  EXPECT_EQ(second.file("b.svg", false), "") << "absent part";
  EXPECT_EQ(second.file("never.csv", false), "") << "nothing to remove is fine";
  EXPECT_EQ(second.written(), std::vector<std::string>{root + "/a.svg"});
  EXPECT_TRUE(std::ifstream(root + "/a.svg").good()) << "a present part is left for its writer";
  EXPECT_FALSE(std::ifstream(root + "/b.svg").good()) << "an earlier run's copy of an absent part is removed";
  EXPECT_TRUE(std::ifstream(root + "/b.csv").good()) << "only the file asked about";
  // A path that cannot be removed (a non-empty folder) is an error naming it.
  kestrel::detail::make_directories(root + "/full.svg/inside");
  EXPECT_NE(error_of([&] { second.file("full.svg", false); }).find(root + "/full.svg"), std::string::npos);
}

// Outputs checked before long work: a file's folder must exist and take new files, a folder is
// created when missing; nothing is left behind by the probe.
TEST(OutputFiles, FoldersAreProbedAndNothingIsLeftBehind) {
  kestrel::testing::TempDir dir("output_files");
  EXPECT_NO_THROW(kestrel::check_output_file("", "--log")) << "no output asked for";
  EXPECT_NO_THROW(kestrel::check_output_file(dir / "ck.safetensors", "--checkpoint"));
  EXPECT_TRUE(dir.entries().empty()) << "the probe file was left, or the file itself was created";
  const std::string missing = error_of([&] { kestrel::check_output_file(dir / "no/ck.safetensors", "--checkpoint"); });
  EXPECT_NE(missing.find("--checkpoint " + (dir / "no/ck.safetensors") + ": folder " + (dir / "no") + " does not exist"),
            std::string::npos) << missing;
  const std::string folder = error_of([&] { kestrel::check_output_file(dir.path().string(), "--log"); });
  EXPECT_NE(folder.find("is a folder, not a file"), std::string::npos) << folder;
  EXPECT_NE(error_of([&] { kestrel::check_output_file("/proc/kestrel.jsonl", "--log"); }).find("cannot create files in folder /proc"),
            std::string::npos);
  kestrel::check_output_folder(dir / "a/b", "--out");
  EXPECT_TRUE(std::filesystem::is_directory(dir / "a/b"));
  EXPECT_TRUE(std::filesystem::is_empty(dir / "a/b"));
  CsvTable({"x"}).write(dir / "file");
  EXPECT_NE(error_of([&] { kestrel::check_output_folder(dir / "file", "--out"); }).find("--out " + (dir / "file") + ": cannot create the folder"),
            std::string::npos);
  EXPECT_NE(error_of([&] { kestrel::check_output_folder("/proc/kestrel-out", "--out"); }).find("cannot create the folder"),
            std::string::npos);
}
