// Executor's contracts at their edges (second mutation round on core/executor.cpp,
// docs/RELIABILITY.md): a store from another graph refused by its count or a shape, AdamW's
// options checked when compiling, input bytes summed over every input, bind_input refusing
// another layout, gradient() on an inference executor saying why, a node's run error naming the
// node, and describe()'s backward marks and arena offsets.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "error_text.h"
#include "grad_check.h"
#include "kestrel/core/executor.h"
#include "kestrel/layers/nn.h"

using namespace kestrel;
using kestrel::testing::contains;
using kestrel::testing::error_of;
using kestrel::testing::graph_options;
using kestrel::testing::inference_options;

namespace {
// x [1, 4] -> y = 2 x, beside a trainable parameter "w" of w_size elements and the given extra
// ones (the executor checks the store against them before it plans anything).
Graph scaled_by(std::int64_t w_size, const std::vector<std::string>& extra = {}) {
  Graph g(graph_options(1));
  const Value x = g.input("x", {Shape{1, 4}});
  g.parameter("w", {Shape{w_size}}, Init::ones(), true);
  for (const std::string& name : extra) g.parameter(name, {Shape{2}}, Init::ones(), true);
  g.mark_output(nn::scale(g, x, 2.f), "y");
  return g;
}

// A linear layer with a softmax cross-entropy loss, for training executors.
Graph linear_loss() {
  Graph g(graph_options(3));
  const Value x = g.input("x", {Shape{3, 4}});
  nn::softmax_cross_entropy(g, nn::linear(g, "fc", x, 2), nn::label_input(g, "labels"));
  return g;
}

// linear_loss() with a CPU context and a store of its parameters, for executors to compile on.
struct LinearLoss {
  const Graph g = linear_loss();
  Context ctx;
  ParameterStore store{g, ctx, 1};
};
}  // namespace

// The store must hold exactly the graph's parameters: more (a store of a larger graph whose
// first parameters match) and another shape under the same name are both refused.
TEST(ExecutorContracts, AStoreOfAnotherGraphIsRefusedByCountOrShape) {
  Context ctx;
  const Graph g = scaled_by(4);
  const Graph larger = scaled_by(4, {"extra"});
  ParameterStore larger_store(larger, ctx, 1);
  const std::string count = error_of([&] { Executor ex(g, larger_store, ctx, inference_options()); });
  EXPECT_TRUE(contains(count, "parameter store holds 2 parameters but the graph has 1")) << count;

  const Graph other_shape = scaled_by(5);
  ParameterStore shape_store(other_shape, ctx, 1);
  const std::string shape = error_of([&] { Executor ex(g, shape_store, ctx, inference_options()); });
  EXPECT_TRUE(contains(shape, "parameter 0 of the graph is 'w' [4] but the store holds 'w' [5]")) << shape;

  ParameterStore own(g, ctx, 1);
  EXPECT_EQ(error_of([&] { Executor ex(g, own, ctx, inference_options()); }), "(no error)");
}

// AdamW's options are checked when the executor is compiled, as SGD's are, before the store
// takes any optimizer state.
TEST(ExecutorContracts, AdamWOptionsAreCheckedWhenCompiling) {
  LinearLoss m;
  CompileOptions co;
  co.optimizer = OptimizerKind::kAdamW;
  co.adamw.beta1 = 1.f;
  const std::string e = error_of([&] { Executor ex(m.g, m.store, m.ctx, co); });
  EXPECT_TRUE(contains(e, "AdamW: beta1 must be in [0, 1), got 1")) << e;
  EXPECT_EQ(m.store.optimizer_kind(), OptimizerKind::kNone);
}

// stats().input_bytes counts every input's buffer.
TEST(ExecutorContracts, InputBytesSumEveryInput) {
  Graph g(graph_options(1));
  const Value a = g.input("a", {Shape{1, 4}});
  const Value b = g.input("b", {Shape{1, 6}});
  g.mark_output(nn::scale(g, a, 2.f), "a2");
  g.mark_output(nn::scale(g, b, 3.f), "b3");
  Context ctx;
  ParameterStore store(g, ctx, 1);
  Executor ex(g, store, ctx, inference_options());
  EXPECT_EQ(ex.stats().input_bytes, (4u + 6u) * sizeof(float));
}

// An image input in NCHW does not take a tensor of the same shape and dtype in NHWC: its bytes
// are in another order.
TEST(ExecutorContracts, BindInputRefusesAnotherLayout) {
  Graph g(graph_options(1));
  const Value x = nn::image_input(g, "images", 2, 3, 3);
  g.mark_output(nn::scale(g, x, 2.f), "y");
  Context ctx;
  ParameterStore store(g, ctx, 1);
  Executor ex(g, store, ctx, inference_options());
  std::vector<float> values(18);
  for (std::size_t i = 0; i < values.size(); ++i) values[i] = 0.5f * static_cast<float>(i) - 4.f;
  ex.bind_input("images", Tensor::from_vector(values, Shape{1, 2, 3, 3}));
  const std::string e = error_of([&] {
    ex.bind_input("images", Tensor::from_vector(std::vector<float>(18, 1.f), Shape{1, 2, 3, 3}, DType::kFloat32,
                                                Layout::kNHWC));
  });
  EXPECT_TRUE(contains(e, "bind_input('images'): got ")) << e;
  EXPECT_TRUE(contains(e, "shape, dtype and layout must match")) << e;
  EXPECT_EQ(ex.input("images").to_float_vector(), values);
}

// gradient() on an inference executor says that gradients need a training one, not that the
// loss does not depend on the parameter.
TEST(ExecutorContracts, GradientsOfAnInferenceExecutorAreRefusedAsSuch) {
  LinearLoss m;
  Executor ex(m.g, m.store, m.ctx, inference_options());
  const std::string e = error_of([&] { ex.gradient("fc.weight"); });
  EXPECT_TRUE(contains(e, "gradients exist only in a training executor")) << e;
}

// An error a node raises while running (here a label past the classes, which the CPU backend
// refuses) names the node: its op type and name first.
TEST(ExecutorContracts, ARunErrorNamesItsNode) {
  LinearLoss m;
  Executor ex(m.g, m.store, m.ctx);
  ex.bind_input("x", Tensor::from_vector(std::vector<float>(12, 0.5f), Shape{3, 4}));
  ex.bind_input("labels", Tensor::from_vector({0.f, 7.f, 1.f}, Shape{3}, DType::kInt32));
  const std::string e = error_of([&] { ex.run(); });
  EXPECT_TRUE(contains(e, "SoftmaxCrossEntropy 'loss': ")) << e;
}

// describe() marks backward nodes "[bwd]" and gives an "@offset" to arena values only: the
// parameter gradients backward writes live in the store and have none.
TEST(ExecutorContracts, DescribeMarksBackwardNodesAndArenaOffsetsOnly) {
  LinearLoss m;
  Executor ex(m.g, m.store, m.ctx);
  const std::string d = ex.describe();
  EXPECT_TRUE(contains(d, "\n  [bwd] ")) << d;
  EXPECT_TRUE(contains(d, "\n  Linear 'fc' -> [3, 2]@")) << d;
  std::size_t at = 0, offsets = 0;
  while ((at = d.find('@', at)) != std::string::npos) {
    const unsigned long long offset = std::stoull(d.substr(++at));
    EXPECT_LT(offset, ex.stats().arena_bytes) << d;
    ++offsets;
  }
  EXPECT_GT(offsets, 0u);
  EXPECT_TRUE(contains(d, "[2, 4]\n")) << d;  // fc.weight's gradient, in the store
}
