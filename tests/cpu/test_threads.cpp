// Threads: the library's promise (docs/LIBRARY.md, "Devices, contexts and streams") that threads with a
// context each run side by side. Two trainers (graph, store, executors, dropout, checkpoints) on
// two threads at once give, bit for bit, the losses, accuracies and checkpoint files each gives
// alone. A race on shared state (caches, counters, the host allocator) shows up as a difference
// or, in the sanitizer build, as a report.
#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "temp_dir.h"
#include "test_support.h"
#include "tiny_trainer.h"
#include "kestrel/layers/checkpoint.h"
#include "kestrel/layers/trainer.h"

using namespace kestrel;

namespace {

struct RunRecord {
  std::vector<float> losses;
  std::vector<float> test_accuracies;
  std::vector<std::uint8_t> checkpoint;
  std::string error;  // an exception's text (threads may not throw into gtest)
};

// Two epochs of a ResNet-8 with dropout, evaluated each epoch, then a checkpoint written to
// `path` and read back as bytes.
RunRecord train_and_save(std::uint64_t seed, const CifarDataset& data, const std::string& path) {
  RunRecord r;
  try {
    TrainerConfig c = kestrel::testing::tiny_trainer_config(4, 16, 4);
    c.seed = seed;
    c.net.dropout = 0.2f;
    c.random_flip = true;
    Context ctx;
    std::ostringstream out;
    Trainer t(c, data, ctx, out);
    const TrainResult result = t.train();
    r.losses = result.losses;
    for (const EpochResult& e : result.epochs) r.test_accuracies.push_back(e.test_accuracy);
    save_checkpoint(t.store(), path, t.checkpoint_metadata());
    r.checkpoint = kestrel::testing::read_bytes(path);
  } catch (const std::exception& e) {
    r.error = e.what();
  }
  return r;
}

void expect_same_run(const RunRecord& alone, const RunRecord& beside, const char* which) {
  ASSERT_TRUE(alone.error.empty()) << which << " alone: " << alone.error;
  ASSERT_TRUE(beside.error.empty()) << which << " beside another thread: " << beside.error;
  ASSERT_EQ(alone.losses.size(), 20u) << which;
  EXPECT_TRUE(kestrel::testing::bit_equal(alone.losses, beside.losses)) << which << ": losses";
  EXPECT_TRUE(kestrel::testing::bit_equal(alone.test_accuracies, beside.test_accuracies))
      << which << ": test accuracies";
  EXPECT_FALSE(alone.checkpoint.empty()) << which;
  EXPECT_TRUE(alone.checkpoint == beside.checkpoint) << which << ": checkpoint bytes differ";
}

}  // namespace

TEST(Threads, TwoTrainersSideBySideGiveWhatEachGivesAlone) {
  const CifarDataset data = synthetic_cifar10(160, 40, 1);  // shared read-only by both threads
  kestrel::testing::TempDir dir("threads");

  const RunRecord a_alone = train_and_save(4, data, dir / "a_alone.safetensors");
  const RunRecord b_alone = train_and_save(9, data, dir / "b_alone.safetensors");
  ASSERT_TRUE(a_alone.error.empty()) << a_alone.error;
  ASSERT_TRUE(b_alone.error.empty()) << b_alone.error;
  ASSERT_NE(a_alone.losses, b_alone.losses) << "the two seeds must give two different runs";

  RunRecord a_beside, b_beside;
  std::thread ta([&] { a_beside = train_and_save(4, data, dir / "a_beside.safetensors"); });
  std::thread tb([&] { b_beside = train_and_save(9, data, dir / "b_beside.safetensors"); });
  ta.join();
  tb.join();

  expect_same_run(a_alone, a_beside, "seed 4");
  expect_same_run(b_alone, b_beside, "seed 9");
}
