// Split / Unstack / Concat / Stack graph ops on the CPU backend: outputs against index loops
// written here, every dtype they move (fp32, bf16, int32), zero-filled gradients for unused
// parts, finite-difference gradients (weights and inputs), and the shape errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "error_text.h"
#include "grad_check.h"
#include "test_support.h"
#include "kestrel/core/executor.h"
#include "kestrel/core/ops/nn_ops.h"
#include "kestrel/layers/nn.h"

using namespace kestrel;
using kestrel::testing::error_of;
using kestrel::testing::graph_options;

namespace {
// Runs an inference executor whose input "x" holds Philox uniforms; returns x and the outputs.
struct Ran {
  std::vector<float> x;
  std::vector<std::vector<float>> out;
};
Ran run_forward(Graph& g, const std::vector<std::string>& outputs) {
  Context ctx;
  ParameterStore store(g, ctx, 1);
  CompileOptions co;
  co.training = false;
  Executor ex(g, store, ctx, co);
  Tensor x = ex.input("x");
  if (x.dtype() == DType::kInt32) {
    for (std::int64_t i = 0; i < x.numel(); ++i) x.data_as<std::int32_t>()[i] = static_cast<std::int32_t>(i * 37 - 500);
  } else {
    kestrel::testing::feed_uniform(ex, "x", 5, -3.f, 3.f);
  }
  ex.run();
  Ran r;
  if (x.dtype() == DType::kInt32) {
    for (std::int64_t i = 0; i < x.numel(); ++i) r.x.push_back(static_cast<float>(x.data_as<std::int32_t>()[i]));
    for (const auto& name : outputs) {
      const Tensor t = ex.output(name);
      std::vector<float> v;
      for (std::int64_t i = 0; i < t.numel(); ++i) v.push_back(static_cast<float>(t.data_as<std::int32_t>()[i]));
      r.out.push_back(v);
    }
  } else {
    r.x = x.to_float_vector();
    for (const auto& name : outputs) r.out.push_back(ex.output(name).to_float_vector());
  }
  return r;
}
}  // namespace

TEST(ShapeOps, SplitCutsAxisOneIntoParts) {
  for (DType t : {DType::kFloat32, DType::kBFloat16, DType::kInt32}) {
    const std::int64_t n = 3, s = 7, inner = 5;  // [3, 7, 5] into parts 2, 4, 1
    const std::vector<std::int64_t> sizes = {2, 4, 1};
    Graph g(graph_options(n));
    const Value x = g.input("x", {Shape{n, s, inner}, t});
    const std::vector<Value> parts = nn::split(g, x, sizes);
    ASSERT_EQ(parts.size(), 3u);
    for (std::size_t p = 0; p < parts.size(); ++p) {
      EXPECT_EQ(g.info(parts[p]).shape(), (Shape{n, sizes[p], inner}));
      EXPECT_EQ(g.info(parts[p]).dtype(), t);
      g.mark_output(parts[p], "p" + std::to_string(p));
    }
    const Ran r = run_forward(g, {"p0", "p1", "p2"});
    std::int64_t at = 0;
    for (std::size_t p = 0; p < sizes.size(); ++p) {
      std::vector<float> want;
      for (std::int64_t i = 0; i < n; ++i)
        for (std::int64_t j = at; j < at + sizes[p]; ++j)
          for (std::int64_t k = 0; k < inner; ++k) want.push_back(r.x[static_cast<std::size_t>((i * s + j) * inner + k)]);
      EXPECT_TRUE(kestrel::testing::bit_equal(r.out[p], want)) << dtype_name(t) << " part " << p;
      at += sizes[p];
    }
  }
}

TEST(ShapeOps, UnstackGivesTimeStepsAndStackRebuildsTheSequence) {
  const std::int64_t n = 4, steps = 6, f = 3;
  Graph g(graph_options(n));
  const Value x = g.input("x", {Shape{n, steps, f}});
  const std::vector<Value> xs = nn::unstack(g, x);
  ASSERT_EQ(xs.size(), static_cast<std::size_t>(steps));
  EXPECT_EQ(g.info(xs[2]).shape(), (Shape{n, f}));
  EXPECT_EQ(g.info(xs[2]).name, "unstack:t2");
  g.mark_output(xs[2], "step2");
  const Value back = nn::stack(g, xs);
  EXPECT_EQ(g.info(back).shape(), (Shape{n, steps, f}));
  g.mark_output(back, "back");
  // Reversed order: stack puts input k at index k of axis 1.
  std::vector<Value> rev(xs.rbegin(), xs.rend());
  g.mark_output(nn::stack(g, rev), "reversed");
  const Ran r = run_forward(g, {"step2", "back", "reversed"});
  std::vector<float> want_step, want_rev;
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t k = 0; k < f; ++k) want_step.push_back(r.x[static_cast<std::size_t>((i * steps + 2) * f + k)]);
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t t = 0; t < steps; ++t)
      for (std::int64_t k = 0; k < f; ++k)
        want_rev.push_back(r.x[static_cast<std::size_t>((i * steps + (steps - 1 - t)) * f + k)]);
  EXPECT_TRUE(kestrel::testing::bit_equal(r.out[0], want_step));
  EXPECT_TRUE(kestrel::testing::bit_equal(r.out[1], r.x));
  EXPECT_TRUE(kestrel::testing::bit_equal(r.out[2], want_rev));
}

TEST(ShapeOps, ConcatJoinsPartsOfDifferentSizes) {
  const std::int64_t n = 5;
  Graph g(graph_options(n));
  const Value x = g.input("x", {Shape{n, 9}});
  const std::vector<Value> parts = nn::split(g, x, {4, 1, 4});
  // Concatenate in another order: [part2, part0, part1, part0].
  const Value y = nn::concat(g, {parts[2], parts[0], parts[1], parts[0]});
  EXPECT_EQ(g.info(y).shape(), (Shape{n, 13}));
  g.mark_output(y, "y");
  const Ran r = run_forward(g, {"y"});
  std::vector<float> want;
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j : {5, 6, 7, 8, 0, 1, 2, 3, 4, 0, 1, 2, 3}) want.push_back(r.x[static_cast<std::size_t>(i * 9 + j)]);
  EXPECT_TRUE(kestrel::testing::bit_equal(r.out[0], want));
}

TEST(ShapeOps, UnusedPartsGetZeroGradient) {
  // x [N, 7] -> split {3, 2, 2}; only parts 0 and 2 reach the loss: d loss / d x is zero exactly
  // on part 1's columns and nonzero elsewhere.
  const std::int64_t n = 4;
  Graph g(graph_options(n));
  const Value x = g.input("x", {Shape{n, 7}});
  const Value labels = nn::label_input(g, "labels");
  const std::vector<Value> p = nn::split(g, x, {3, 2, 2});
  nn::softmax_cross_entropy(g, nn::linear(g, "fc", nn::concat(g, {p[0], nn::tanh(g, p[2])}), 3), labels);
  Context ctx;
  ParameterStore store(g, ctx, 2);
  CompileOptions co;
  co.optimizer = OptimizerKind::kNone;
  co.input_gradients = {"x"};
  Executor ex(g, store, ctx, co);
  kestrel::testing::feed_uniform(ex, "x", 3);
  kestrel::testing::feed_labels(ex, "labels", 3);
  ex.run();
  const std::vector<float> dx = ex.input_gradient("x").to_float_vector();
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 0; j < 7; ++j) {
      const float v = dx[static_cast<std::size_t>(i * 7 + j)];
      if (j == 3 || j == 4) EXPECT_EQ(v, 0.f) << i << "," << j;
      else EXPECT_NE(v, 0.f) << i << "," << j;
    }
}

// x [N, 6] -> split {2, 3, 1}; the middle part (3 columns) is unused and the logits are
// [part 2, part 0] (sizes 1 and 2, in reverse order). d loss / d x is exactly zero on columns
// 2..4, and columns 0..1 and 5 carry the gradients of logits 1..2 and 0: an offset that counts
// the unused part wrongly, or a part's size taken from its neighbour, moves them. Reference:
// (softmax - onehot) / N in double; the ops only move fp32 gradients, so 1e-6 relative (+1e-8).
TEST(ShapeOps, AnUnusedPartBetweenPartsOfOtherSizesGetsZeroGradient) {
  const std::int64_t n = 3, s = 6, k = 3;
  Graph g(graph_options(n));
  const Value x = g.input("x", {Shape{n, s}});
  const std::vector<Value> p = nn::split(g, x, {2, 3, 1});
  nn::softmax_cross_entropy(g, nn::concat(g, {p[2], p[0]}), nn::label_input(g, "labels"));
  Context ctx;
  ParameterStore store(g, ctx, 1);
  CompileOptions co;
  co.optimizer = OptimizerKind::kNone;
  co.input_gradients = {"x"};
  Executor ex(g, store, ctx, co);
  kestrel::testing::feed_uniform(ex, "x", 13, -2.f, 2.f);
  kestrel::testing::feed_labels(ex, "labels", static_cast<int>(k));  // (i * 7 + 3) % 3
  ex.run();
  const std::vector<float> xv = ex.input("x").to_float_vector();
  const int column_of_logit[k] = {5, 0, 1};
  std::vector<double> want(static_cast<std::size_t>(n * s), 0.0);
  for (std::int64_t i = 0; i < n; ++i) {
    double z[k], m = -1e30, sum = 0.0;
    for (std::int64_t j = 0; j < k; ++j) {
      z[j] = xv[static_cast<std::size_t>(i * s + column_of_logit[j])];
      m = std::max(m, z[j]);
    }
    for (std::int64_t j = 0; j < k; ++j) sum += std::exp(z[j] - m);
    const std::int64_t label = (i * 7 + 3) % k;
    for (std::int64_t j = 0; j < k; ++j)
      want[static_cast<std::size_t>(i * s + column_of_logit[j])] =
          (std::exp(z[j] - m) / sum - (j == label ? 1.0 : 0.0)) / static_cast<double>(n);
  }
  const std::vector<float> dx = ex.input_gradient("x").to_float_vector();
  EXPECT_TRUE(kestrel::testing::all_close(dx, want, 1e-8, 1e-6));
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 2; j < 5; ++j) EXPECT_EQ(dx[static_cast<std::size_t>(i * s + j)], 0.f) << i << "," << j;
}

TEST(ShapeOps, GradientsThroughSplitConcatStackAndUnstack) {
  kestrel::testing::GradCheckOptions o;
  o.inputs = {"x"};
  o.coords_per_param = 12;
  EXPECT_TRUE(kestrel::testing::check_gradients(graph_options(3), [](Graph& g) {
    const Value x = g.input("x", {Shape{3, 4, 5}});  // a sequence of 4 steps of 5 features
    const Value labels = nn::label_input(g, "labels");
    std::vector<Value> steps = nn::unstack(g, x);
    std::vector<Value> mapped;
    for (std::size_t t = 0; t < steps.size(); ++t)
      if (t != 1) mapped.push_back(nn::tanh(g, nn::linear(g, "in" + std::to_string(t), steps[t], 6)));  // step 1 unused
    const Value seq = nn::stack(g, mapped);                           // [3, 3, 6]
    const std::vector<Value> halves = nn::split(g, seq, {2, 1});      // [3, 2, 6], [3, 1, 6]
    const std::vector<Value> first = nn::unstack(g, halves[0]);       // two [3, 6]
    const Value joined = nn::concat(g, {first[1], nn::sigmoid(g, first[0]), first[1]});
    nn::softmax_cross_entropy(g, nn::linear(g, "out", joined, 4), labels);
  }, [](Executor& ex) {
    kestrel::testing::feed_uniform(ex, "x", 9);
    kestrel::testing::feed_labels(ex, "labels", 4);
  }, o));
}

TEST(ShapeOps, ErrorsNameTheNodeAndTheShapes) {
  Graph g(graph_options(2));
  const Value x = g.input("x", {Shape{2, 6}});
  const std::string sum = error_of([&] { nn::split(g, x, {2, 3}); });
  EXPECT_NE(sum.find("Split 'split'"), std::string::npos) << sum;
  EXPECT_NE(sum.find("axis 1 of size 5 (the sum of the parts), got 6"), std::string::npos) << sum;
  EXPECT_NE(error_of([&] { nn::split(g, x, {6, 0}); }).find("positive"), std::string::npos);
  EXPECT_NE(error_of([&] { make_split_op({}); }).find("no parts"), std::string::npos);
  const Value img = g.input("img", {Shape{2, 3, 4, 4}, DType::kFloat32, Layout::kNHWC});
  const std::string nhwc = error_of([&] { nn::split(g, img, {1, 2}); });
  EXPECT_NE(nhwc.find("row-major (nchw) storage, got nhwc"), std::string::npos) << nhwc;
  const Value v = g.input("v", {Shape{2}});
  EXPECT_NE(error_of([&] { nn::unstack(g, v); }).find("no axis 1"), std::string::npos);
  const Value y = g.input("y", {Shape{2, 6, 3}});
  const std::string mismatch = error_of([&] { nn::concat(g, {y, g.input("z", {Shape{2, 6, 4}})}); });
  EXPECT_NE(mismatch.find("Concat 'concat'"), std::string::npos) << mismatch;
  EXPECT_NE(mismatch.find("expected [2, 6, 3], got [2, 6, 4]"), std::string::npos) << mismatch;
  const std::string stack = error_of([&] { nn::stack(g, {x, g.input("w", {Shape{2, 5}})}); });
  EXPECT_NE(stack.find("Stack 'stack'"), std::string::npos) << stack;
  const std::string dtype = error_of([&] { nn::concat(g, {x, g.input("b", {Shape{2, 6}, DType::kBFloat16})}); });
  EXPECT_NE(dtype.find("dtype fp32"), std::string::npos) << dtype;
  EXPECT_NE(error_of([&] { nn::concat(g, {}); }).find("at least 1"), std::string::npos);
}

// Part sizes whose sum passes INT64_MAX: the sum wrapped (signed overflow, undefined behaviour),
// so four parts of 2^62 "matched" an empty axis 1, and four [1, 2^62] inputs concatenated to [1, 0].
TEST(ShapeOps, PartSizesWhoseSumOverflowsAreRefused) {
  const std::int64_t q = std::int64_t(1) << 62;
  Graph g(graph_options(1));
  const Value x = g.input("x", {Shape{1, 0}});
  const std::string split = error_of([&] { nn::split(g, x, {q, q, q, q}); });
  EXPECT_NE(split.find("overflow"), std::string::npos) << split;
  std::vector<Value> xs;
  for (int i = 0; i < 4; ++i) xs.push_back(g.input("x" + std::to_string(i), {Shape{1, q}}));
  const std::string concat = error_of([&] { nn::concat(g, xs); });
  EXPECT_NE(concat.find("overflow"), std::string::npos) << concat;
}
