// cifar10_train's plan (layers/train_program.h) where a mutation of layers/train_program.cpp went
// unseen by the program's tests: open range ends, options that must stay apart, the fields a
// library caller sets without naming them in `given`, and the CIFAR-10 caps of load_plan_data on
// a folder written here.
#include <gtest/gtest.h>

#include <sstream>
#include <string>

#include "error_text.h"
#include "temp_dir.h"
#include "kestrel/layers/cifar10.h"
#include "kestrel/layers/train_program.h"

using namespace kestrel;
using kestrel::testing::contains;
using kestrel::testing::error_of;

namespace {

std::string refusal(void (*set)(TrainOptions&)) {
  TrainOptions o;
  set(o);
  return error_of([&] { plan_training(o, "", false); });
}

}  // namespace

// Open ends are open: --lr 0, --momentum 1.
TEST(TrainPlanEdges, OpenRangeEndsAreRefused) {
  EXPECT_TRUE(contains(refusal([](TrainOptions& o) { o.lr = 0.0; }), "--lr must be in (0, 100], got 0"));
  EXPECT_TRUE(contains(refusal([](TrainOptions& o) { o.momentum = 1.0; }), "--momentum must be in [0, 1), got 1"));
  EXPECT_EQ(refusal([](TrainOptions& o) { o.momentum = 0.0; }), "(no error)");
}

// parse_optimizer_kind knows "none" (checkpoints of runs without an optimizer); a training run
// needs one, and the message lists the two it can take.
TEST(TrainPlanEdges, AnOptimizerIsNeeded) {
  EXPECT_TRUE(contains(refusal([](TrainOptions& o) { o.optimizer = "none"; }),
                  "--optimizer must be sgd or adamw, got 'none'"));
  const std::string unknown = refusal([](TrainOptions& o) { o.optimizer = "lion"; });
  EXPECT_TRUE(contains(unknown, "--optimizer must be sgd or adamw, got 'lion'")) << unknown;
}

// --width K gives the stem K channels as well as the stages K, 2K, 4K.
TEST(TrainPlanEdges, AWidthSetsTheStemToo) {
  TrainOptions o;
  o.width = 24;
  o.given.insert("width");
  const TrainPlan p = plan_training(o, "", false);
  EXPECT_EQ(p.trainer.net.stem_width, 24);
  EXPECT_EQ(p.trainer.net.widths, (std::vector<std::int64_t>{24, 48, 96}));
}

// A library caller's dropout of 0 replaces the model's own (WRN: 0.3) without naming it in
// `given`; a negative one keeps the model's.
TEST(TrainPlanEdges, ADropoutOfZeroReplacesTheModelsOwn) {
  TrainOptions o;
  o.model = "wrn";
  o.dropout = 0.0;
  EXPECT_FLOAT_EQ(plan_training(o, "", false).trainer.net.dropout, 0.f);
  o.dropout = -1.0;
  EXPECT_FLOAT_EQ(plan_training(o, "", false).trainer.net.dropout, 0.3f);
}

// --recompute-bn and --cuda-graph are read each from its own option, and deterministic
// convolutions (the default) are not autotuned: timing-based choices differ run to run.
TEST(TrainPlanEdges, RecomputeCudaGraphAndAutotuneAreTheirOwn) {
  TrainOptions o;
  o.recompute_bn = "off";
  TrainPlan p = plan_training(o, "", false);
  EXPECT_FALSE(p.trainer.recompute_bn_relu);
  EXPECT_TRUE(p.trainer.cuda_graph);
  EXPECT_TRUE(p.conv_policy.deterministic);
  EXPECT_FALSE(p.conv_policy.autotune);
  o.recompute_bn = "on";
  o.cuda_graph = "off";
  p = plan_training(o, "", false);
  EXPECT_TRUE(p.trainer.recompute_bn_relu);
  EXPECT_FALSE(p.trainer.cuda_graph);
}

// load_plan_data on a CIFAR-10 folder: caps cut each split to its first records and are said in
// the source; a cap of 0 keeps the whole split.
TEST(TrainPlanEdges, CapsKeepTheFirstRecordsOfEachSplit) {
  kestrel::testing::TempDir dir("train_plan_caps");
  const CifarDataset written = synthetic_cifar10(20, 8, 5);
  write_cifar10_dir(written, dir.path().string());
  TrainPlan plan;
  plan.synthetic = false;
  plan.data_dir = dir.path().string();
  std::ostringstream log;

  plan.train_images = 7;
  plan.test_images = 3;
  CifarDataset d = load_plan_data(plan, log);
  ASSERT_EQ(d.train.count, 7);
  ASSERT_EQ(d.test.count, 3);
  EXPECT_EQ(d.train.labels.size(), 7u);
  EXPECT_EQ(d.test.labels.size(), 3u);
  EXPECT_EQ(d.train.images.size(), 7u * kCifarImageBytes);
  EXPECT_EQ(d.test.images.size(), 3u * kCifarImageBytes);
  EXPECT_TRUE(std::equal(d.train.images.begin(), d.train.images.end(), written.train.images.begin()));
  EXPECT_TRUE(std::equal(d.train.labels.begin(), d.train.labels.end(), written.train.labels.begin()));
  EXPECT_TRUE(std::equal(d.test.labels.begin(), d.test.labels.end(), written.test.labels.begin()));
  EXPECT_TRUE(contains(d.source, "(first 7 train, 3 test images)")) << d.source;

  plan.train_images = 7;  // only the training split capped: the test split whole
  plan.test_images = 0;
  d = load_plan_data(plan, log);
  EXPECT_EQ(d.train.count, 7);
  EXPECT_EQ(d.test.count, 8);
  EXPECT_EQ(d.test.labels.size(), 8u);
  EXPECT_TRUE(contains(d.source, "(first 7 train, 8 test images)")) << d.source;

  plan.train_images = 0;
  plan.test_images = 100;  // more than the split holds: all of it
  d = load_plan_data(plan, log);
  EXPECT_EQ(d.train.count, 20);
  EXPECT_EQ(d.test.count, 8);
  EXPECT_TRUE(contains(d.source, "(first 20 train, 8 test images)")) << d.source;

  plan.test_images = 0;
  d = load_plan_data(plan, log);
  EXPECT_EQ(d.train.count, 20);
  EXPECT_FALSE(contains(d.source, "first")) << d.source;
}

// --data synthetic means synthetic data even where CIFAR-10 is on disk and a GPU would take it.
TEST(TrainPlanEdges, SyntheticDataWinsOverCifar10OnDisk) {
  TrainOptions o;
  o.data = "synthetic";
  o.given.insert("data");
  const TrainPlan p = plan_training(o, "", /*default_data_present=*/true);
  EXPECT_TRUE(p.synthetic);
  EXPECT_TRUE(p.data_dir.empty());
}

// The note about flips is for --flip auto only: a --flip off on synthetic data needs no note.
TEST(TrainPlanEdges, TheFlipNoteIsForAutoOnly) {
  const std::string note = "no random flips on synthetic data";
  TrainOptions o;
  o.data = "synthetic";
  bool noted = false;
  for (const std::string& n : plan_training(o, "", false).notes) noted = noted || contains(n, note);
  EXPECT_TRUE(noted);
  o.flip = "off";
  o.given.insert("flip");
  for (const std::string& n : plan_training(o, "", false).notes) EXPECT_FALSE(contains(n, note)) << n;
}
