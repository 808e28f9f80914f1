// ParameterStore: initial values against their closed forms (He et al. 2015, Glorot & Bengio
// 2010, PyTorch's linear bias), ranges, and the decay mask (which parameters weight decay reaches).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "error_text.h"
#include "kestrel/core/executor.h"
#include "kestrel/layers/nn.h"

using namespace kestrel;
using kestrel::testing::error_of;

namespace {
// Mean and standard deviation in double precision.
void moments(const std::vector<float>& v, double& mean, double& sd) {
  double s = 0.0;
  for (float x : v) s += x;
  mean = s / static_cast<double>(v.size());
  double q = 0.0;
  for (float x : v) q += (x - mean) * (x - mean);
  sd = std::sqrt(q / static_cast<double>(v.size()));
}

double max_abs(const std::vector<float>& v) {
  double m = 0.0;
  for (float x : v) m = std::max(m, std::fabs(static_cast<double>(x)));
  return m;
}

// Every value within [-bound, bound], the largest above frac * bound: a draw over that interval,
// not a narrower one.
void expect_fills_bound(const std::vector<float>& v, double bound, double frac) {
  EXPECT_LE(max_abs(v), bound);
  EXPECT_GT(max_abs(v), frac * bound);
}

// A uniform draw over [-bound, bound]: standard deviation bound / sqrt(3) to relative `tol`.
void expect_uniform(const std::vector<float>& v, double bound, double tol) {
  double mean = 0, sd = 0;
  moments(v, mean, sd);
  EXPECT_NEAR(sd / (bound / std::sqrt(3.0)), 1.0, tol);
  expect_fills_bound(v, bound, 0.999);
}

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

// An index past count() and an optimizer state not kept are kestrel::Errors that say so (before:
// std::out_of_range from std::vector::at, and the optimizer printed as a number).
TEST(ParameterStoreErrors, IndicesAndOptimizerStatesOutOfRangeAreNamed) {
  const Graph g = small_net();
  Context ctx;
  ParameterStore store(g, ctx, 1);
  const std::string past = "parameter index 99 is out of range: the store holds " + std::to_string(store.count());
  EXPECT_NE(error_of([&] { store.name(99); }).find(past), std::string::npos);
  EXPECT_NE(error_of([&] { store.trainable(99); }).find(past), std::string::npos);
  EXPECT_NE(error_of([&] { store.value(99); }).find(past), std::string::npos);
  EXPECT_NE(error_of([&] { store.gradient(99); }).find(past), std::string::npos);
  EXPECT_NE(error_of([&] { store.shadow(99); }).find(past), std::string::npos);
  const std::string state = error_of([&] { store.opt_state(0); });
  EXPECT_NE(state.find("optimizer state 0 does not exist (optimizer: none, which keeps 0)"), std::string::npos) << state;
  store.ensure_optimizer_state(OptimizerKind::kSgd);
  EXPECT_NE(error_of([&] { store.opt_state(1); }).find("(optimizer: sgd, which keeps 1)"), std::string::npos);
}

TEST(ParameterStoreDecay, Exempt1dFromDecayExemptsExactlyTheRankOneParameters) {
  const Graph g = small_net();
  Context ctx;
  ParameterStore store(g, ctx, 1);
  expect_mask(store, [](int) { return true; });  // every parameter decays by default
  store.exempt_1d_from_decay();
  expect_mask(store, [](int rank) { return rank >= 2; });
}

// Init::with_range may reach the last element (its range is [begin, end) with end <= numel).
TEST(InitRange, MayEndAtTheLastElement) {
  Graph g;
  g.parameter("b", {Shape{12}}, Init::constant(0.25f).with_range(8, 12, -2.f));
  Context ctx;
  ParameterStore store(g, ctx, 1);
  const std::vector<float> v = store.value("b").to_float_vector();
  for (int i = 0; i < 12; ++i) EXPECT_EQ(v[static_cast<std::size_t>(i)], i < 8 ? 0.25f : -2.f) << i;
  Graph bad;
  bad.parameter("b", {Shape{12}}, Init::zeros().with_range(8, 13, 1.f));
  EXPECT_THROW(ParameterStore(bad, ctx, 1), Error);
}

// The initialisers' spreads against their closed forms (He et al. 2015, Glorot & Bengio 2010):
// He normal sd sqrt(2 / fan_in); He uniform U(+-sqrt(6 / fan_in)); Xavier uniform
// U(+-sqrt(6 / (fan_in + fan_out))); every parameter draws its own numbers.
TEST(Initialisers, HaveTheirClosedFormSpreads) {
  Graph g;
  const std::int64_t n = 64 * 1024;
  g.parameter("he_normal", {Shape{n}}, Init::he_normal(50));
  g.parameter("he_uniform", {Shape{n}}, Init::he_uniform(24));
  g.parameter("xavier", {Shape{n}}, Init::xavier_uniform(30, 70));
  g.parameter("he_normal_2", {Shape{n}}, Init::he_normal(50));
  Context ctx;
  ParameterStore store(g, ctx, 12345);
  double mean = 0, sd = 0;
  const std::vector<float> hn = store.value("he_normal").to_float_vector();
  moments(hn, mean, sd);
  const double tol = 4.0 / std::sqrt(static_cast<double>(n));  // relative error of an sd estimate, generously
  EXPECT_NEAR(mean, 0.0, 4 * std::sqrt(2.0 / 50) / std::sqrt(static_cast<double>(n)));
  EXPECT_NEAR(sd / std::sqrt(2.0 / 50), 1.0, tol);

  expect_uniform(store.value("he_uniform").to_float_vector(), std::sqrt(6.0 / 24), tol);
  expect_uniform(store.value("xavier").to_float_vector(), std::sqrt(6.0 / (30 + 70)), tol);

  // Same initialiser, same shape, another parameter: other numbers.
  const std::vector<float> hn2 = store.value("he_normal_2").to_float_vector();
  int same = 0;
  for (std::size_t i = 0; i < hn.size(); ++i) same += hn[i] == hn2[i] ? 1 : 0;
  EXPECT_LT(same, 10);
}

// nn::conv2d and nn::linear fill in the fans from the layer (fan_in = C * k * k, fan_out =
// K * k * k for a convolution; in/out features for a linear layer), and a linear bias is
// PyTorch's U(+-1/sqrt(in_features)).
TEST(Initialisers, LayersFillInTheirFansAndTheLinearBiasBound) {
  GraphOptions o;
  o.batch = 2;
  Graph g(o);
  const Value x = nn::image_input(g, "images", 6, 8, 8);
  nn::Conv2dOptions xav;
  xav.init = Init::xavier_uniform(0, 0);
  const Value h = nn::conv2d(g, "cx", x, 40, 3, xav);
  nn::Conv2dOptions he;
  he.init = Init::he_normal(0);
  const Value h2 = nn::conv2d(g, "ch", h, 32, 5, he);
  nn::LinearOptions lo;
  lo.init = Init::xavier_uniform(0, 0);
  nn::linear(g, "fc", nn::global_avg_pool(g, h2), 4096, lo);
  const auto init_of = [&](const std::string& name) {
    for (const ParamInfo& p : g.params())
      if (p.name == name) return p.init;
    ADD_FAILURE() << "no parameter " << name;
    return Init{};
  };
  EXPECT_EQ(init_of("cx.weight").fan_in, 6 * 9);
  EXPECT_EQ(init_of("cx.weight").fan_out, 40 * 9);
  EXPECT_EQ(init_of("ch.weight").fan_in, 40 * 25);
  EXPECT_EQ(init_of("fc.weight").fan_in, 32);
  EXPECT_EQ(init_of("fc.weight").fan_out, 4096);
  // Fans the caller gives are kept, He's and Xavier's alike; a dense layer of one input feature has
  // its bias too (bound 1 / sqrt(1)).
  nn::Conv2dOptions cg, chg;
  cg.init = Init::xavier_uniform(5, 9);
  chg.init = Init::he_normal(7);
  nn::conv2d(g, "cg", x, 4, 3, cg);
  nn::conv2d(g, "chg", x, 4, 3, chg);
  const Value one = g.input("one", {Shape{2, 1}});
  nn::LinearOptions fg, fh;
  fg.init = Init::xavier_uniform(11, 13);
  fh.init = Init::he_normal(17);
  nn::linear(g, "fg", one, 3, fg);
  nn::linear(g, "fh", one, 3, fh);
  EXPECT_EQ(init_of("cg.weight").fan_in, 5);
  EXPECT_EQ(init_of("cg.weight").fan_out, 9);
  EXPECT_EQ(init_of("chg.weight").fan_in, 7);
  EXPECT_EQ(init_of("fg.weight").fan_in, 11);
  EXPECT_EQ(init_of("fg.weight").fan_out, 13);
  EXPECT_EQ(init_of("fh.weight").fan_in, 17);
  EXPECT_EQ(init_of("fg.bias").kind, Init::Kind::kUniform);
  EXPECT_EQ(init_of("fg.bias").value, 1.f);

  Context ctx;
  ParameterStore store(g, ctx, 7);
  expect_fills_bound(store.value("cx.weight").to_float_vector(), std::sqrt(6.0 / (6 * 9 + 40 * 9)), 0.99);  // 2160
  double mean = 0, sd = 0;
  moments(store.value("ch.weight").to_float_vector(), mean, sd);  // 32000 values
  EXPECT_NEAR(sd / std::sqrt(2.0 / (40 * 25)), 1.0, 0.03);
  expect_fills_bound(store.value("fc.bias").to_float_vector(), 1.0 / std::sqrt(32.0), 0.99);  // 4096
  expect_fills_bound(store.value("fc.weight").to_float_vector(), std::sqrt(6.0 / (32 + 4096)), 0.99);
}

// Asking again for the optimizer state the store already holds (every training executor compiled
// on it does) keeps that state: a second executor must not zero the momentum the first built up.
// Asking for none (an inference executor compiled on a trained store) is no conflict and keeps it
// too.
TEST(ParameterStoreOptimizer, EnsuringTheSameStateAgainKeepsIt) {
  Graph g;
  g.parameter("w", {Shape{5}}, Init::ones(), true);
  Context ctx;
  ParameterStore store(g, ctx, 1);
  store.ensure_optimizer_state(OptimizerKind::kAdamW);
  Tensor m0 = store.opt_state(0), v0 = store.opt_state(1);
  m0.fill(0.5f, ctx.stream());
  v0.fill(0.25f, ctx.stream());
  store.ensure_optimizer_state(OptimizerKind::kAdamW);
  store.ensure_optimizer_state(OptimizerKind::kNone);
  EXPECT_EQ(store.optimizer_kind(), OptimizerKind::kAdamW);
  const std::vector<float> m = store.opt_state(0).to_float_vector(), v = store.opt_state(1).to_float_vector();
  for (std::size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(m[i], 0.5f) << i;
    EXPECT_EQ(v[i], 0.25f) << i;
  }
}

// The learning rate must be finite and >= 0: infinity is refused like NaN and negatives, and
// leaves the rate as it was.
TEST(ParameterStoreErrors, AnInfiniteLearningRateIsRefused) {
  Graph g;
  g.parameter("w", {Shape{3}}, Init::ones(), true);
  Context ctx;
  ParameterStore store(g, ctx, 1);
  store.set_learning_rate(0.5f);
  for (float bad : {std::numeric_limits<float>::infinity(), std::nanf(""), -1.f})
    EXPECT_NE(error_of([&] { store.set_learning_rate(bad); }).find("learning rate must be finite and >= 0"),
              std::string::npos) << bad;
  EXPECT_EQ(store.read_counters().learning_rate, 0.5f);
}

// parameter_store.h: each slot starts at a multiple of 8 elements (32-byte aligned fp32,
// 16-byte aligned bf16), also after parameters and states whose sizes are not multiples of 8.
TEST(ParameterStoreLayout, EverySlotStartsAtAMultipleOfEightElements) {
  Graph g;
  g.parameter("a", {Shape{3}}, Init::ones(), true);
  g.state("s", {Shape{5}}, Init::zeros());
  g.parameter("b", {Shape{2, 5}}, Init::ones(), true, DType::kBFloat16);
  g.state("t", {Shape{1}}, Init::zeros());
  g.parameter("c", {Shape{7}}, Init::ones(), true, DType::kBFloat16);
  Context ctx;
  ParameterStore store(g, ctx, 1);
  EXPECT_EQ(store.flat_params().numel(), 8 + 16 + 8);
  EXPECT_EQ(store.flat_states().numel(), 8 + 8);
  for (std::size_t i = 0; i < store.count(); ++i) {
    const Tensor v = store.value(i);
    const Tensor& flat = store.trainable(i) ? store.flat_params() : store.flat_states();
    const auto at = static_cast<const float*>(v.data()) - static_cast<const float*>(flat.data());
    EXPECT_EQ(at % 8, 0) << store.name(i);
    if (store.shadow(i).defined()) {
      const auto sh = static_cast<const std::uint16_t*>(store.shadow(i).data()) -
                      static_cast<const std::uint16_t*>(store.flat_shadow().data());
      EXPECT_EQ(sh % 8, 0) << store.name(i);
    }
  }
}
