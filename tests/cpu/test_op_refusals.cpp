// The ops' own refusals where the layer builders (layers/nn.cpp) do not reach, because a builder
// checks first or because only the library wires the op: a convolution's attributes one at a
// time, batch norm's eps and momentum at their edges, the fused BN+Add+ReLU's residual, the BN+ReLU
// recomputation's statistics, concatenation and stacking of values without their axis, an unstack
// into no steps; and a convolution's bias gradient when its weight needs none. Each closes a gap a
// mutation test of core/ops/ (shape_ops.cpp, conv_ops.cpp, batchnorm_op.cpp) found.
#include <gtest/gtest.h>

#include <limits>
#include <string>
#include <vector>

#include "error_text.h"
#include "grad_check.h"
#include "test_support.h"
#include "kestrel/core/executor.h"
#include "kestrel/core/ops/batchnorm_op.h"
#include "kestrel/core/ops/nn_ops.h"
#include "kestrel/layers/nn.h"

using namespace kestrel;
using kestrel::testing::error_of;
using kestrel::testing::graph_options;

// Each stride and dilation must be positive and each padding non-negative, H and W alike: one
// field wrong at a time is refused; the edges (stride 1, dilation 1, padding 0) are accepted.
TEST(OpRefusals, Conv2dRefusesEachBadAttributeOnItsOwn) {
  EXPECT_NO_THROW(make_conv2d_op({}));
  for (int field = 0; field < 6; ++field) {
    Conv2dAttrs a;
    int* f[] = {&a.stride_h, &a.stride_w, &a.pad_h, &a.pad_w, &a.dil_h, &a.dil_w};
    *f[field] = field == 2 || field == 3 ? -1 : 0;
    const std::string e = error_of([&] { make_conv2d_op(a); });
    EXPECT_NE(e.find("Conv2d: stride and dilation must be positive and padding non-negative"), std::string::npos)
        << "field " << field << ": " << e;
  }
}

// eps > 0 (0 is refused, the smallest positive float is not) and momentum in [0, 1] inclusive.
TEST(OpRefusals, BatchNormTakesEpsAboveZeroAndMomentumFromZeroToOne) {
  const auto op = [](float eps, float momentum) { return BatchNormOp(BatchNormAttrs{eps, momentum}, BnActivation::kNone); };
  EXPECT_NE(error_of([&] { op(0.f, 0.1f); }).find("BatchNorm2d eps must be > 0, got 0"), std::string::npos);
  EXPECT_NO_THROW(op(std::numeric_limits<float>::denorm_min(), 0.1f));
  EXPECT_NO_THROW(op(1e-5f, 0.f));
  EXPECT_NO_THROW(op(1e-5f, 1.f));
  for (float m : {-1e-6f, 1.000001f})
    EXPECT_NE(error_of([&] { op(1e-5f, m); }).find("BatchNorm2d momentum must be in [0, 1]"), std::string::npos) << m;
}

// The fused BN+Add+ReLU (made by the fusion pass, or by hand from BatchNormOp) adds a residual of
// x's own shape, dtype and layout: another of any of them is refused, naming the fused op.
TEST(OpRefusals, FusedBatchNormAddReluRefusesAResidualOfAnotherShapeDtypeOrLayout) {
  Graph g(graph_options(2));
  const Value x = g.input("x", {Shape{2, 3, 4, 4}});
  std::vector<Value> in = {x};
  for (int i = 0; i < 4; ++i) in.push_back(g.input("v" + std::to_string(i), {Shape{3}}));
  const auto fused = std::make_shared<BatchNormOp>(BatchNormAttrs{}, BnActivation::kAddRelu);
  const Value residuals[] = {g.input("r_shape", {Shape{2, 3, 4, 2}}),
                             g.input("r_dtype", {Shape{2, 3, 4, 4}, DType::kBFloat16}),
                             g.input("r_layout", {Shape{2, 3, 4, 4}, DType::kFloat32, Layout::kNHWC})};
  for (const Value r : residuals) {
    std::vector<Value> with = in;
    with.push_back(r);
    const std::string e = error_of([&] { g.add_node(fused, "bn", with); });
    EXPECT_NE(e.find("BatchNorm2d+Add+ReLU 'bn': residual '" + g.info(r).name + "'"), std::string::npos) << e;
    EXPECT_NE(e.find("expected 'x' [2, 3, 4, 4] fp32"), std::string::npos) << e;
  }
  in.push_back(g.input("r_ok", {Shape{2, 3, 4, 4}}));
  EXPECT_NO_THROW(g.add_node(fused, "bn", in));
}

// The recomputation's four channel vectors (gamma, beta, saved mean and invstd) must each be [C]
// fp32: one of the wrong length at a time is refused, naming it.
TEST(OpRefusals, BatchNormReluRecomputeRefusesEachStatisticOfTheWrongLength) {
  Graph g(graph_options(2));
  const Value x = g.input("x", {Shape{2, 3, 4, 4}});
  const char* roles[] = {"weight (gamma)", "bias (beta)", "mean", "invstd"};
  std::vector<Value> good;
  for (int i = 0; i < 4; ++i) good.push_back(g.input("good" + std::to_string(i), {Shape{3}}));
  const Value bad = g.input("bad", {Shape{4}});
  for (int i = 0; i < 4; ++i) {
    std::vector<Value> in = {x, good[0], good[1], good[2], good[3]};
    in[static_cast<std::size_t>(1 + i)] = bad;
    const std::string e = error_of([&] { g.add_node(make_batchnorm_relu_recompute_op(), "re", in); });
    EXPECT_NE(e.find("BatchNorm2dRecompute+ReLU 're': " + std::string(roles[i]) + " 'bad'"), std::string::npos) << e;
    EXPECT_NE(e.find("expected [3] fp32, got [4] fp32"), std::string::npos) << e;
  }
  EXPECT_NO_THROW(g.add_node(make_batchnorm_relu_recompute_op(), "re", {x, good[0], good[1], good[2], good[3]}));
}

// Concatenation joins along axis 1, so its values need rank 2 (a rank-1 value has no axis 1 to
// join: refused, not read past its dimensions); stacking adds axis 1 and takes rank 1. An unstack
// into no steps is refused as such.
TEST(OpRefusals, ConcatNeedsAnAxisOneAndUnstackAStep) {
  Graph g(graph_options(2));
  const Value a = g.input("a", {Shape{2}}), b = g.input("b", {Shape{2}});
  const std::string e = error_of([&] { nn::concat(g, {a, b}); });
  EXPECT_NE(e.find("Concat 'concat': input 'a' [2] fp32: expected rank >= 2, got rank 1"), std::string::npos) << e;
  EXPECT_EQ(g.info(nn::stack(g, {a, b})).shape(), (Shape{2, 2}));
  EXPECT_NE(error_of([] { make_unstack_op(0); }).find("unstack into 0 steps"), std::string::npos);
}

// A convolution whose weight is a graph input (no gradient asked) and whose bias is a parameter:
// the bias still gets its gradient. Through global average pooling the logits are
// z[n,k] = mean_hw conv[n,k] + b[k], so d loss / d b[k] = sum_n d loss / d z[n,k], read from the
// loss's fused gradient; the sum of a few fp32 terms, 1e-6 relative.
TEST(OpRefusals, Conv2dBiasGetsItsGradientWhenTheWeightNeedsNone) {
  const std::int64_t n = 3, k = 4;
  Graph g(graph_options(n));
  const Value x = g.input("x", {Shape{n, 2, 5, 5}});
  const Value w = g.input("w", {Shape{k, 2, 3, 3}});
  const Value b = g.parameter("b", {Shape{k}}, Init::uniform(0.5f));
  const Value y = g.add_node1(make_conv2d_op({}), "conv", {x, w, b});
  nn::softmax_cross_entropy(g, nn::global_avg_pool(g, y), nn::label_input(g, "labels"));
  g.mark_output(g.find_value("loss:dlogits"), "dlogits");  // kept to the step's end
  Context ctx;
  ParameterStore store(g, ctx, 4);
  CompileOptions co;
  co.optimizer = OptimizerKind::kNone;
  Executor ex(g, store, ctx, co);
  kestrel::testing::feed_uniform(ex, "x", 5, -1.f, 1.f);
  kestrel::testing::feed_uniform(ex, "w", 6, -0.5f, 0.5f);
  kestrel::testing::feed_labels(ex, "labels", static_cast<int>(k));
  ex.run();
  const std::vector<float> dz = ex.output("dlogits").to_float_vector();
  std::vector<double> want(static_cast<std::size_t>(k), 0.0);
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 0; j < k; ++j) want[static_cast<std::size_t>(j)] += dz[static_cast<std::size_t>(i * k + j)];
  EXPECT_TRUE(kestrel::testing::all_close(ex.gradient("b").to_float_vector(), want, 1e-9, 1e-6));
}
