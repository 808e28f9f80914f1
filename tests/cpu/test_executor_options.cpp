// Executor options added for the seed experiments, on the CPU backend: gradients with respect
// to graph inputs (CompileOptions::input_gradients) against closed forms, Monte Carlo dropout in
// an inference executor (CompileOptions::sample_dropout), and Init::with_range.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>

#include "error_text.h"
#include "grad_check.h"
#include "refused_run.h"
#include "test_support.h"
#include "kestrel/core/executor.h"
#include "kestrel/core/ops/elementwise_ops.h"
#include "kestrel/core/ops/nn_ops.h"
#include "kestrel/kernels/cpu/dropout.h"
#include "kestrel/layers/nn.h"

using namespace kestrel;
using kestrel::testing::error_of;
using kestrel::testing::graph_options;

namespace {
CompileOptions gradients_of(std::vector<std::string> inputs) {
  CompileOptions co;
  co.optimizer = OptimizerKind::kNone;
  co.input_gradients = std::move(inputs);
  return co;
}
}  // namespace

TEST(InputGradients, LinearSoftmaxCrossEntropyMatchesTheClosedForm) {
  // loss = mean_n CE(x_n W^T + b, y_n): d loss / d x_n = (softmax(z_n) - onehot(y_n)) W / N.
  const std::int64_t n = 5, f = 7, k = 4;
  Graph g(graph_options(n));
  const Value x = g.input("x", {Shape{n, f}});
  const Value labels = nn::label_input(g, "labels");
  const Value z = nn::linear(g, "fc", x, k);
  g.mark_output(z, "logits");
  nn::softmax_cross_entropy(g, z, labels);
  Context ctx;
  ParameterStore store(g, ctx, 4);
  Executor ex(g, store, ctx, gradients_of({"x"}));
  kestrel::testing::feed_uniform(ex, "x", 8);
  kestrel::testing::feed_labels(ex, "labels", static_cast<int>(k));
  ex.run();
  const std::vector<float> zs = ex.output("logits").to_float_vector();
  const std::vector<float> w = store.value("fc.weight").to_float_vector();
  const auto* y = ex.input("labels").data_as<std::int32_t>();
  std::vector<double> want(static_cast<std::size_t>(n * f), 0.0);
  for (std::int64_t i = 0; i < n; ++i) {
    double m = -1e30, s = 0;
    for (std::int64_t c = 0; c < k; ++c) m = std::max(m, static_cast<double>(zs[i * k + c]));
    for (std::int64_t c = 0; c < k; ++c) s += std::exp(zs[i * k + c] - m);
    for (std::int64_t c = 0; c < k; ++c) {
      const double dz = (std::exp(zs[i * k + c] - m) / s - (c == y[i] ? 1.0 : 0.0)) / static_cast<double>(n);
      for (std::int64_t j = 0; j < f; ++j) want[i * f + j] += dz * w[c * f + j];
    }
  }
  const Tensor dx = ex.input_gradient("x");
  EXPECT_EQ(dx.shape(), (Shape{n, f}));
  EXPECT_TRUE(kestrel::testing::all_close(dx.to_float_vector(), want, 1e-7, 1e-5));
}

TEST(InputGradients, AnInputUsedTwiceGetsBothContributionsAndParametersAreUnchanged) {
  auto build = [](Graph& g) {
    const Value x = g.input("x", {Shape{4, 6}});
    const Value labels = nn::label_input(g, "labels");
    const Value a = nn::linear(g, "a", x, 5);
    const Value b = nn::linear(g, "b", nn::sigmoid(g, x), 5);  // x feeds two nodes
    nn::softmax_cross_entropy(g, nn::add(g, nn::tanh(g, a), b), labels);
  };
  kestrel::testing::GradCheckOptions o;
  o.inputs = {"x"};
  o.coords_per_param = 24;
  EXPECT_TRUE(kestrel::testing::check_gradients(graph_options(4), build, [](Executor& ex) {
    kestrel::testing::feed_uniform(ex, "x", 2);
    kestrel::testing::feed_labels(ex, "labels", 5);
  }, o));
  // Asking for the input gradient changes nothing else: the parameter gradients are the same.
  std::vector<float> grads[2];
  for (int with = 0; with < 2; ++with) {
    Graph g(graph_options(4));
    build(g);
    Context ctx;
    ParameterStore store(g, ctx, 3);
    Executor ex(g, store, ctx, gradients_of(with ? std::vector<std::string>{"x"} : std::vector<std::string>{}));
    kestrel::testing::feed_uniform(ex, "x", 2);
    kestrel::testing::feed_labels(ex, "labels", 5);
    ex.run();
    grads[with] = store.flat_grads().to_float_vector();
  }
  EXPECT_TRUE(kestrel::testing::bit_equal(grads[1], grads[0]));
}

TEST(InputGradients, ErrorsSayWhatIsWrong) {
  Graph g(graph_options(2));
  const Value x = g.input("x", {Shape{2, 3}});
  g.input("unused", {Shape{2, 3}});
  const Value labels = nn::label_input(g, "labels");
  nn::softmax_cross_entropy(g, nn::linear(g, "fc", x, 3), labels);
  Context ctx;
  ParameterStore store(g, ctx, 1);
  auto compile_error = [&](CompileOptions co) { return error_of([&] { Executor ex(g, store, ctx, co); }); };
  EXPECT_NE(compile_error(gradients_of({"unused"})).find("the loss does not depend on it"), std::string::npos);
  EXPECT_NE(compile_error(gradients_of({"labels"})).find("not a floating-point graph input"), std::string::npos);
  const std::string param = compile_error(gradients_of({"fc.weight"}));
  EXPECT_NE(param.find("it is a parameter"), std::string::npos) << param;
  EXPECT_NE(compile_error(gradients_of({"nope"})).find("no value named 'nope'"), std::string::npos);
  CompileOptions inference;
  inference.training = false;
  inference.input_gradients = {"x"};
  EXPECT_NE(compile_error(inference).find("need a training executor"), std::string::npos);
  Executor ex(g, store, ctx, gradients_of({"x"}));
  const std::string lookup = error_of([&] { ex.input_gradient("labels"); });
  EXPECT_NE(lookup.find("no input gradient named 'labels' (input gradients: x)"), std::string::npos) << lookup;
  Executor plain(g, store, ctx, CompileOptions{});
  const std::string none = error_of([&] { plain.input_gradient("x"); });
  EXPECT_NE(none.find("no input gradient named 'x' (input gradients: none)"), std::string::npos) << none;
}

TEST(SampleDropout, InferenceExecutorDrawsAFreshMaskEveryRunWithTheTrainingFormula) {
  const std::int64_t rows = 16, cols = 64;
  const float p = 0.25f;
  Graph g(graph_options(rows));
  const Value x = g.input("x", {Shape{rows, cols}});
  g.mark_output(nn::dropout(g, "d", x, p), "y");
  Context ctx;
  ParameterStore store(g, ctx, 6);
  CompileOptions mc_o;
  mc_o.training = false;
  mc_o.sample_dropout = true;
  Executor mc(g, store, ctx, mc_o);
  kestrel::testing::feed_uniform(mc, "x", 1, 1.f, 2.f);
  const std::vector<float> xs = mc.input("x").to_float_vector();
  const int runs = 400;
  std::vector<double> mean(xs.size(), 0.0);
  std::vector<float> first;
  double kept = 0;
  for (int r = 0; r < runs; ++r) {
    mc.run();
    const std::vector<float> y = mc.output("y").to_float_vector();
    if (r == 0) first = y;
    if (r == 1) {
      EXPECT_NE(y, first) << "a new mask every run";
    }
    for (std::size_t i = 0; i < y.size(); ++i) {
      // Training-mode inverted dropout: each element is 0 or x / (1 - p).
      ASSERT_TRUE(y[i] == 0.f || y[i] == static_cast<float>(xs[i] * (1.0f / (1.0f - p)))) << i;
      kept += y[i] != 0.f;
      mean[i] += y[i] / static_cast<double>(runs);
    }
  }
  EXPECT_EQ(store.read_counters().rng_offset, static_cast<std::uint64_t>(runs)) << "one slot per run";
  const double n = static_cast<double>(runs) * static_cast<double>(xs.size());
  EXPECT_NEAR(kept / n, 1.0 - p, 5.0 * std::sqrt(p * (1 - p) / n));
  // The mean over masks approaches x (the inference output): the mean of |mean - x| / x is
  // about sqrt(p / ((1 - p) runs)) * sqrt(2 / pi) = 0.023 here.
  double err = 0;
  for (std::size_t i = 0; i < xs.size(); ++i) err += std::fabs(mean[i] - xs[i]) / xs[i];
  EXPECT_LT(err / static_cast<double>(xs.size()), 0.035);
  EXPECT_GT(err / static_cast<double>(xs.size()), 0.012) << "suspiciously exact for 400 masks";
  // A plain inference executor is the identity and leaves the offset alone.
  CompileOptions eval_o;
  eval_o.training = false;
  Executor eval(g, store, ctx, eval_o);
  eval.input("x").copy_from(mc.input("x"), ctx.stream());
  eval.run();
  EXPECT_EQ(eval.output("y").to_float_vector(), xs);
  EXPECT_EQ(store.read_counters().rng_offset, static_cast<std::uint64_t>(runs));
  CompileOptions bad = mc_o;
  bad.training = true;
  EXPECT_NE(error_of([&] { Executor e(g, store, ctx, bad); }).find("sample_dropout is for inference"), std::string::npos);
}

TEST(SampleDropout, BatchNormKeepsItsRunningStatistics) {
  Graph g(graph_options(8));
  const Value x = nn::image_input(g, "x", 3, 2, 2);
  Value h = nn::batch_norm(g, "bn", nn::conv2d(g, "c", x, 4, 1));
  g.mark_output(nn::dropout(g, "d", h, 0.5f), "y");
  Context ctx;
  ParameterStore store(g, ctx, 2);
  store.value("bn.running_mean").fill(0.25f, ctx.stream());
  CompileOptions mc_o;
  mc_o.training = false;
  mc_o.sample_dropout = true;
  Executor mc(g, store, ctx, mc_o);
  kestrel::testing::feed_uniform(mc, "x", 3);
  CompileOptions eval_o;
  eval_o.training = false;
  Executor eval(g, store, ctx, eval_o);
  eval.input("x").copy_from(mc.input("x"), ctx.stream());
  mc.run();
  eval.run();
  // Every kept element equals twice the inference output: BN normalised with the running
  // statistics in both, and the running statistics did not move.
  const std::vector<float> a = mc.output("y").to_float_vector(), b = eval.output("y").to_float_vector();
  int kept = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i] == 0.f) continue;
    ++kept;
    EXPECT_FLOAT_EQ(a[i], 2.f * b[i]) << i;
  }
  EXPECT_GT(kept, 0);
  EXPECT_EQ(store.value("bn.running_mean").to_float_vector(), std::vector<float>(4, 0.25f));
}

TEST(InitRange, OverwritesOneRangeAfterTheDraw) {
  Graph g(graph_options(1));
  g.parameter("b", {Shape{12}}, Init::uniform(0.1f).with_range(4, 8, 1.f));
  g.parameter("c", {Shape{12}}, Init::uniform(0.1f));
  g.parameter("bad", {Shape{3}}, Init::zeros().with_range(2, 4, 1.f));
  Context ctx;
  const std::string err = error_of([&] { ParameterStore store(g, ctx, 1); });
  EXPECT_NE(err.find("parameter 'bad': constant range [2, 4) lies outside its 3 elements"), std::string::npos) << err;
  Graph ok(graph_options(1));
  ok.parameter("b", {Shape{12}}, Init::uniform(0.1f).with_range(4, 8, 1.f));
  ParameterStore store(ok, ctx, 1);
  const std::vector<float> v = store.value("b").to_float_vector();
  for (int i = 0; i < 12; ++i) {
    if (i >= 4 && i < 8) EXPECT_EQ(v[i], 1.f) << i;
    else EXPECT_TRUE(v[i] != 0.f && std::fabs(v[i]) <= 0.1f) << i << " " << v[i];
  }
}

// An executor may run on another context than its parameter store's (same device); feeding and
// reading go through context(), the executor's own (the experiments' feed_batch and accuracy).
TEST(ExecutorContext, IsTheExecutorsOwnNotTheStores) {
  Graph g(graph_options(2));
  const Value x = g.input("x", {Shape{2, 3}});
  g.mark_output(nn::linear(g, "fc", x, 2), "y");
  Context store_ctx, run_ctx;
  ParameterStore store(g, store_ctx, 1);
  CompileOptions inference;
  inference.training = false;
  Executor ex(g, store, run_ctx, inference);
  EXPECT_EQ(&ex.context(), &run_ctx);
  EXPECT_EQ(&ex.store().context(), &store_ctx);
}

TEST(BindInput, CopiesAMatchingTensorAndNamesTheInputOtherwiseLeavingItUnchanged) {
  const std::int64_t n = 3, f = 4;
  Graph g(graph_options(n));
  const Value x = g.input("x", {Shape{n, f}});
  const Value labels = nn::label_input(g, "labels");
  nn::softmax_cross_entropy(g, nn::linear(g, "fc", x, 2), labels);
  Context ctx;
  ParameterStore store(g, ctx, 1);
  Executor ex(g, store, ctx, gradients_of({}));
  std::vector<float> values(static_cast<std::size_t>(n * f));
  for (std::size_t i = 0; i < values.size(); ++i) values[i] = 0.25f * static_cast<float>(i) - 1.f;
  ex.bind_input("x", Tensor::from_vector(values, Shape{n, f}));
  EXPECT_EQ(ex.input("x").to_float_vector(), values);

  const std::string shape = error_of([&] { ex.bind_input("x", Tensor::from_vector(std::vector<float>(12), Shape{12})); });
  EXPECT_NE(shape.find("bind_input('x')"), std::string::npos) << shape;
  EXPECT_NE(shape.find("Tensor([12]"), std::string::npos) << shape;
  EXPECT_NE(shape.find("Tensor([3, 4]"), std::string::npos) << shape;
  const std::string dtype = error_of([&] {
    ex.bind_input("x", Tensor::from_vector(std::vector<float>(12), Shape{n, f}, DType::kBFloat16));
  });
  EXPECT_NE(dtype.find("bf16"), std::string::npos) << dtype;
  EXPECT_NE(error_of([&] { ex.bind_input("x", Tensor()); }).find("undefined"), std::string::npos);
  EXPECT_NE(error_of([&] { ex.bind_input("nope", Tensor::from_vector(values, Shape{n, f})); }).find("nope"),
            std::string::npos);
  // A non-contiguous view of the right shape (4 of 8 columns): named, not copy_from's message.
  const Tensor wide = Tensor::from_vector(std::vector<float>(static_cast<std::size_t>(n * 8), 7.f), Shape{n, 8});
  const std::string view = error_of([&] { ex.bind_input("x", wide.narrow(1, 2, f)); });
  EXPECT_NE(view.find("bind_input('x'): got a non-contiguous view"), std::string::npos) << view;
  EXPECT_EQ(ex.input("x").to_float_vector(), values);  // no failed call wrote into the input
}

// Values with three and more consumers (x feeds linear, tanh and sigmoid; every h feeds mul and
// tanh, the last also an add): autodiff sums their gradient parts with a chain of Adds. It read
// the value's name through a reference into the graph's values while appending those Adds, which
// may move them (use after free: bad_alloc, garbage node names, or a crash; ASan names it).
TEST(InputGradients, FanOutOfThreeOrMoreSumsEveryPart) {
  kestrel::testing::GradCheckOptions o;
  o.inputs = {"x"};
  EXPECT_TRUE(kestrel::testing::check_gradients(graph_options(2), [](Graph& g) {
    const Value x = g.input("x", {Shape{2, 3}});
    const Value labels = nn::label_input(g, "labels");
    Value h = nn::linear(g, "fc", x, 3);
    for (int k = 0; k < 3; ++k) h = nn::mul(g, h, nn::tanh(g, h));
    nn::softmax_cross_entropy(g, nn::add(g, nn::add(g, nn::tanh(g, x), nn::sigmoid(g, x)), h), labels);
  }, [](Executor& ex) {
    kestrel::testing::feed_uniform(ex, "x", 3, -1.f, 1.f);
    kestrel::testing::feed_labels(ex, "labels", 3);
  }, o));
}

// A bf16 graph that uses a parameter through its bf16 shadow and also as its fp32 master: both
// contribute to its gradient (the sum mixed a bf16 and an fp32 part in one Add and could not
// compile). Checked against the same network with both uses in fp32 (bf16 rounding: 2e-2).
TEST(ParameterGradients, ShadowAndMasterUsesOfOneParameterBothContribute) {
  auto build = [](DType dt) {
    GraphOptions o;
    o.batch = 2;
    o.dtype = dt;
    Graph g(o);
    const Value x = g.input("x", {Shape{2, 3}, dt});
    const Value xf = g.input("xf", {Shape{2, 3}, DType::kFloat32});
    const Value labels = nn::label_input(g, "labels");
    const Value w_compute = g.parameter("w", {Shape{3, 3}}, Init::uniform(0.5f), true, dt);
    const Value w_master = g.find_value("w");
    const Value a = g.add_node1(make_linear_op(), "lin", {x, w_compute});
    Value b = g.add_node1(make_linear_op(), "lin32", {xf, w_master});
    if (dt != DType::kFloat32) b = g.add_node1(make_cast_op(dt), "cast", {b});
    nn::softmax_cross_entropy(g, nn::add(g, a, b), labels);
    return g;
  };
  std::vector<float> grads[2];
  int k = 0;
  for (DType dt : {DType::kFloat32, DType::kBFloat16}) {
    const Graph g = build(dt);
    Context ctx;
    ParameterStore store(g, ctx, 1);
    CompileOptions co;
    co.optimizer = OptimizerKind::kNone;
    Executor ex(g, store, ctx, co);
    ex.input("x").copy_from(Tensor::from_vector({0.5f, -1.f, 0.25f, 1.f, 0.75f, -0.5f}, Shape{2, 3}, dt), ctx.stream());
    ex.input("xf").copy_from(Tensor::from_vector({1.f, 0.5f, -0.25f, -1.f, 0.25f, 0.5f}, Shape{2, 3}), ctx.stream());
    kestrel::testing::feed_labels(ex, "labels", 3);
    ex.run();
    grads[k++] = ex.gradient("w").to_float_vector();
  }
  ASSERT_EQ(grads[0].size(), 9u);
  double largest = 0.0;
  for (std::size_t i = 0; i < 9; ++i) {
    EXPECT_NEAR(grads[1][i], grads[0][i], 2e-2) << i;
    largest = std::max(largest, std::fabs(static_cast<double>(grads[0][i])));
  }
  EXPECT_GT(largest, 0.05) << "a gradient worth comparing";
}

// output("loss") is the graph's loss; an output marked "loss" that is another value was silently
// hidden by it (output("loss") gave the logits). Now the executor says so.
TEST(ParameterGradients, AnOutputNamedLossMustBeTheLoss) {
  Graph g(graph_options(2));
  const Value x = g.input("x", {Shape{2, 3}});
  const Value z = nn::linear(g, "fc", x, 3);
  g.mark_output(z, "loss");
  nn::softmax_cross_entropy(g, z, nn::label_input(g, "labels"));
  Context ctx;
  ParameterStore store(g, ctx, 1);
  const std::string e = error_of([&] { Executor ex(g, store, ctx); });
  EXPECT_NE(e.find("an output is named 'loss' but is 'fc:y'"), std::string::npos) << e;
}

// A run refused part-way changes nothing in the store, and a retry with good data continues the
// same run bit for bit (before: the BN statistics had absorbed the refused batch and the dropout
// stream had moved on); tests/support/refused_run.h has the protocol, the CUDA suite runs it too.
TEST(RefusedRun, ChangesNothingInTheStoreAndTheRetryContinuesTheSameRun) {
  for (const auto refusal : {kestrel::testing::Refusal::kBadLabel, kestrel::testing::Refusal::kNaNImage}) {
    SCOPED_TRACE(refusal == kestrel::testing::Refusal::kBadLabel ? "a label out of range" : "check_numerics, a NaN image");
    Context ctx;
    kestrel::testing::check_refused_run_changes_nothing(ctx, refusal);
  }
}

// An input gradient is readable after the step (executor.h), however early in the backward pass
// it is computed: here d loss / d extra is the gradient of the logits (an Add passes it through),
// computed by the first backward node and last read by the head's backward, after which the
// deeper layers' backward nodes run. Closed form: (softmax(z) - onehot(y)) / N.
TEST(InputGradients, AnEarlyInputGradientSurvivesTheRestOfTheBackwardPass) {
  const std::int64_t n = 6, f = 12, hid = 16, k = 16;
  GraphOptions go;
  go.batch = n;
  Graph g(go);
  const Value x = g.input("x", {Shape{n, f}});
  const Value extra = g.input("extra", {Shape{n, k}});
  const Value labels = nn::label_input(g, "labels");
  Value h = nn::tanh(g, nn::linear(g, "l1", x, hid));
  h = nn::tanh(g, nn::linear(g, "l2", h, hid));
  h = nn::tanh(g, nn::linear(g, "l3", h, hid));
  const Value z = nn::add(g, nn::linear(g, "head", h, k), extra);
  g.mark_output(z, "logits");
  nn::softmax_cross_entropy(g, z, labels);
  Context ctx;
  ParameterStore store(g, ctx, 21);
  CompileOptions co;
  co.optimizer = OptimizerKind::kNone;
  co.input_gradients = {"extra"};
  Executor ex(g, store, ctx, co);
  std::mt19937 rng(99);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  float* xs = ex.input("x").data_as<float>();
  for (std::int64_t i = 0; i < n * f; ++i) xs[i] = u(rng);
  float* es = ex.input("extra").data_as<float>();
  for (std::int64_t i = 0; i < n * k; ++i) es[i] = 2.f * u(rng);
  std::int32_t* ys = ex.input("labels").data_as<std::int32_t>();
  for (std::int64_t i = 0; i < n; ++i) ys[i] = static_cast<std::int32_t>((7 * i + 3) % k);
  ex.run();
  const std::vector<float> zs = ex.output("logits").to_float_vector();
  const std::vector<float> de = ex.input_gradient("extra").to_float_vector();
  ASSERT_EQ(de.size(), static_cast<std::size_t>(n * k));
  for (std::int64_t i = 0; i < n; ++i) {
    double m = -1e30, s = 0;
    for (std::int64_t c = 0; c < k; ++c) m = std::max(m, static_cast<double>(zs[i * k + c]));
    for (std::int64_t c = 0; c < k; ++c) s += std::exp(zs[i * k + c] - m);
    for (std::int64_t c = 0; c < k; ++c) {
      const double want = (std::exp(zs[i * k + c] - m) / s - (c == ys[i] ? 1.0 : 0.0)) / static_cast<double>(n);
      EXPECT_NEAR(de[i * k + c], want, 1e-6) << "row " << i << " class " << c;
    }
  }
}

// CompileOptions::reuse_memory = false (the debugging mode tests/support/grad_check.cpp uses):
// every value keeps bytes of its own, so an intermediate value is still readable after the run
// and the arena is the sum of the values' aligned sizes. Chain x -> relu -> *2 -> *3, 64 floats
// (256 bytes) per value: 768 bytes without reuse.
TEST(ReuseMemory, OffKeepsEveryIntermediateValueReadable) {
  Graph g(graph_options(1));
  const Value x = g.input("x", {Shape{1, 64}});
  const Value a = nn::relu(g, x);
  const Value b = nn::scale(g, a, 2.f);
  g.mark_output(nn::scale(g, b, 3.f), "y");
  Context ctx;
  ParameterStore store(g, ctx, 1);
  CompileOptions co;
  co.training = false;
  co.reuse_memory = false;
  Executor ex(g, store, ctx, co);
  EXPECT_EQ(ex.stats().arena_bytes, 3u * 256u);
  kestrel::testing::feed_uniform(ex, "x", 4, -1.f, 1.f);
  const std::vector<float> xs = ex.input("x").to_float_vector();
  ex.run();
  const std::vector<float> av = ex.value(g.info(a).name).to_float_vector();
  const std::vector<float> bv = ex.value(g.info(b).name).to_float_vector();
  const std::vector<float> yv = ex.output("y").to_float_vector();
  for (std::size_t i = 0; i < xs.size(); ++i) {
    const float r = xs[i] > 0.f ? xs[i] : 0.f;
    EXPECT_EQ(av[i], r) << i;
    EXPECT_EQ(bv[i], 2.f * r) << i;
    EXPECT_EQ(yv[i], 6.f * r) << i;
  }
}

// An inference executor that samples dropout may also be refused part-way (a label out of
// range in its loss): its dropout offset must be put back as a training executor's is.
TEST(RefusedRun, AnInferenceExecutorSamplingDropoutPutsItsOffsetBack) {
  Context ctx;
  const Graph g = kestrel::testing::refusable_net(4);
  ParameterStore store(g, ctx, 3);
  CompileOptions co;
  co.training = false;
  co.sample_dropout = true;
  Executor ex(g, store, ctx, co);
  kestrel::testing::feed_refusable(ex, ctx, false, false);
  ex.run();
  const std::uint64_t before = store.read_counters().rng_offset;
  EXPECT_EQ(before, 1u);  // one dropout slot per run
  kestrel::testing::feed_refusable(ex, ctx, false, true);
  const std::string refused = error_of([&] { ex.run(); });
  EXPECT_NE(refused.find("label 42"), std::string::npos) << refused;
  EXPECT_EQ(store.read_counters().rng_offset, before);
}

// Executor::value hands an input out as input() does: data written through it counts as given.
TEST(BindInput, AnInputFilledThroughValueCountsAsGiven) {
  Graph g(graph_options(1));
  const Value x = g.input("x", {Shape{1, 4}});
  g.mark_output(nn::scale(g, x, 2.f), "y");
  Context ctx;
  ParameterStore store(g, ctx, 1);
  CompileOptions co;
  co.training = false;
  Executor ex(g, store, ctx, co);
  ex.value("x").copy_from(Tensor::from_vector({1.f, -2.f, 3.f, 0.5f}, Shape{1, 4}), ctx.stream());
  ex.run();
  EXPECT_EQ(ex.output("y").to_float_vector(), (std::vector<float>{2.f, -4.f, 6.f, 1.f}));
}

// An output named "loss" that is the loss itself is accepted (only one that hides it is refused).
TEST(ParameterGradients, AnOutputNamedLossThatIsTheLossIsAccepted) {
  Graph g(graph_options(2));
  const Value x = g.input("x", {Shape{2, 4}});
  const Value loss = nn::softmax_cross_entropy(g, nn::linear(g, "fc", x, 3), nn::label_input(g, "labels"));
  g.mark_output(loss, "loss");
  Context ctx;
  ParameterStore store(g, ctx, 1);
  CompileOptions co;
  co.optimizer = OptimizerKind::kNone;
  std::unique_ptr<Executor> ex;
  ASSERT_NO_THROW(ex = std::make_unique<Executor>(g, store, ctx, co));
  EXPECT_EQ(ex->output("loss").numel(), 1);
}

// The executor advances the store's dropout offset by the graph's slot count before its nodes run,
// as the CUDA path does (CPU and GPU draw the same masks): run k (k = 1, 2, ...) draws slot s at
// effective offset k * slots + s. Two dropout layers here: slots 0 and 1.
TEST(SampleDropout, RunKDrawsItsMasksAtOffsetKTimesTheSlotsPlusTheSlot) {
  const std::int64_t n = 256;
  Graph g(graph_options(1));
  const Value x = g.input("x", {Shape{1, n}});
  g.mark_output(nn::dropout(g, "d0", x, 0.5f), "y0");
  g.mark_output(nn::dropout(g, "d1", x, 0.5f), "y1");
  ASSERT_EQ(g.rng_slots(), 2);
  Context ctx;
  ParameterStore store(g, ctx, 17);
  CompileOptions co;
  co.training = false;
  co.sample_dropout = true;
  Executor ex(g, store, ctx, co);
  kestrel::testing::feed_uniform(ex, "x", 2, 1.f, 2.f);
  const std::vector<float> xs = ex.input("x").to_float_vector();
  for (std::uint64_t run = 1; run <= 2; ++run) {
    ex.run();
    for (std::uint64_t slot = 0; slot < 2; ++slot) {
      DropoutParams p;
      p.p = 0.5f;
      p.seed = store.seed();
      p.offset = run * 2 + slot;  // no offset_ptr: the effective offset itself
      std::vector<float> want(static_cast<std::size_t>(n));
      cpu::dropout_forward(xs.data(), want.data(), n, DType::kFloat32, p);
      EXPECT_EQ(ex.output(slot == 0 ? "y0" : "y1").to_float_vector(), want) << "run " << run << " slot " << slot;
    }
  }
  EXPECT_EQ(store.read_counters().rng_offset, 4u);
}
