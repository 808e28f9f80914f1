// Checkpoint loading at its edges (second mutation round on layers/checkpoint.cpp,
// docs/RELIABILITY.md): counters in __metadata__ that are not decimal digits or do not fit, a
// learning rate of infinity, F16 tensors, names that hold "optimizer." or ".num_batches_tracked"
// elsewhere than a state's place, and an optimizer buffer index below 0.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "error_text.h"
#include "kestrel/core/executor.h"
#include "kestrel/layers/checkpoint.h"

using namespace kestrel;
using kestrel::testing::contains;
using kestrel::testing::error_of;

namespace {
// One trainable vector "w" of 4 (He-normal, so not the values the tests load) and, when asked,
// the given extra parameter.
Graph one_vector(const std::string& extra = "") {
  Graph g;
  g.parameter("w", {Shape{4}}, Init::he_normal(4), true);
  if (!extra.empty()) g.parameter(extra, {Shape{2}}, Init::ones(), true);
  return g;
}

// A little-endian F16 tensor from raw IEEE half bit patterns.
SafeTensor f16(const std::vector<std::int64_t>& shape, const std::vector<std::uint16_t>& bits) {
  SafeTensor t;
  t.dtype = "F16";
  t.shape = shape;
  for (std::uint16_t b : bits) {
    t.data.push_back(static_cast<std::uint8_t>(b & 0xff));
    t.data.push_back(static_cast<std::uint8_t>(b >> 8));
  }
  return t;
}
}  // namespace

// A counter must be decimal digits that fit 64 bits: empty text and 2^64 are refused by name,
// not read as 0 or clamped to 2^64 - 1; 2^64 - 1 itself is read.
TEST(CheckpointEdges, CountersAreDecimalDigitsThatFitSixtyFourBits) {
  Context ctx;
  const Graph g = one_vector();
  ParameterStore store(g, ctx, 1);
  const SafetensorsFile good = checkpoint_from_store(store);
  for (const char* bad : {"", "18446744073709551616", "99999999999999999999999"}) {
    SafetensorsFile f = good;
    f.metadata["rng_offset"] = bad;
    const std::string e = error_of([&] { load_checkpoint(f, store, {}, "ck"); });
    EXPECT_TRUE(contains(e, std::string("ck: __metadata__ \"rng_offset\" is \"") + bad + "\", not an unsigned integer"))
        << e;
  }
  SafetensorsFile top = good;
  top.metadata["rng_offset"] = "18446744073709551615";
  EXPECT_EQ(checkpoint_metadata_u64(top, "rng_offset", "ck"), UINT64_MAX);
}

// "inf", "infinity" and "nan" parse as floats, but a learning rate must be finite.
TEST(CheckpointEdges, AnInfiniteOrNanLearningRateIsRefused) {
  Context ctx;
  const Graph g = one_vector();
  ParameterStore store(g, ctx, 1);
  store.set_learning_rate(0.25f);
  const SafetensorsFile good = checkpoint_from_store(store);
  for (const char* bad : {"inf", "infinity", "nan"}) {
    SafetensorsFile f = good;
    f.metadata["lr"] = bad;
    const std::string e = error_of([&] { load_checkpoint(f, store, {}, "ck"); });
    EXPECT_TRUE(contains(e, std::string("ck: __metadata__ \"lr\" is \"") + bad + "\", not a finite non-negative number"))
        << e;
  }
  EXPECT_EQ(store.read_counters().learning_rate, 0.25f);
}

// F16 tensors load (widened to the store's fp32), like BF16 ones.
TEST(CheckpointEdges, F16TensorsLoad) {
  Context ctx;
  const Graph g = one_vector();
  ParameterStore store(g, ctx, 1);
  SafetensorsFile f = checkpoint_from_store(store);
  f.tensors["w"] = f16({4}, {0x3800, 0xBD00, 0x4000, 0x4200});  // 0.5, -1.25, 2, 3
  EXPECT_EQ(error_of([&] { load_checkpoint(f, store); }), "(no error)");
  EXPECT_EQ(store.value("w").to_float_vector(), (std::vector<float>{0.5f, -1.25f, 2.f, 3.f}));
}

// Only names that start with "optimizer." are optimizer state: a parameter with "optimizer." inside
// its name loads into a store that has none. A name that is just ".num_batches_tracked" ends with
// that suffix and is skipped like PyTorch's "<bn>.num_batches_tracked".
TEST(CheckpointEdges, OptimizerAndBatchesTrackedNamesAreMatchedWhereTheyStand) {
  Context ctx;
  const Graph g = one_vector("head.optimizer.gain");
  ParameterStore store(g, ctx, 1);
  ASSERT_EQ(store.optimizer_kind(), OptimizerKind::kNone);
  SafetensorsFile f = checkpoint_from_store(store);
  f.tensors["head.optimizer.gain"] = safetensor_from_tensor(Tensor::from_vector({2.5f, -0.5f}, Shape{2}));
  f.tensors[".num_batches_tracked"] = f16({}, {0});
  EXPECT_EQ(error_of([&] { load_checkpoint(f, store); }), "(no error)");
  EXPECT_EQ(store.value("head.optimizer.gain").to_float_vector(), (std::vector<float>{2.5f, -0.5f}));
}

// An optimizer buffer index below 0 is an error, like one past the last.
TEST(CheckpointEdges, OptimizerBufferIndicesBelowZeroAreRefused) {
  EXPECT_EQ(optimizer_tensor_name(OptimizerKind::kAdamW, 1, "w"), "optimizer.adamw.exp_avg_sq.w");
  EXPECT_TRUE(contains(error_of([] { optimizer_tensor_name(OptimizerKind::kSgd, -1, "w"); }),
                       "optimizer sgd has no state buffer -1"));
  EXPECT_TRUE(contains(error_of([] { optimizer_tensor_name(OptimizerKind::kSgd, 1, "w"); }),
                       "optimizer sgd has no state buffer 1"));
}
