// Finite-difference gradient checks of every layer and of residual blocks on the CPU backend
// (tests/support/grad_check.h), plus the chain rule's summed paths.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "error_text.h"
#include "grad_check.h"
#include "kestrel/core/ops/nn_ops.h"
#include "kestrel/layers/nn.h"
#include "kestrel/layers/resnet.h"

using namespace kestrel;
using kestrel::testing::graph_options;
using kestrel::testing::check_gradients;
using kestrel::testing::feed_labels;
using kestrel::testing::feed_uniform;

namespace {
// images [B, c, h, w] in "x", labels in "labels"; `body` maps the image to logits [B, 5].
void classify(Graph& g, std::int64_t c, std::int64_t h, std::int64_t w,
              const std::function<Value(Graph&, Value)>& body) {
  const Value x = nn::image_input(g, "x", c, h, w);
  const Value labels = nn::label_input(g, "labels");
  nn::softmax_cross_entropy(g, body(g, x), labels);
}

auto feed(int classes = 5) {
  return [classes](Executor& ex) {
    feed_uniform(ex, "x", 11);
    feed_labels(ex, "labels", classes);
  };
}

Value head(Graph& g, Value h) { return nn::linear(g, "fc", nn::flatten(g, h), 5); }
}  // namespace

class LayerGradients : public ::testing::TestWithParam<Layout> {};

TEST_P(LayerGradients, Conv2dWithStridePaddingDilationAndBias) {
  EXPECT_TRUE(check_gradients(graph_options(3, GetParam()), [](Graph& g) {
    classify(g, 3, 7, 6, [](Graph& g, Value x) {
      nn::Conv2dOptions a;
      a.padding = 1;
      a.bias = true;
      Value h = nn::conv2d(g, "c1", x, 4, 3, a);
      nn::Conv2dOptions b;
      b.stride = 2;
      b.dilation = 2;
      b.padding = 2;
      h = nn::conv2d(g, "c2", h, 3, 3, b);
      return head(g, h);
    });
  }, feed()));
}

TEST_P(LayerGradients, BatchNormTraining) {
  EXPECT_TRUE(check_gradients(graph_options(4, GetParam()), [](Graph& g) {
    classify(g, 3, 4, 4, [](Graph& g, Value x) {
      Value h = nn::conv2d(g, "c", x, 4, 1);
      return head(g, nn::batch_norm(g, "bn", h));
    });
  }, feed()));
}

TEST_P(LayerGradients, ReluSigmoidTanhAddMul) {
  EXPECT_TRUE(check_gradients(graph_options(3, GetParam()), [](Graph& g) {
    classify(g, 2, 3, 3, [](Graph& g, Value x) {
      Value a = nn::conv2d(g, "a", x, 3, 1);
      Value b = nn::conv2d(g, "b", x, 3, 1);
      Value h = nn::add(g, nn::relu(g, a), nn::sigmoid(g, b));
      h = nn::mul(g, h, nn::tanh(g, nn::conv2d(g, "c", x, 3, 1)));
      return head(g, nn::scale(g, h, 1.5f));
    });
  }, feed()));
}

TEST_P(LayerGradients, MaxPoolGlobalAvgPoolAndFlatten) {
  EXPECT_TRUE(check_gradients(graph_options(2, GetParam()), [](Graph& g) {
    classify(g, 2, 5, 6, [](Graph& g, Value x) {
      Value h = nn::max_pool2x2(g, nn::conv2d(g, "c", x, 3, 3, {1, 1, 1, false}));
      Value pooled = nn::global_avg_pool(g, h);
      Value flat = nn::flatten(g, h);
      return nn::add(g, nn::linear(g, "fc1", pooled, 5), nn::linear(g, "fc2", flat, 5));
    });
  }, feed()));
}

TEST_P(LayerGradients, DropoutUsesOneMaskForwardAndBackward) {
  EXPECT_TRUE(check_gradients(graph_options(4, GetParam()), [](Graph& g) {
    classify(g, 3, 3, 3, [](Graph& g, Value x) {
      Value h = nn::conv2d(g, "c", x, 6, 1);
      h = nn::dropout(g, "drop", h, 0.4f);
      Value v = nn::dropout(g, "drop_vanilla", h, 0.3f, DropoutMode::kVanilla);
      return head(g, v);
    });
  }, feed()));
}

TEST_P(LayerGradients, ResidualBlocksV1AndV2WithProjectionShortcut) {
  for (int version : {1, 2}) {
    EXPECT_TRUE(check_gradients(graph_options(4, GetParam()), [version](Graph& g) {
      classify(g, 3, 6, 6, [version](Graph& g, Value x) {
        ResNetConfig cfg;
        cfg.version = version;
        Value h = nn::conv2d(g, "stem", x, 4, 3, {1, 1, 1, false});
        h = residual_block(g, "block", h, 6, 2, cfg);  // 4 -> 6 channels, stride 2: 1x1 projection
        return head(g, h);
      });
    }, feed())) << "version " << version;
  }
}

INSTANTIATE_TEST_SUITE_P(Layouts, LayerGradients, ::testing::Values(Layout::kNCHW, Layout::kNHWC),
                         [](const auto& info) { return std::string(layout_name(info.param)); });

TEST(GraphGradients, LinearSoftmaxChain) {
  EXPECT_TRUE(check_gradients(graph_options(5), [](Graph& g) {
    const Value x = g.input("x", {Shape{5, 7}});
    const Value labels = nn::label_input(g, "labels");
    Value h = nn::softmax(g, nn::linear(g, "a", x, 6));
    nn::softmax_cross_entropy(g, nn::linear(g, "b", h, 5), labels, 0.1f);
  }, feed()));
}

TEST(GraphGradients, AValueUsedTwiceReceivesTheSumOfBothGradients) {
  // The same weight feeds two layers (a shared square matrix) and the same activation feeds two
  // branches: autodiff must add the contributions of both uses.
  auto build = [](Graph& g) {
    const Value x = g.input("x", {Shape{4, 6}});
    const Value labels = nn::label_input(g, "labels");
    Value w;
    {
      Graph::Scope s(g, "shared");
      w = g.parameter("weight", {Shape{6, 6}}, Init::xavier_uniform(6, 6));
    }
    Value h1 = g.add_node1(make_linear_op(), "use1", {x, w});
    Value h2 = g.add_node1(make_linear_op(), "use2", {nn::tanh(g, h1), w});
    Value both = nn::add(g, nn::sigmoid(g, h2), nn::tanh(g, h2));  // h2 feeds two branches
    nn::softmax_cross_entropy(g, nn::linear(g, "out", both, 5), labels);
  };
  EXPECT_TRUE(check_gradients(graph_options(4), build, feed()));
  // Structure: autodiff summed the two uses of the weight and of h2.
  Graph g(graph_options(4));
  build(g);
  Context ctx;
  ParameterStore store(g, ctx, 1);
  CompileOptions co;
  co.optimizer = OptimizerKind::kNone;
  Executor ex(g, store, ctx, co);
  int sums = 0;
  for (const Node& n : ex.compiled_graph().nodes())
    if (n.backward && n.name.find(".grad_sum") != std::string::npos) ++sums;
  EXPECT_GE(sums, 2);
}


// Two parameters added together: Add's backward hands one gradient value to both inputs, which
// once made the executor refuse the graph ("the gradient of 'b' is also another persistent
// value"). Each parameter now gets its own gradient (a copy for the second), checked against
// finite differences, directly and behind a scale; and a step moves both.
TEST(GraphGradients, TwoParametersAddedTogetherEachGetTheirGradient) {
  for (bool scaled : {false, true}) {
    auto build = [scaled](Graph& g) {
      const Value x = g.input("x", {Shape{4, 5}});
      const Value labels = nn::label_input(g, "labels");
      const Value a = g.parameter("a", {Shape{4, 5}}, Init::uniform(0.5f));
      const Value b = g.parameter("b", {Shape{4, 5}}, Init::uniform(0.5f));
      const Value sum = nn::add(g, a, b);
      nn::softmax_cross_entropy(g, nn::add(g, x, scaled ? nn::scale(g, sum, 2.f) : sum), labels);
    };
    EXPECT_TRUE(check_gradients(graph_options(4), build, feed())) << (scaled ? "scaled" : "plain");
    Graph g(graph_options(4));
    build(g);
    Context ctx;
    ParameterStore store(g, ctx, 3);
    Executor ex(g, store, ctx);
    feed()(ex);
    const std::vector<float> a0 = store.value("a").to_float_vector(), b0 = store.value("b").to_float_vector();
    store.set_learning_rate(0.5f);
    ex.run();
    const std::vector<float> ga = ex.gradient("a").to_float_vector(), gb = ex.gradient("b").to_float_vector();
    EXPECT_EQ(ga, gb) << "d(a + b)/da = d(a + b)/db";
    float largest = 0.f;
    for (float v : ga) largest = std::max(largest, std::fabs(v));
    EXPECT_GT(largest, 0.f);
    const std::vector<float> a1 = store.value("a").to_float_vector(), b1 = store.value("b").to_float_vector();
    for (std::size_t i = 0; i < a0.size(); ++i) {
      EXPECT_FLOAT_EQ(a1[i], a0[i] - 0.5f * ga[i]) << i;
      EXPECT_FLOAT_EQ(b1[i], b0[i] - 0.5f * gb[i]) << i;
    }
  }
}

// The loss must be where d loss / d loss can enter: softmax_cross_entropy's output. Another
// scalar (a dense layer's single output at batch 1, a sum of two cross-entropies) is refused
// when compiling, naming the node, instead of failing deep in the backward pass ("input id -2",
// "backward gave no gradient").
TEST(GraphGradients, ALossThatCannotTakeTheSeedIsRefusedByName) {
  Context ctx;
  Graph g(graph_options(1));
  const Value x = g.input("x", {Shape{1, 4}});
  g.set_loss(nn::linear(g, "fc", x, 1));
  ParameterStore store(g, ctx, 1);
  const std::string e = kestrel::testing::error_of([&] { Executor ex(g, store, ctx); });
  EXPECT_NE(e.find("must be the output of softmax_cross_entropy"), std::string::npos) << e;
  EXPECT_NE(e.find("it comes from Linear 'fc'"), std::string::npos) << e;
  Graph two(graph_options(4));
  const Value in = two.input("x", {Shape{4, 6}});
  const Value labels = nn::label_input(two, "labels");
  const Value a = nn::softmax_cross_entropy(two, nn::linear(two, "a", in, 5), labels);
  const Value b = nn::softmax_cross_entropy(two, nn::linear(two, "b", in, 5), labels);
  two.set_loss(nn::add(two, a, b));
  ParameterStore s2(two, ctx, 1);
  const std::string sum = kestrel::testing::error_of([&] { Executor ex(two, s2, ctx); });
  EXPECT_NE(sum.find("sums of losses are not supported); it comes from Add 'add'"), std::string::npos) << sum;
}
