// Threads: the library's promise (docs/LIBRARY.md, "Devices, contexts and streams") that threads
// with a context each run side by side. Two trainers (graph, store, executors, dropout,
// evaluation, checkpoints) on two threads at once give, bit for bit, the losses, accuracies,
// weights and checkpoint files each gives alone. A race on shared state (caches, counters, the
// host allocator) shows up as a difference or, in the tsan build, as a report.
#include <gtest/gtest.h>

#include <string>

#include "side_by_side.h"
#include "tiny_trainer.h"

using namespace kestrel;

TEST(Threads, TwoTrainersSideBySideGiveWhatEachGivesAlone) {
  const CifarDataset data = synthetic_cifar10(160, 40, 1);  // shared read-only by both threads
  kestrel::testing::TempDir dir("threads");
  // Two epochs of a ResNet-8 with dropout and flips, evaluated each epoch: 20 steps.
  const auto runs = kestrel::testing::alone_then_side_by_side(
      4, 9, dir, [&](std::uint64_t seed, const std::string& path) {
        TrainerConfig c = kestrel::testing::tiny_trainer_config(4, 16, 4);
        c.seed = seed;
        c.net.dropout = 0.2f;
        c.random_flip = true;
        Context ctx;
        return kestrel::testing::record_training(c, data, ctx, path);
      });
  kestrel::testing::expect_side_by_side_equals_alone(runs, 20);
}
