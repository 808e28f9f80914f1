// Training runs side by side on two threads against the same runs alone (tests/cpu/test_threads.cpp,
// tests/cuda/test_threads_cuda.cpp): what one trainer run gives, recorded so that two records can
// be compared bit for bit, and the alone-then-together schedule both tests use.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "device_copy.h"
#include "temp_dir.h"
#include "test_support.h"
#include "kestrel/layers/checkpoint.h"
#include "kestrel/layers/trainer.h"

namespace kestrel::testing {

struct TrainingRecord {
  std::vector<float> losses, params;
  std::vector<double> test_accuracies;
  std::vector<std::uint8_t> checkpoint;
  bool used_cuda_graph = false;
  std::string error;  // an exception's text (threads may not throw into gtest)
};

// Trains `c` on `data` in `ctx`, writes a checkpoint to `path` and records everything it gave.
inline TrainingRecord record_training(const TrainerConfig& c, const CifarDataset& data, Context& ctx,
                                      const std::string& path) {
  TrainingRecord r;
  try {
    std::ostringstream out;
    Trainer t(c, data, ctx, out);
    const TrainResult result = t.train();
    r.losses = result.losses;
    for (const EpochResult& e : result.epochs) r.test_accuracies.push_back(e.test_accuracy);
    r.used_cuda_graph = t.train_executor().uses_cuda_graph();
    r.params = host_floats(t.store().flat_params(), ctx);
    save_checkpoint(t.store(), path, t.checkpoint_metadata());
    r.checkpoint = read_bytes(path);
  } catch (const std::exception& e) {
    r.error = e.what();
  }
  return r;
}

struct AloneAndBeside {
  TrainingRecord a_alone, b_alone, a_beside, b_beside;
};

// run(seed, checkpoint path) for seed_a and seed_b one after the other, then both at once on two
// threads; the checkpoints go to four files in `dir`.
template <typename Run>
AloneAndBeside alone_then_side_by_side(std::uint64_t seed_a, std::uint64_t seed_b, const TempDir& dir,
                                       const Run& run) {
  AloneAndBeside r;
  r.a_alone = run(seed_a, dir / "a_alone.safetensors");
  r.b_alone = run(seed_b, dir / "b_alone.safetensors");
  std::thread ta([&] { r.a_beside = run(seed_a, dir / "a_beside.safetensors"); });
  std::thread tb([&] { r.b_beside = run(seed_b, dir / "b_beside.safetensors"); });
  ta.join();
  tb.join();
  return r;
}

// Both runs of one seed finished and gave the same bits: losses, test accuracies, weights,
// checkpoint bytes, and whether steps replayed a CUDA Graph.
inline void expect_same_run(const TrainingRecord& alone, const TrainingRecord& beside, std::size_t steps,
                            const std::string& which) {
  ASSERT_TRUE(alone.error.empty()) << which << " alone: " << alone.error;
  ASSERT_TRUE(beside.error.empty()) << which << " beside another thread: " << beside.error;
  ASSERT_EQ(alone.losses.size(), steps) << which;
  EXPECT_TRUE(bit_equal(alone.losses, beside.losses)) << which << ": losses";
  EXPECT_TRUE(bit_equal(alone.test_accuracies, beside.test_accuracies)) << which << ": test accuracies";
  EXPECT_TRUE(bit_equal(alone.params, beside.params)) << which << ": weights";
  EXPECT_FALSE(alone.checkpoint.empty()) << which;
  EXPECT_TRUE(alone.checkpoint == beside.checkpoint) << which << ": checkpoint bytes differ";
  EXPECT_EQ(alone.used_cuda_graph, beside.used_cuda_graph) << which;
}

// The four runs of alone_then_side_by_side: each seed's two runs agree, and the seeds differ (so
// a thread that picked up the other's state could not pass).
inline void expect_side_by_side_equals_alone(const AloneAndBeside& r, std::size_t steps) {
  ASSERT_TRUE(r.a_alone.error.empty()) << r.a_alone.error;
  ASSERT_TRUE(r.b_alone.error.empty()) << r.b_alone.error;
  ASSERT_NE(r.a_alone.losses, r.b_alone.losses) << "the two seeds must give two different runs";
  expect_same_run(r.a_alone, r.a_beside, steps, "seed a");
  expect_same_run(r.b_alone, r.b_beside, steps, "seed b");
}

}  // namespace kestrel::testing
