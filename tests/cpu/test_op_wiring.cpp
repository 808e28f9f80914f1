// How the graph ops (core/ops/) and the layer builders (layers/nn.cpp) hand their attributes to
// the kernels, on the CPU backend: stride, padding, dilation and bias of a convolution per axis,
// label smoothing in the loss and its gradient, a BN layer's eps and momentum, max pooling of odd
// sizes, the shape checks of Linear, Conv2d's bias, MaxPool2x2, Flatten, BatchNorm2d, Softmax, the
// cross-entropy loss, the activations, casts and global average pooling, the dtype of a cast's
// gradient and a convolution's initial bias. The kernels themselves are checked elsewhere
// (test_conv.cpp, test_loss.cpp, test_batchnorm.cpp, test_pooling.cpp); these tests close the
// gaps a mutation test of the ops found (attributes dropped or swapped between H and W on the
// way to a kernel that is itself right). References are double loops or closed forms written here.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <utility>
#include <string>
#include <vector>

#include "error_text.h"
#include "grad_check.h"
#include "test_support.h"
#include "kestrel/core/executor.h"
#include "kestrel/core/ops/batchnorm_op.h"
#include "kestrel/core/ops/elementwise_ops.h"
#include "kestrel/core/ops/nn_ops.h"
#include "kestrel/layers/nn.h"

using namespace kestrel;
using kestrel::testing::all_close;
using kestrel::testing::error_of;
using kestrel::testing::graph_options;

namespace {
struct ConvGeometry {
  int stride_h, stride_w, pad_h, pad_w, dil_h, dil_w;
};

// y[n,k,p,q] = bias[k] + sum_{c,r,s} x[n,c,p*sh+r*dh-ph, q*sw+s*dw-pw] w[k,c,r,s] over the taps
// inside the image, on logical NCHW / KCRS values, in double; P and Q from the definition (the
// number of windows whose last tap lies inside the padded image).
std::vector<double> direct_conv(const std::vector<float>& x, const std::vector<float>& w,
                                const std::vector<float>& bias, std::int64_t n, std::int64_t c,
                                std::int64_t h, std::int64_t wd, std::int64_t k, std::int64_t r,
                                std::int64_t s, const ConvGeometry& g, std::int64_t* out_h,
                                std::int64_t* out_w) {
  std::int64_t p_count = 0, q_count = 0;
  while (p_count * g.stride_h + g.dil_h * (r - 1) < h + 2 * g.pad_h) ++p_count;
  while (q_count * g.stride_w + g.dil_w * (s - 1) < wd + 2 * g.pad_w) ++q_count;
  *out_h = p_count;
  *out_w = q_count;
  std::vector<double> y;
  for (std::int64_t b = 0; b < n; ++b)
    for (std::int64_t o = 0; o < k; ++o)
      for (std::int64_t p = 0; p < p_count; ++p)
        for (std::int64_t q = 0; q < q_count; ++q) {
          double acc = bias.empty() ? 0.0 : bias[static_cast<std::size_t>(o)];
          for (std::int64_t ch = 0; ch < c; ++ch)
            for (std::int64_t i = 0; i < r; ++i)
              for (std::int64_t j = 0; j < s; ++j) {
                const std::int64_t yy = p * g.stride_h + i * g.dil_h - g.pad_h;
                const std::int64_t xx = q * g.stride_w + j * g.dil_w - g.pad_w;
                if (yy < 0 || yy >= h || xx < 0 || xx >= wd) continue;
                acc += static_cast<double>(x[static_cast<std::size_t>(((b * c + ch) * h + yy) * wd + xx)]) *
                       w[static_cast<std::size_t>(((o * c + ch) * r + i) * s + j)];
              }
          y.push_back(acc);
        }
  return y;
}

// Softmax cross-entropy of one batch in double: the mean loss and d loss / d logits =
// (softmax - t) / N with targets t = (1 - eps) onehot + eps / K.
struct Ce {
  double loss = 0.0;
  std::vector<double> grad;
};
Ce smoothed_ce(const std::vector<float>& z, const std::vector<std::int32_t>& labels, std::int64_t n,
               std::int64_t k, double eps) {
  Ce r;
  for (std::int64_t i = 0; i < n; ++i) {
    double m = z[static_cast<std::size_t>(i * k)];
    for (std::int64_t j = 1; j < k; ++j) m = std::max(m, static_cast<double>(z[static_cast<std::size_t>(i * k + j)]));
    double sum = 0.0;
    for (std::int64_t j = 0; j < k; ++j) sum += std::exp(z[static_cast<std::size_t>(i * k + j)] - m);
    const double lse = m + std::log(sum);
    for (std::int64_t j = 0; j < k; ++j) {
      const double zj = z[static_cast<std::size_t>(i * k + j)];
      const double t = (j == labels[static_cast<std::size_t>(i)] ? 1.0 - eps : 0.0) + eps / static_cast<double>(k);
      r.loss += t * (lse - zj) / static_cast<double>(n);
      r.grad.push_back((std::exp(zj - lse) - t) / static_cast<double>(n));
    }
  }
  return r;
}

void set_values(const Tensor& t, const std::vector<float>& v) {
  ASSERT_EQ(t.numel(), static_cast<std::int64_t>(v.size()));
  ASSERT_EQ(t.dtype(), DType::kFloat32);
  std::copy(v.begin(), v.end(), t.data_as<float>());
}

std::vector<std::int32_t> set_labels(Executor& ex, const std::string& name, std::vector<std::int32_t> labels) {
  Tensor t = ex.input(name);
  std::copy(labels.begin(), labels.end(), t.data_as<std::int32_t>());
  return labels;
}
}  // namespace

// nn::conv2d with stride 2, padding and a bias (set to non-zero values: it starts at zero), in
// both layouts, against the direct sum; the second geometry adds dilation 2. fp32 throughout: the
// kernel accumulates 27 products in fp32, so 1e-5 relative (plus 1e-5 absolute for sums that
// cancel) is ample.
TEST(OpWiring, StridedConv2dWithBiasMatchesTheDirectSum) {
  const std::int64_t n = 2, c = 3, h = 7, w = 6, k = 4, ks = 3;
  for (Layout layout : {Layout::kNCHW, Layout::kNHWC}) {
    for (const ConvGeometry geo : {ConvGeometry{2, 2, 1, 1, 1, 1}, ConvGeometry{2, 2, 2, 2, 2, 2}}) {
      Graph g(graph_options(n, layout));
      const Value x = nn::image_input(g, "x", c, h, w);
      nn::Conv2dOptions o;
      o.stride = geo.stride_h;
      o.padding = geo.pad_h;
      o.dilation = geo.dil_h;
      o.bias = true;
      const Value y = nn::conv2d(g, "conv", x, k, static_cast<int>(ks), o);
      g.mark_output(y, "y");
      Context ctx;
      ParameterStore store(g, ctx, 17);
      const std::vector<float> bias = {0.75f, -1.25f, 0.5f, 2.f};
      set_values(store.value("conv.bias"), bias);
      CompileOptions co;
      co.training = false;
      Executor ex(g, store, ctx, co);
      kestrel::testing::feed_uniform(ex, "x", 23, -2.f, 2.f);
      ex.run();
      std::int64_t p = 0, q = 0;
      const std::vector<double> want =
          direct_conv(ex.input("x").to_float_vector(), store.value("conv.weight").to_float_vector(), bias, n, c,
                      h, w, k, ks, ks, geo, &p, &q);
      const std::string what = std::string(layout_name(layout)) + " pad " + std::to_string(geo.pad_h) +
                               " dilation " + std::to_string(geo.dil_h);
      ASSERT_EQ(g.info(y).shape(), (Shape{n, k, p, q})) << what;
      // Window span 3 with pad 1, 5 with pad 2: P = (7 + 2 pad - span) / 2 + 1, Q = (6 + 2 pad - span) / 2 + 1.
      EXPECT_EQ(p, 4) << what;
      EXPECT_EQ(q, 3) << what;
      EXPECT_TRUE(all_close(ex.output("y").to_float_vector(), want, 1e-5, 1e-5)) << what;
    }
  }
}

// The conv op itself takes stride, padding and dilation per axis: a 3x2 kernel with stride 2x1,
// padding 1x0 and dilation 1x2 on a 7x10 image, every attribute differing between the axes, so
// that a height attribute applied to the width (or the kernel's R and S, or the image's H and W,
// swapped) changes the output shape or its values. Tolerance as above.
TEST(OpWiring, Conv2dOpWithDifferentHeightAndWidthAttributes) {
  const std::int64_t n = 2, c = 3, h = 7, w = 10, k = 4, r = 3, s = 2;
  const ConvGeometry geo{2, 1, 1, 0, 1, 2};
  Graph g(graph_options(n));
  const Value x = g.input("x", {Shape{n, c, h, w}});
  const Value wt = g.parameter("w", {Shape{k, c, r, s}}, Init::uniform(0.5f));
  const Value b = g.parameter("b", {Shape{k}}, Init::uniform(1.f));
  Conv2dAttrs a;
  a.stride_h = geo.stride_h;
  a.stride_w = geo.stride_w;
  a.pad_h = geo.pad_h;
  a.pad_w = geo.pad_w;
  a.dil_h = geo.dil_h;
  a.dil_w = geo.dil_w;
  const Value y = g.add_node1(make_conv2d_op(a), "conv", {x, wt, b});
  // P = (7 + 2 - 1*(3-1) - 1) / 2 + 1 = 4; Q = (10 + 0 - 2*(2-1) - 1) / 1 + 1 = 8.
  ASSERT_EQ(g.info(y).shape(), (Shape{n, k, 4, 8}));
  g.mark_output(y, "y");
  Context ctx;
  ParameterStore store(g, ctx, 5);
  CompileOptions co;
  co.training = false;
  Executor ex(g, store, ctx, co);
  kestrel::testing::feed_uniform(ex, "x", 29, -2.f, 2.f);
  ex.run();
  std::int64_t p = 0, q = 0;
  const std::vector<float> bias = store.value("b").to_float_vector();
  ASSERT_TRUE(std::any_of(bias.begin(), bias.end(), [](float v) { return v != 0.f; }));
  const std::vector<double> want = direct_conv(ex.input("x").to_float_vector(), store.value("w").to_float_vector(),
                                               bias, n, c, h, w, k, r, s, geo, &p, &q);
  ASSERT_EQ(p, 4);
  ASSERT_EQ(q, 8);
  EXPECT_TRUE(all_close(ex.output("y").to_float_vector(), want, 1e-5, 1e-5));
}

// nn::softmax_cross_entropy with eps = 0.2 through a training executor: the loss is
// mean_i sum_j t_ij (lse_i - z_ij) and d loss / d logits = (softmax - t) / N, with
// t = (1 - eps) onehot + eps / K, in double. fp32 arithmetic on 5 classes: 1e-6 relative for the
// loss, 1e-5 relative (1e-7 absolute) for the gradient. eps = 0 changes the loss by ~0.1 here.
TEST(OpWiring, LabelSmoothingReachesTheCrossEntropyLossAndItsGradient) {
  const std::int64_t n = 4, k = 5;
  const float eps = 0.2f;
  Graph g(graph_options(n));
  const Value z = g.input("logits", {Shape{n, k}});
  nn::softmax_cross_entropy(g, z, nn::label_input(g, "labels"), eps);
  Context ctx;
  ParameterStore store(g, ctx, 1);
  CompileOptions co;
  co.optimizer = OptimizerKind::kNone;
  co.input_gradients = {"logits"};
  Executor ex(g, store, ctx, co);
  kestrel::testing::feed_uniform(ex, "logits", 41, -3.f, 3.f);
  const std::vector<std::int32_t> labels = set_labels(ex, "labels", {3, 0, 4, 1});
  ex.run();
  const Ce want = smoothed_ce(ex.input("logits").to_float_vector(), labels, n, k, eps);
  const Ce plain = smoothed_ce(ex.input("logits").to_float_vector(), labels, n, k, 0.0);
  ASSERT_GT(std::fabs(want.loss - plain.loss), 1e-2);  // smoothing is visible at this size
  const std::vector<float> loss = ex.output("loss").to_float_vector();
  ASSERT_EQ(loss.size(), 1u);
  EXPECT_NEAR(loss[0], want.loss, 1e-6 * std::fabs(want.loss) + 1e-7);
  EXPECT_TRUE(all_close(ex.input_gradient("logits").to_float_vector(), want.grad, 1e-7, 1e-5));
}

// nn::batch_norm with eps 0.5 and momentum 0.3 (defaults 1e-5 and 0.1), gamma and beta set to
// non-trivial values. Training: y = gamma (x - mean) / sqrt(var + 0.5) + beta with the biased
// batch variance; running_mean = 0.3 mean, running_var = 0.7 + 0.3 * unbiased variance (from 0
// and 1). Inference then uses the running statistics with the same eps. Inputs in [-2, 2] over
// 4*2*3 = 24 values per channel: fp32 gives ~1e-6 relative; tolerances 1e-5 relative + 1e-6.
TEST(OpWiring, BatchNormUsesTheLayersEpsAndMomentum) {
  const std::int64_t n = 4, c = 3, h = 2, w = 3, hw = h * w;
  const double eps = 0.5, momentum = 0.3;
  Graph g(graph_options(n));
  const Value x = nn::image_input(g, "x", c, h, w);
  nn::BatchNormOptions o;
  o.eps = static_cast<float>(eps);
  o.momentum = static_cast<float>(momentum);
  const Value y = nn::batch_norm(g, "bn", x, o);
  g.mark_output(y, "y");
  nn::softmax_cross_entropy(g, nn::flatten(g, y), nn::label_input(g, "labels"));
  Context ctx;
  ParameterStore store(g, ctx, 3);
  const std::vector<float> gamma = {1.5f, 0.75f, -1.25f}, beta = {0.25f, -0.5f, 1.f};
  set_values(store.value("bn.weight"), gamma);
  set_values(store.value("bn.bias"), beta);
  CompileOptions co;
  co.optimizer = OptimizerKind::kNone;
  Executor ex(g, store, ctx, co);
  kestrel::testing::feed_uniform(ex, "x", 47, -2.f, 2.f);
  kestrel::testing::feed_labels(ex, "labels", static_cast<int>(c * hw));
  ex.run();
  const std::vector<float> xv = ex.input("x").to_float_vector();
  std::vector<double> mean(c, 0.0), var(c, 0.0);  // var: biased (sum of squares / count)
  const double count = static_cast<double>(n * hw);
  for (std::int64_t ch = 0; ch < c; ++ch) {
    for (std::int64_t b = 0; b < n; ++b)
      for (std::int64_t i = 0; i < hw; ++i) mean[ch] += xv[static_cast<std::size_t>((b * c + ch) * hw + i)] / count;
    for (std::int64_t b = 0; b < n; ++b)
      for (std::int64_t i = 0; i < hw; ++i) {
        const double d = xv[static_cast<std::size_t>((b * c + ch) * hw + i)] - mean[ch];
        var[ch] += d * d / count;
      }
  }
  std::vector<double> y_train, y_infer, rm, rv;
  for (std::int64_t ch = 0; ch < c; ++ch) {
    rm.push_back(momentum * mean[ch]);
    rv.push_back((1 - momentum) * 1.0 + momentum * var[ch] * count / (count - 1));
  }
  for (std::int64_t b = 0; b < n; ++b)
    for (std::int64_t ch = 0; ch < c; ++ch)
      for (std::int64_t i = 0; i < hw; ++i) {
        const double v = xv[static_cast<std::size_t>((b * c + ch) * hw + i)];
        y_train.push_back(gamma[ch] * (v - mean[ch]) / std::sqrt(var[ch] + eps) + beta[ch]);
        y_infer.push_back(gamma[ch] * (v - rm[ch]) / std::sqrt(rv[ch] + eps) + beta[ch]);
      }
  EXPECT_TRUE(all_close(ex.output("y").to_float_vector(), y_train, 1e-6, 1e-5)) << "training output";
  EXPECT_TRUE(all_close(store.value("bn.running_mean").to_float_vector(), rm, 1e-6, 1e-5)) << "running mean";
  EXPECT_TRUE(all_close(store.value("bn.running_var").to_float_vector(), rv, 1e-6, 1e-5)) << "running var";

  CompileOptions inf;
  inf.training = false;
  Executor infer(g, store, ctx, inf);
  infer.input("x").copy_from(ex.input("x"), ctx.stream());
  kestrel::testing::feed_labels(infer, "labels", static_cast<int>(c * hw));
  infer.run();
  EXPECT_TRUE(all_close(infer.output("y").to_float_vector(), y_infer, 1e-6, 1e-5)) << "inference output";
}

// 2x2 max pooling of a 5x7 image gives 2x3 (floor): the last row and column are never read.
// Forward against window maxima; backward (training, input gradient) puts each window's
// gradient (softmax - onehot) / N of the flattened pooled values on its arg-max and zero
// everywhere else, in both layouts. Random fp32 inputs have no ties. Tolerances: fp32, 1e-6
// relative on gradients of ~0.03 (plus 1e-8); the maxima are copies, compared exactly.
TEST(OpWiring, MaxPool2x2FloorsOddHeightAndWidth) {
  const std::int64_t n = 2, c = 3, h = 5, w = 7, ph = 2, pw = 3, k = c * ph * pw;
  for (Layout layout : {Layout::kNCHW, Layout::kNHWC}) {
    Graph g(graph_options(n, layout));
    const Value x = nn::image_input(g, "x", c, h, w);
    const Value y = nn::max_pool2x2(g, x);
    ASSERT_EQ(g.info(y).shape(), (Shape{n, c, ph, pw})) << layout_name(layout);
    g.mark_output(y, "y");
    nn::softmax_cross_entropy(g, nn::flatten(g, y), nn::label_input(g, "labels"));
    Context ctx;
    ParameterStore store(g, ctx, 1);
    CompileOptions co;
    co.optimizer = OptimizerKind::kNone;
    co.input_gradients = {"x"};
    Executor ex(g, store, ctx, co);
    kestrel::testing::feed_uniform(ex, "x", 53, -3.f, 3.f);
    const std::vector<std::int32_t> labels = set_labels(ex, "labels", {5, 12});
    ex.run();
    const std::vector<float> xv = ex.input("x").to_float_vector();
    std::vector<float> want_y;
    std::vector<std::size_t> argmax;
    for (std::int64_t b = 0; b < n; ++b)
      for (std::int64_t ch = 0; ch < c; ++ch)
        for (std::int64_t p = 0; p < ph; ++p)
          for (std::int64_t q = 0; q < pw; ++q) {
            std::size_t best = static_cast<std::size_t>(((b * c + ch) * h + 2 * p) * w + 2 * q);
            for (std::int64_t i = 0; i < 2; ++i)
              for (std::int64_t j = 0; j < 2; ++j) {
                const auto at = static_cast<std::size_t>(((b * c + ch) * h + 2 * p + i) * w + 2 * q + j);
                if (xv[at] > xv[best]) best = at;
              }
            want_y.push_back(xv[best]);
            argmax.push_back(best);
          }
    const std::vector<float> got_y = ex.output("y").to_float_vector();
    EXPECT_TRUE(kestrel::testing::bit_equal(got_y, want_y)) << layout_name(layout);
    const Ce ce = smoothed_ce(want_y, labels, n, k, 0.0);
    std::vector<double> want_dx(xv.size(), 0.0);
    for (std::size_t i = 0; i < argmax.size(); ++i) want_dx[argmax[i]] = ce.grad[i];
    EXPECT_TRUE(all_close(ex.input_gradient("x").to_float_vector(), want_dx, 1e-8, 1e-6)) << layout_name(layout);
  }
}

// The ops' own shape checks (nn::linear checks the rank before the op sees it, so the ops are
// added directly): each refusal is a kestrel::Error naming the op, the node and the shapes.
TEST(OpWiring, LinearConvMaxPoolAndFlattenRefuseShapesTheyCannotUse) {
  Graph g(graph_options(2));
  const Value x3 = g.input("x3", {Shape{2, 3, 4}});
  const Value x2 = g.input("x2", {Shape{2, 4}});
  const Value w54 = g.parameter("w54", {Shape{5, 4}}, Init::uniform(0.5f));
  const Value w53 = g.parameter("w53", {Shape{5, 3}}, Init::uniform(0.5f));
  const Value b4 = g.parameter("b4", {Shape{4}}, Init::zeros());

  const std::string rank = error_of([&] { g.add_node1(make_linear_op(), "fc", {x3, w54}); });
  EXPECT_NE(rank.find("Linear 'fc'"), std::string::npos) << rank;
  EXPECT_NE(rank.find("expected [N, features], got [2, 3, 4]"), std::string::npos) << rank;
  const std::string features = error_of([&] { g.add_node1(make_linear_op(), "fc", {x2, w53}); });
  EXPECT_NE(features.find("expected 3 features (weight is [out, in]), got 4"), std::string::npos) << features;
  const std::string bias = error_of([&] { g.add_node1(make_linear_op(), "fc", {x2, w54, b4}); });
  EXPECT_NE(bias.find("bias"), std::string::npos) << bias;
  EXPECT_NE(bias.find("expected [5] fp32, got [4] fp32"), std::string::npos) << bias;
  const Value b5_bf16 = g.input("b5_bf16", {Shape{5}, DType::kBFloat16});
  const std::string bias_dtype = error_of([&] { g.add_node1(make_linear_op(), "fc", {x2, w54, b5_bf16}); });
  EXPECT_NE(bias_dtype.find("expected [5] fp32, got [5] bf16"), std::string::npos) << bias_dtype;
  EXPECT_NO_THROW(g.add_node1(make_linear_op(), "fc_ok", {x2, w54}));
  // A convolution's bias, the same rule: [K] fp32.
  const Value x4 = g.input("x4", {Shape{2, 3, 5, 5}});
  const Value w4 = g.input("w4", {Shape{5, 3, 3, 3}});
  const std::string conv_len = error_of([&] { g.add_node1(make_conv2d_op({}), "conv", {x4, w4, b4}); });
  EXPECT_NE(conv_len.find("Conv2d 'conv'"), std::string::npos) << conv_len;
  EXPECT_NE(conv_len.find("expected [5] fp32, got [4] fp32"), std::string::npos) << conv_len;
  const std::string conv_dtype = error_of([&] { g.add_node1(make_conv2d_op({}), "conv", {x4, w4, b5_bf16}); });
  EXPECT_NE(conv_dtype.find("expected [5] fp32, got [5] bf16"), std::string::npos) << conv_dtype;

  const std::string pool_rank = error_of([&] { nn::max_pool2x2(g, x3); });
  EXPECT_NE(pool_rank.find("MaxPool2x2 'maxpool'"), std::string::npos) << pool_rank;
  EXPECT_NE(pool_rank.find("expected [N, C, H, W], got [2, 3, 4]"), std::string::npos) << pool_rank;
  for (const Shape& s : {Shape{2, 3, 1, 4}, Shape{2, 3, 4, 1}}) {
    const Value img = g.input("img" + std::to_string(s[2]), {s});
    const std::string small = error_of([&] { nn::max_pool2x2(g, img); });
    EXPECT_NE(small.find("expected height and width >= 2, got " + s.to_string()), std::string::npos) << small;
  }
  EXPECT_NO_THROW(nn::max_pool2x2(g, g.input("img22", {Shape{2, 3, 2, 2}})));

  for (const Value v : {x3, x2}) {
    const std::string flat = error_of([&] { nn::flatten(g, v); });
    EXPECT_NE(flat.find("Flatten 'flatten'"), std::string::npos) << flat;
    EXPECT_NE(flat.find("expected [N, C, H, W], got " + g.info(v).shape().to_string()), std::string::npos) << flat;
  }
}

// BatchNorm2d's four channel vectors (gamma, beta, running mean and variance) must each be [C]
// fp32: one of the wrong length (or dtype) at a time is refused, naming it.
TEST(OpWiring, BatchNormRefusesChannelVectorsOfTheWrongLength) {
  Graph g(graph_options(2));
  const Value x = g.input("x", {Shape{2, 3, 4, 4}});
  const char* roles[] = {"weight (gamma)", "bias (beta)", "running_mean", "running_var"};
  std::vector<Value> good, bad, bf16;
  for (int i = 0; i < 4; ++i) {
    good.push_back(g.input("good" + std::to_string(i), {Shape{3}}));
    bad.push_back(g.input("bad" + std::to_string(i), {Shape{4}}));
    bf16.push_back(g.input("bf16_" + std::to_string(i), {Shape{3}, DType::kBFloat16}));
  }
  for (int i = 0; i < 4; ++i) {
    std::vector<Value> in = {x, good[0], good[1], good[2], good[3]};
    in[static_cast<std::size_t>(1 + i)] = bad[static_cast<std::size_t>(i)];
    const std::string len = error_of([&] { g.add_node(make_batchnorm_op({}), "bn", in); });
    EXPECT_NE(len.find("BatchNorm2d 'bn'"), std::string::npos) << len;
    EXPECT_NE(len.find(std::string(roles[i]) + " 'bad" + std::to_string(i) + "'"), std::string::npos) << len;
    EXPECT_NE(len.find("expected [3] fp32, got [4] fp32"), std::string::npos) << len;
    in[static_cast<std::size_t>(1 + i)] = bf16[static_cast<std::size_t>(i)];
    const std::string dtype = error_of([&] { g.add_node(make_batchnorm_op({}), "bn", in); });
    EXPECT_NE(dtype.find("expected [3] fp32, got [3] bf16"), std::string::npos) << dtype;
  }
  EXPECT_NO_THROW(g.add_node(make_batchnorm_op({}), "bn", {x, good[0], good[1], good[2], good[3]}));
}

// d loss / d x through a cast has x's dtype: fp32 -> bf16 -> loss gives an fp32 gradient, and
// bf16 -> fp32 -> loss a bf16 one, with the values (softmax - onehot) / N of the logits the loss
// saw. Tolerances: the bf16 round trip of a logit in [-3, 3] moves it by <= 2^-8 relative
// (~0.012), which moves a gradient entry by < 0.012 * p / N; a bf16 gradient is rounded once
// (2^-8 relative). Absolute 2e-2 / N and relative 2^-7 cover both.
TEST(OpWiring, CastBackwardReturnsTheInputsDtype) {
  const std::int64_t n = 3, k = 4;
  for (const DType from : {DType::kFloat32, DType::kBFloat16}) {
    const DType to = from == DType::kFloat32 ? DType::kBFloat16 : DType::kFloat32;
    Graph g(graph_options(n));
    const Value x = g.input("x", {Shape{n, k}, from});
    const Value z = g.add_node1(make_cast_op(to), "cast", {x});
    ASSERT_EQ(g.info(z).dtype(), to);
    nn::softmax_cross_entropy(g, z, nn::label_input(g, "labels"));
    Context ctx;
    ParameterStore store(g, ctx, 1);
    CompileOptions co;
    co.optimizer = OptimizerKind::kNone;
    co.input_gradients = {"x"};
    Executor ex(g, store, ctx, co);
    kestrel::testing::feed_uniform(ex, "x", 61, -3.f, 3.f);
    const std::vector<std::int32_t> labels = set_labels(ex, "labels", {2, 0, 3});
    ex.run();
    const Tensor dx = ex.input_gradient("x");
    EXPECT_EQ(dx.dtype(), from) << "cast from " << dtype_name(from);
    EXPECT_EQ(dx.shape(), (Shape{n, k}));
    const Ce want = smoothed_ce(ex.input("x").to_float_vector(), labels, n, k, 0.0);
    EXPECT_TRUE(all_close(dx.to_float_vector(), want.grad, 2e-2 / n, std::ldexp(1.0, -7)))
        << "cast from " << dtype_name(from);
  }
}

// A convolution's optional bias starts at zero whatever the seed (layers/nn.h: "its optional
// bias 0", unlike nn.Conv2d's U(+-1/sqrt(fan_in))), while its weight is random.
TEST(OpWiring, Conv2dBiasStartsAtZero) {
  Graph g(graph_options(2));
  nn::Conv2dOptions o;
  o.bias = true;
  nn::conv2d(g, "conv", nn::image_input(g, "x", 3, 6, 6), 8, 3, o);
  for (std::uint64_t seed : {1u, 2u, 99u}) {
    Context ctx;
    ParameterStore store(g, ctx, seed);
    const std::vector<float> bias = store.value("conv.bias").to_float_vector();
    ASSERT_EQ(bias.size(), 8u);
    for (std::size_t i = 0; i < bias.size(); ++i) EXPECT_EQ(bias[i], 0.f) << "seed " << seed << " [" << i << "]";
    const std::vector<float> weight = store.value("conv.weight").to_float_vector();
    EXPECT_TRUE(std::all_of(weight.begin(), weight.end(), [](float v) { return std::isfinite(v); }));
    EXPECT_GT(std::count_if(weight.begin(), weight.end(), [](float v) { return v != 0.f; }), 200);
  }
}

// Softmax and the cross-entropy loss refuse what they cannot use: softmax a non-matrix; the loss
// labels that are not [N] int32 and a smoothing of 1 (the op itself, not only nn's wrapper);
// and a cross-entropy whose loss is not the graph's loss (its backward hands out the fused
// gradient as d loss / d logits, valid only then).
TEST(OpWiring, SoftmaxAndCrossEntropyRefuseWhatTheyCannotUse) {
  {
    Graph g(graph_options(2));
    const Value x4 = g.input("x4", {Shape{2, 3, 4, 4}});
    const std::string e = error_of([&] { nn::softmax(g, x4); });
    EXPECT_NE(e.find("Softmax 'softmax'"), std::string::npos) << e;
    EXPECT_NE(e.find("[N, classes]"), std::string::npos) << e;
    const Value z = g.input("z", {Shape{2, 5}});
    for (const TypeSpec& bad : {TypeSpec{Shape{3}, DType::kInt32}, TypeSpec{Shape{2}, DType::kFloat32},
                                TypeSpec{Shape{2, 1}, DType::kInt32}}) {
      const Value labels = g.input("labels_" + bad.shape.to_string() + dtype_name(bad.dtype), bad);
      const std::string l = error_of([&] { nn::softmax_cross_entropy(g, z, labels); });
      EXPECT_NE(l.find("expected [2] int32, got " + bad.shape.to_string() + " " + dtype_name(bad.dtype)),
                std::string::npos) << l;
    }
    const std::string s = error_of([] { (void)make_softmax_cross_entropy_op(1.f); });
    EXPECT_NE(s.find("label smoothing must be in [0, 1), got 1"), std::string::npos) << s;
  }
  {  // a first cross-entropy's loss fed on (as a feature) into the graph's loss: its backward
     // would hand out its fused gradient as if its loss were the graph's
    Graph g(graph_options(2));
    const Value x = g.input("x", {Shape{2, 3}});
    const Value first = nn::softmax_cross_entropy(g, nn::linear(g, "fa", x, 4), nn::label_input(g, "labels"));
    const Value row = nn::stack(g, {first, first});  // [1, 2]
    const Value second =
        nn::softmax_cross_entropy(g, nn::linear(g, "fb", row, 4), g.input("label1", {Shape{1}, DType::kInt32}));
    EXPECT_EQ(g.loss().id, second.id);
    Context ctx;
    ParameterStore store(g, ctx, 1);
    const std::string e = error_of([&] { Executor ex(g, store, ctx); });
    EXPECT_NE(e.find("SoftmaxCrossEntropy 'loss': the cross-entropy loss must be the graph's loss and nothing may consume it"),
              std::string::npos) << e;
  }
}

// Activations name themselves in their refusals (each its own name), and a cast takes and makes
// only floating dtypes.
TEST(OpWiring, ActivationsNameThemselvesAndCastsTakeAndMakeOnlyFloatingDtypes) {
  Graph g(graph_options(2));
  const Value ints = g.input("ints", {Shape{2, 3}, DType::kInt32});
  const std::pair<const char*, std::function<Value()>> acts[] = {
      {"ReLU 'relu'", [&] { return nn::relu(g, ints); }},
      {"Sigmoid 'sigmoid'", [&] { return nn::sigmoid(g, ints); }},
      {"Tanh 'tanh'", [&] { return nn::tanh(g, ints); }}};
  for (const auto& [name, build] : acts) {
    const std::string e = error_of([&] { (void)build(); });
    EXPECT_NE(e.find(std::string(name) + ": input"), std::string::npos) << e;
    EXPECT_NE(e.find("expected dtype fp32, bf16 or fp16, got int32"), std::string::npos) << e;
  }
  const std::string to_int = error_of([] { (void)make_cast_op(DType::kInt32); });
  EXPECT_NE(to_int.find("cast target must be fp32, bf16 or fp16, got int32"), std::string::npos) << to_int;
  const std::string from_int = error_of([&] { g.add_node1(make_cast_op(DType::kFloat32), "cast", {ints}); });
  EXPECT_NE(from_int.find("Cast<fp32> 'cast'"), std::string::npos) << from_int;
  EXPECT_NE(from_int.find("expected dtype fp32, bf16 or fp16, got int32"), std::string::npos) << from_int;
}

// Global average pooling takes only [N, C, H, W]; Linear takes two or three inputs and a weight
// of the input's dtype and rank 2.
TEST(OpWiring, LinearAndGlobalAvgPoolRefuseWhatTheyCannotUse) {
  Graph g(graph_options(2));
  const Value x2 = g.input("x2", {Shape{2, 4}});
  const std::string pool = error_of([&] { nn::global_avg_pool(g, x2); });
  EXPECT_NE(pool.find("GlobalAvgPool"), std::string::npos) << pool;
  EXPECT_NE(pool.find("expected [N, C, H, W], got [2, 4]"), std::string::npos) << pool;
  const Value w54 = g.parameter("w54", {Shape{5, 4}}, Init::uniform(0.5f));
  const Value b5 = g.parameter("b5", {Shape{5}}, Init::zeros());
  const std::string four = error_of([&] { g.add_node1(make_linear_op(), "fc", {x2, w54, b5, b5}); });
  EXPECT_NE(four.find("Linear 'fc'"), std::string::npos) << four;
  EXPECT_NE(four.find("expected 2 or 3, got 4"), std::string::npos) << four;
  const std::pair<TypeSpec, const char*> bad_weights[] = {{TypeSpec{Shape{5, 4}, DType::kBFloat16}, "expected dtype fp32, got bf16"},
                                                          {TypeSpec{Shape{5, 4, 1}, DType::kFloat32}, "expected rank 2, got rank 3"}};
  for (const auto& [bad, why] : bad_weights) {
    const Value w = g.input("w_" + std::to_string(bad.shape.rank()) + dtype_name(bad.dtype), bad);
    const std::string e = error_of([&] { g.add_node1(make_linear_op(), "fc", {x2, w}); });
    EXPECT_NE(e.find("Linear 'fc': weight"), std::string::npos) << e;
    EXPECT_NE(e.find(why), std::string::npos) << e;
  }
  EXPECT_EQ(g.info(g.add_node1(make_linear_op(), "fc_ok", {x2, w54, b5})).shape(), (Shape{2, 5}));
}
