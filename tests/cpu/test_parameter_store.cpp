// ParameterStore's decay mask: which parameters weight decay reaches.
#include <gtest/gtest.h>

#include <cstdint>

#include "kestrel/core/executor.h"
#include "kestrel/layers/nn.h"

using namespace kestrel;

namespace {
// image -> conv (with bias) -> batch norm -> flatten -> linear -> loss: two rank >= 2 weights
// (conv.weight, fc.weight) and four rank-1 parameters (conv.bias, bn gamma and beta, fc.bias).
Graph small_net() {
  GraphOptions o;
  o.batch = 2;
  Graph g(o);
  nn::Conv2dOptions co;
  co.bias = true;
  const Value x = nn::image_input(g, "images", 3, 4, 4);
  const Value h = nn::batch_norm(g, "bn", nn::conv2d(g, "conv", x, 4, 3, co));
  nn::softmax_cross_entropy(g, nn::linear(g, "fc", nn::flatten(g, h), 5), nn::label_input(g, "labels"));
  return g;
}

// Checks every element of the decay mask against `decays(rank)` for the parameter it belongs to.
template <typename Rule>
void expect_mask(const ParameterStore& store, Rule decays) {
  const auto* mask = static_cast<const std::uint8_t*>(store.decay_mask().data());
  const auto* base = static_cast<const float*>(store.flat_params().data());
  int rank1 = 0, rank2plus = 0;
  for (std::size_t i = 0; i < store.count(); ++i) {
    if (!store.trainable(i)) continue;
    const Tensor v = store.value(i);
    const std::int64_t offset = static_cast<const float*>(v.data()) - base;
    const int rank = v.shape().rank();
    ++(rank >= 2 ? rank2plus : rank1);
    for (std::int64_t e = 0; e < v.numel(); ++e)
      ASSERT_EQ(mask[offset + e], decays(rank) ? 1 : 0) << store.name(i) << " element " << e;
  }
  EXPECT_EQ(rank1, 4);
  EXPECT_EQ(rank2plus, 2);
}
}  // namespace

TEST(ParameterStoreDecay, Exempt1dFromDecayExemptsExactlyTheRankOneParameters) {
  const Graph g = small_net();
  Context ctx;
  ParameterStore store(g, ctx, 1);
  expect_mask(store, [](int) { return true; });  // every parameter decays by default
  store.exempt_1d_from_decay();
  expect_mask(store, [](int rank) { return rank >= 2; });
}
