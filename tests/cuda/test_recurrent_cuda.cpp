// RNN / LSTM graphs, the split-concat ops, input gradients and Monte Carlo dropout on the GPU
// against the CPU backend: the same graph, the same seed (so the same initial weights) and the
// same inputs on both; forward outputs, the loss, d loss / d input and every parameter gradient
// agree within fp32 rounding of different summation orders and libm; byte moves and dropout
// masks are bit-identical; a captured CUDA Graph replays the step exactly.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>

#include "test_support.h"
#include "kestrel/core/executor.h"
#include "kestrel/layers/experiments/common.h"
#include "kestrel/layers/nn.h"
#include "kestrel/layers/recurrent.h"

using namespace kestrel;
using kestrel::experiments::from_host;
using kestrel::experiments::to_host;

namespace {
constexpr std::int64_t kN = 5, kT = 23, kF = 7, kH = 19;  // odd sizes: rows are not 16-byte multiples

GraphOptions opts(std::int64_t batch) {
  GraphOptions o;
  o.batch = batch;
  return o;
}

// x [N, T, F] -> RNN and LSTM side by side -> both last states, concatenated -> classifier.
void build_sequence_model(Graph& g) {
  const Value x = g.input("x", {Shape{kN, kT, kF}});
  const Value labels = nn::label_input(g, "labels");
  const std::vector<Value> xs = nn::unstack(g, x);
  nn::RecurrentOptions o;
  o.hidden = kH;
  const nn::RecurrentOutput r = nn::rnn(g, "rnn", xs, o);
  o.forget_bias = 1.f;
  const nn::RecurrentOutput l = nn::lstm(g, "lstm", xs, o);
  const Value seq = nn::stack(g, l.h);  // [N, T, H]: exercise stack on the GPU too
  g.mark_output(seq, "lstm_h");
  const Value logits = nn::linear(g, "head", nn::concat(g, {r.h.back(), l.h.back(), l.c}), 6);
  g.mark_output(logits, "logits");
  nn::softmax_cross_entropy(g, logits, labels);
}

double max_abs(const std::vector<float>& v) {
  double m = 0;
  for (float x : v) m = std::max(m, static_cast<double>(std::fabs(x)));
  return m;
}

struct StepResult {
  std::vector<float> loss, logits, lstm_h, dx, grads;
};

// One training step without an optimizer (gradients only) on `ctx`; `capture` replays it as a
// CUDA Graph twice and returns the replayed results.
StepResult run_step(Context& ctx, bool capture) {
  Graph g(opts(kN));
  build_sequence_model(g);
  ParameterStore store(g, ctx, 21);
  CompileOptions co;
  co.optimizer = OptimizerKind::kNone;
  co.input_gradients = {"x"};
  Executor ex(g, store, ctx, co);
  std::vector<float> x(static_cast<std::size_t>(kN * kT * kF));
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>((static_cast<int>(i * 37 % 101) - 50) / 40.0);
  Tensor xin = ex.input("x");
  from_host(xin, x, ctx);
  Tensor labels = Tensor::empty_cpu(Shape{kN}, DType::kInt32);
  for (std::int64_t i = 0; i < kN; ++i) labels.data_as<std::int32_t>()[i] = static_cast<std::int32_t>((i * 5 + 1) % 6);
  ex.input("labels").copy_from(labels, ctx.stream());
  ex.run();
  if (capture) {
    ex.capture_cuda_graph();
    ex.run();
    ex.run();
  }
  StepResult r;
  r.loss = to_host(ex.output("loss"), ctx);
  r.logits = to_host(ex.output("logits"), ctx);
  r.lstm_h = to_host(ex.output("lstm_h"), ctx);
  r.dx = to_host(ex.input_gradient("x"), ctx);
  r.grads = to_host(store.flat_grads(), ctx);
  return r;
}
}  // namespace

TEST(RecurrentCuda, RnnAndLstmStepMatchesTheCpu) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  Context cpu;
  Context gpu(Device::cuda(0));
  const StepResult a = run_step(cpu, false);
  const StepResult b = run_step(gpu, false);
  // 23 steps of fp32 recurrences: summation order (cuBLAS vs loops) and libm tanh/exp differ
  // by a few ulps per op; tolerances are a few hundred fp32 eps.
  EXPECT_TRUE(kestrel::testing::all_close(b.loss, a.loss, 1e-6, 1e-5));
  EXPECT_TRUE(kestrel::testing::all_close(b.logits, a.logits, 1e-6, 1e-5));
  EXPECT_TRUE(kestrel::testing::all_close(b.lstm_h, a.lstm_h, 1e-6, 1e-5));
  // Gradients sum many terms that partly cancel: absolute slack scaled to the largest entry.
  EXPECT_TRUE(kestrel::testing::all_close(b.dx, a.dx, 1e-5 * max_abs(a.dx), 1e-4));
  EXPECT_TRUE(kestrel::testing::all_close(b.grads, a.grads, 1e-5 * max_abs(a.grads), 1e-4));
}

TEST(RecurrentCuda, CapturedStepReplaysTheEagerStep) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  Context gpu(Device::cuda(0));
  const StepResult eager = run_step(gpu, false);
  const StepResult replay = run_step(gpu, true);
  EXPECT_TRUE(kestrel::testing::all_close(replay.loss, eager.loss, 0, 1e-6));
  EXPECT_TRUE(kestrel::testing::all_close(replay.dx, eager.dx, 1e-12, 1e-6));
  EXPECT_TRUE(kestrel::testing::all_close(replay.grads, eager.grads, 1e-12, 1e-6));
}

TEST(RecurrentCuda, SplitConcatMoveTheSameBytesAsTheCpu) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  for (DType t : {DType::kFloat32, DType::kBFloat16}) {
    std::vector<float> out[2];
    for (int dev = 0; dev < 2; ++dev) {
      Context ctx(dev == 0 ? Device::cpu() : Device::cuda(0));
      Graph g(opts(3));
      const Value x = g.input("x", {Shape{3, 11, 5}, t});
      const std::vector<Value> parts = nn::split(g, x, {1, 7, 3});
      const std::vector<Value> steps = nn::unstack(g, parts[1]);  // 7 x [3, 5]
      const Value back = nn::concat(g, {parts[2], nn::stack(g, {steps[6], steps[0], steps[3]}), parts[0]});
      g.mark_output(back, "y");
      ParameterStore store(g, ctx, 1);
      CompileOptions co;
      co.training = false;
      Executor ex(g, store, ctx, co);
      ex.input("x").fill_uniform(4, -9.f, 9.f, ctx.stream());
      ex.run();
      out[dev] = to_host(ex.output("y"), ctx);
    }
    EXPECT_TRUE(kestrel::testing::bit_equal(out[1], out[0])) << dtype_name(t);
  }
}

TEST(RecurrentCuda, MonteCarloDropoutDrawsTheCpuMasks) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  std::vector<float> out[2];
  for (int dev = 0; dev < 2; ++dev) {
    Context ctx(dev == 0 ? Device::cpu() : Device::cuda(0));
    Graph g(opts(9));
    const Value x = g.input("x", {Shape{9, 333}});
    g.mark_output(nn::dropout(g, "d", x, 0.3f), "inverted");
    g.mark_output(nn::dropout(g, "v", x, 0.6f, DropoutMode::kVanilla), "vanilla");
    ParameterStore store(g, ctx, 8);
    CompileOptions co;
    co.training = false;
    co.sample_dropout = true;
    Executor ex(g, store, ctx, co);
    ex.input("x").fill_uniform(2, -1.f, 1.f, ctx.stream());
    for (int r = 0; r < 3; ++r) ex.run();  // the third run's masks (offset advanced three times)
    out[dev] = to_host(ex.output("inverted"), ctx);
    const std::vector<float> v = to_host(ex.output("vanilla"), ctx);
    out[dev].insert(out[dev].end(), v.begin(), v.end());
    EXPECT_EQ(store.read_counters().rng_offset, 6u);
  }
  EXPECT_TRUE(kestrel::testing::bit_equal(out[1], out[0]));
}
