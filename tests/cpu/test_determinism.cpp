// Determinism: the same seed gives bit-identical losses for 100 training steps on the CPU
// backend (dropout and batch norm included); another seed gives other losses.
#include <gtest/gtest.h>

#include "grad_check.h"
#include "kestrel/core/executor.h"
#include "kestrel/layers/nn.h"
#include "test_support.h"

using namespace kestrel;

namespace {
std::vector<float> train_losses(std::uint64_t seed, int steps) {
  GraphOptions o;
  o.batch = 8;
  Graph g(o);
  const Value x = nn::image_input(g, "x", 3, 6, 6);
  const Value labels = nn::label_input(g, "labels");
  Value h = nn::relu(g, nn::batch_norm(g, "bn", nn::conv2d(g, "conv", x, 6, 3, {1, 1, 1, false})));
  h = nn::dropout(g, "drop", h, 0.3f);
  nn::softmax_cross_entropy(g, nn::linear(g, "fc", nn::global_avg_pool(g, h), 4), labels);
  Context ctx;
  ParameterStore store(g, ctx, seed);
  CompileOptions co;
  co.sgd.momentum = 0.9f;
  co.sgd.nesterov = true;
  co.sgd.weight_decay = 1e-4f;
  Executor ex(g, store, ctx, co);
  std::vector<float> losses;
  for (int s = 0; s < steps; ++s) {
    kestrel::testing::feed_uniform(ex, "x", seed * 1000 + static_cast<std::uint64_t>(s));
    kestrel::testing::feed_labels(ex, "labels", 4);
    store.set_learning_rate(0.05f * (1.f - static_cast<float>(s) / steps));
    ex.run();
    losses.push_back(ex.output("loss").to_float_vector()[0]);
  }
  return losses;
}
}  // namespace

TEST(Determinism, SameSeedGivesBitIdenticalLossesFor100CpuSteps) {
  const auto a = train_losses(17, 100);
  const auto b = train_losses(17, 100);
  EXPECT_TRUE(kestrel::testing::bit_equal(a, b));
  const auto c = train_losses(18, 100);
  EXPECT_NE(a, c) << "a different seed should change the run";
}
