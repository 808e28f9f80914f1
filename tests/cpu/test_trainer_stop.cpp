// A stop request (TrainerConfig::stop_requested, what cifar10_train's SIGINT / SIGTERM handler
// answers) ends train() at a step boundary with the checkpoint written, and resuming from it
// reproduces the uninterrupted run bit for bit: mid-epoch, and after an epoch's last step (where
// the run stops after the epoch's evaluation, so that every epoch is evaluated once, in one run or
// the other). The request comes on a chosen call, so it lands at a known step.
#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "temp_dir.h"
#include "test_support.h"
#include "tiny_trainer.h"
#include "kestrel/layers/checkpoint.h"
#include "kestrel/layers/trainer.h"

using namespace kestrel;

namespace {
const CifarDataset& data() {
  static const CifarDataset d = synthetic_cifar10(160, 40, 2);  // 10 steps of 16 an epoch
  return d;
}

// A request that answers true on its n-th call (1-based) and after.
std::function<bool()> true_on_call(int n) {
  auto calls = std::make_shared<int>(0);
  return [calls, n] { return ++*calls >= n; };
}
}  // namespace

TEST(TrainerStop, AStopRequestEndsTheRunWithACheckpointThatResumesExactly) {
  TrainerConfig c = kestrel::testing::tiny_trainer_config(4, 16, 3);
  c.seed = 5;
  TrainResult whole;
  {
    Context ctx;
    std::ostringstream out;
    Trainer t(c, data(), ctx, out);
    whole = t.train();
  }
  ASSERT_EQ(whole.losses.size(), 20u);
  ASSERT_FALSE(whole.interrupted);
  // Calls: before each of the 10 steps of epoch 1, after its last step, then before each step of
  // epoch 2. Call 15 comes before global step 14 (13 done); call 11 after epoch 1's last step.
  struct Case {
    int call;
    std::int64_t steps;
    std::size_t epochs_done;
    const char* what;
  };
  for (const Case& k : {Case{15, 13, 1, "mid-epoch"}, Case{11, 10, 1, "after an epoch's last step"}}) {
    SCOPED_TRACE(k.what);
    kestrel::testing::TempDir dir("trainer_stop");
    TrainerConfig stopping = c;
    stopping.checkpoint_path = dir / "ck.safetensors";
    stopping.stop_requested = true_on_call(k.call);
    TrainResult first;
    {
      Context ctx;
      std::ostringstream out;
      Trainer t(stopping, data(), ctx, out);
      first = t.train();
      EXPECT_NE(out.str().find("stopped after step " + std::to_string(k.steps) + " (stop requested)"),
                std::string::npos)
          << out.str();
    }
    EXPECT_TRUE(first.interrupted);
    EXPECT_FALSE(first.finished);
    EXPECT_EQ(first.steps_done, k.steps);
    EXPECT_EQ(first.epochs.size(), k.epochs_done) << "epochs finished before the stop are evaluated";
    const SafetensorsFile ck = read_safetensors(dir / "ck.safetensors");
    EXPECT_EQ(checkpoint_metadata(ck, "step"), std::to_string(k.steps));

    Context ctx;
    std::ostringstream out;
    Trainer t(c, data(), ctx, out, &ck, "ck.safetensors");
    const TrainResult second = t.train();
    EXPECT_TRUE(second.finished);
    EXPECT_FALSE(second.interrupted);
    std::vector<float> joined = first.losses;
    joined.insert(joined.end(), second.losses.begin(), second.losses.end());
    EXPECT_TRUE(kestrel::testing::bit_equal(joined, whole.losses));
    // Each epoch is reported once, by one run or the other, as the uninterrupted run reports it
    // (an epoch stopped after its last step was once never evaluated, even after the resume).
    std::vector<EpochResult> epochs = first.epochs;
    epochs.insert(epochs.end(), second.epochs.begin(), second.epochs.end());
    ASSERT_EQ(epochs.size(), whole.epochs.size());
    for (std::size_t e = 0; e < epochs.size(); ++e) {
      EXPECT_EQ(epochs[e].epoch, whole.epochs[e].epoch);
      EXPECT_EQ(epochs[e].train_loss, whole.epochs[e].train_loss) << "epoch " << e + 1;
      EXPECT_EQ(epochs[e].test_accuracy, whole.epochs[e].test_accuracy) << "epoch " << e + 1;
    }
  }
}

TEST(TrainerStop, ARequestBeforeTheFirstStepRunsNothingAndWritesNothing) {
  kestrel::testing::TempDir dir("trainer_stop_early");
  TrainerConfig c = kestrel::testing::tiny_trainer_config(4, 16, 3);
  c.checkpoint_path = dir / "ck.safetensors";
  c.stop_requested = [] { return true; };
  Context ctx;
  std::ostringstream out;
  Trainer t(c, data(), ctx, out);
  const TrainResult r = t.train();
  EXPECT_TRUE(r.interrupted);
  EXPECT_EQ(r.steps_done, 0);
  EXPECT_TRUE(r.losses.empty());
  EXPECT_FALSE(std::filesystem::exists(dir / "ck.safetensors"));
}

// A stop request that arrives during the last epoch's last step finds the run complete: it ends
// finished (not interrupted), with every step done (trainer.cpp: the request stops a run "after
// the epoch's evaluation and checkpoint: a resumed run starts with the next epoch" - there is none).
TEST(TrainerStop, AStopRequestAfterTheLastStepLeavesTheRunFinished) {
  TrainerConfig c = kestrel::testing::tiny_trainer_config(2, 16, 4);
  c.evaluate = false;
  c.epochs = 2;
  const CifarDataset data = synthetic_cifar10(32, 0, 5);  // 2 steps an epoch, 4 in all
  const Trainer* self = nullptr;
  c.stop_requested = [&self] { return self != nullptr && self->global_step() >= 4; };
  Context ctx;
  std::ostringstream out;
  Trainer t(c, data, ctx, out);
  self = &t;
  const TrainResult r = t.train();
  EXPECT_TRUE(r.finished);
  EXPECT_FALSE(r.interrupted);
  EXPECT_EQ(r.steps_done, 4);
  EXPECT_EQ(r.epochs.size(), 2u);
}

// evaluate(stop_requested) asks before each evaluation batch (40 test images in batches of 16:
// three, the last with 8 real rows) and ends at the first true answer with the images done so
// far and no accuracy. A stopped evaluation changes nothing the trainer keeps: a later complete
// evaluation and the next training steps are those of a trainer whose evaluation was not stopped.
TEST(TrainerStop, AStopDuringEvaluationEndsItAtTheNextBatch) {
  TrainerConfig c = kestrel::testing::tiny_trainer_config(4, 16, 1);
  c.evaluate = false;
  c.max_steps = 2;
  Context ctx, ref_ctx;
  std::ostringstream out, ref_out;
  Trainer t(c, data(), ctx, out), ref(c, data(), ref_ctx, ref_out);
  t.train();
  ref.train();
  const double whole = ref.evaluate();
  ASSERT_GT(whole, 0.0);
  ASSERT_EQ(t.evaluate(), whole);

  struct Case {
    int stop_on_call;  // 0: never
    std::int64_t images;
  };
  for (const Case& k : {Case{1, 0}, Case{2, 16}, Case{3, 32}, Case{0, 40}}) {
    SCOPED_TRACE("stop on call " + std::to_string(k.stop_on_call));
    int calls = 0;
    const EvalResult e = t.evaluate([&] { return ++calls == k.stop_on_call; });
    EXPECT_EQ(e.images, k.images);
    EXPECT_EQ(e.stopped, k.stop_on_call != 0);
    EXPECT_EQ(calls, k.stop_on_call != 0 ? k.stop_on_call : 3) << "asked once before each batch";
    if (k.stop_on_call != 0) {
      EXPECT_EQ(e.accuracy, -1.0) << "a part of the test set is not its accuracy";
    } else {
      EXPECT_EQ(e.accuracy, whole);
    }
    EXPECT_EQ(t.evaluate(), whole) << "a stopped evaluation leaves no count behind";
  }
  const EvalResult unasked = t.evaluate(std::function<bool()>());
  EXPECT_EQ(unasked.accuracy, whole);
  EXPECT_EQ(unasked.images, 40);

  t.set_max_steps(4);
  ref.set_max_steps(4);
  EXPECT_TRUE(kestrel::testing::bit_equal(t.train().losses, ref.train().losses)) << "training goes on unchanged";

  const CifarDataset no_test = synthetic_cifar10(32, 0, 5);
  Context empty_ctx;
  Trainer empty(c, no_test, empty_ctx, out);
  bool asked = false;
  const EvalResult none = empty.evaluate([&] { return asked = true; });
  EXPECT_EQ(none.accuracy, -1.0);
  EXPECT_EQ(none.images, 0);
  EXPECT_FALSE(none.stopped) << "an empty test set has nothing to stop";
  EXPECT_FALSE(asked);
}
