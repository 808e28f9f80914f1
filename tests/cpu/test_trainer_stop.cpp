// A stop request (TrainerConfig::stop_request, what cifar10_train's SIGINT / SIGTERM handler
// sets) ends train() at the next step with the checkpoint written, and resuming from it
// reproduces the uninterrupted run bit for bit. The request is made from the progress output:
// the trainer flushes each line, so the stop lands at a known step.
#include <gtest/gtest.h>

#include <atomic>
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

// Sets `stop` as soon as the text written so far contains `trigger` (checked on each flush).
class StopWhenPrinted : public std::stringbuf {
 public:
  StopWhenPrinted(std::atomic<bool>& stop, std::string trigger) : stop_(stop), trigger_(std::move(trigger)) {}

 protected:
  int sync() override {
    if (str().find(trigger_) != std::string::npos) stop_.store(true);
    return 0;
  }

 private:
  std::atomic<bool>& stop_;
  std::string trigger_;
};
}  // namespace

TEST(TrainerStop, AStopRequestEndsTheRunAtTheNextStepWithACheckpointThatResumesExactly) {
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

  kestrel::testing::TempDir dir("trainer_stop");
  std::atomic<bool> stop{false};
  TrainerConfig stopping = c;
  stopping.checkpoint_path = dir / "ck.safetensors";
  stopping.stop_request = &stop;
  TrainResult first;
  {
    Context ctx;
    StopWhenPrinted buf(stop, "epoch 2/2 step 3/10");  // printed after global step 13
    std::ostream out(&buf);
    Trainer t(stopping, data(), ctx, out);
    first = t.train();
    EXPECT_NE(buf.str().find("stopped after step 13 (stop requested)"), std::string::npos) << buf.str();
  }
  EXPECT_TRUE(first.interrupted);
  EXPECT_FALSE(first.finished);
  EXPECT_EQ(first.steps_done, 13);
  const SafetensorsFile ck = read_safetensors(dir / "ck.safetensors");
  EXPECT_EQ(checkpoint_metadata(ck, "step"), "13");

  Context ctx;
  std::ostringstream out;
  Trainer t(c, data(), ctx, out, &ck, "ck.safetensors");
  const TrainResult second = t.train();
  EXPECT_TRUE(second.finished);
  EXPECT_FALSE(second.interrupted);
  std::vector<float> joined = first.losses;
  joined.insert(joined.end(), second.losses.begin(), second.losses.end());
  EXPECT_TRUE(kestrel::testing::bit_equal(joined, whole.losses));
  EXPECT_EQ(second.epochs.back().train_loss, whole.epochs.back().train_loss) << "the epoch's statistics continue";
}

TEST(TrainerStop, ARequestBeforeTheFirstStepRunsNothingAndWritesNothing) {
  kestrel::testing::TempDir dir("trainer_stop_early");
  std::atomic<bool> stop{true};
  TrainerConfig c = kestrel::testing::tiny_trainer_config(4, 16, 3);
  c.checkpoint_path = dir / "ck.safetensors";
  c.stop_request = &stop;
  Context ctx;
  std::ostringstream out;
  Trainer t(c, data(), ctx, out);
  const TrainResult r = t.train();
  EXPECT_TRUE(r.interrupted);
  EXPECT_EQ(r.steps_done, 0);
  EXPECT_TRUE(r.losses.empty());
  EXPECT_FALSE(std::filesystem::exists(dir / "ck.safetensors"));
}
