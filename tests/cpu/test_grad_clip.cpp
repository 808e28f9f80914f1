// Gradient clipping by the global L2 norm (GradClip, CompileOptions::max_grad_norm): the CPU
// twins of the fused updates against the double-precision transcriptions of torch.optim.SGD /
// AdamW applied to gradients scaled as torch.nn.utils.clip_grad_norm_ scales them (norm and
// coefficient computed here in double), over steps that alternate between clipped and not; the
// non-finite cases; and the executor's clipping and grad_norm() on a small network.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "error_text.h"
#include "grad_check.h"
#include "kestrel/core/executor.h"
#include "kestrel/kernels/cpu/optimizer.h"
#include "kestrel/layers/nn.h"
#include "optimizer_reference.h"
#include "dtype_buffer.h"
#include "test_support.h"

using kestrel::AdamWConfig;
using kestrel::GradClip;
using kestrel::SgdConfig;
using kestrel::testing::AdamWReference;
using kestrel::testing::all_close;
using kestrel::testing::bit_equal;
using kestrel::testing::clip_factor;
using kestrel::testing::error_of;
using kestrel::testing::SgdReference;
using kestrel::testing::sum_of_squares;

namespace {
// Gradient magnitudes per step: norms of about 183, 0.18, 55, 0.37, 18, 0.09 for n = 1001, so
// max norms of 1 and 0.25 clip some steps and not others.
const std::vector<float> kGradScale = {10.f, 0.01f, 3.f, 0.02f, 1.f, 0.005f};
const std::vector<float> kLr = {0.1f, 0.05f, 0.2f, 0.01f, 0.15f, 0.3f};
constexpr double kTol = 64 * 5.9604644775390625e-8;  // a few fp32 roundings a step, six steps

std::vector<float> floats(std::int64_t n, std::uint32_t seed, float scale) {
  return kestrel::testing::random_floats(n, seed, -scale, scale);
}

}  // namespace

TEST(CpuGradClip, CoefficientIsTheClampedRatioOfMaxNormToNorm) {
  using kestrel::optimizer_detail::clip_coefficient;
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_NEAR(clip_coefficient(25.f, 1.f), 1.0 / (5.0 + 1e-6), 1e-7);     // norm 5 -> 1
  EXPECT_NEAR(clip_coefficient(1e6f, 2.5f), 2.5 / (1000.0 + 1e-6), 1e-9);  // norm 1000 -> 2.5
  // At small norms the 1e-6 is added to the norm, not to the sum of squares (PyTorch's
  // max_norm / (total_norm + 1e-6)): norm 1e-6 -> 0.05, norm 1e-3 -> 1e-4 / 1.001e-3.
  EXPECT_NEAR(clip_coefficient(1e-12f, 1e-7f), 1e-7 / (1e-6 + 1e-6), 1e-7);
  EXPECT_NEAR(clip_coefficient(1e-6f, 1e-4f), 1e-4 / (1e-3 + 1e-6), 1e-7);
  EXPECT_EQ(clip_coefficient(0.25f, 1.f), 1.f);  // norm 0.5: under the limit, unchanged
  EXPECT_EQ(clip_coefficient(0.f, 1.f), 1.f);    // zero gradients stay zero
  EXPECT_EQ(clip_coefficient(inf, 1.f), 0.f);    // PyTorch: max_norm / inf = 0
  EXPECT_TRUE(std::isnan(clip_coefficient(std::numeric_limits<float>::quiet_NaN(), 1.f)));
  EXPECT_EQ(kestrel::optimizer_detail::grad_scale(GradClip{}), 1.f) << "no clipping by default";
}

TEST(CpuGradClip, SgdMatchesPyTorchOnClippedGradientsOverSixSteps) {
  const SgdConfig configs[] = {{0.f, 0.f, 0.f, false}, {0.9f, 0.f, 5e-4f, false}, {0.9f, 0.f, 1e-2f, true}};
  const std::int64_t n = 1001;
  for (const SgdConfig& c : configs) {
    for (float max_norm : {1.f, 0.25f}) {
      std::vector<float> p = floats(n, 801, 1.f), buf(static_cast<std::size_t>(n));
      SgdReference ref{std::vector<double>(p.begin(), p.end()), std::vector<double>(p.size())};
      int clipped = 0;
      for (std::int64_t t = 1; t <= 6; ++t) {
        const std::vector<float> g = floats(n, 810 + static_cast<std::uint32_t>(t), kGradScale[static_cast<std::size_t>(t - 1)]);
        const double ss = sum_of_squares(g);
        const float ss32 = static_cast<float>(ss);
        const float lr = kLr[static_cast<std::size_t>(t - 1)];
        kestrel::cpu::sgd_update(p.data(), g.data(), buf.data(), n, c, &lr, &t, nullptr, nullptr,
                                 GradClip{&ss32, max_norm});
        const double f = clip_factor(ss, max_norm);
        clipped += f < 1.0;
        ref.step(c, g, lr, t, {}, f);
      }
      EXPECT_GE(clipped, 2) << "the case must clip some steps";
      EXPECT_LE(clipped, 5) << "and leave some alone";
      EXPECT_TRUE(all_close(p, ref.p, kTol, kTol)) << "momentum " << c.momentum << " max_norm " << max_norm;
      if (c.momentum != 0) {
        EXPECT_TRUE(all_close(buf, ref.buf, kTol, kTol)) << "momentum buffer";
      }
    }
  }
}

TEST(CpuGradClip, AdamWMatchesPyTorchOnClippedGradientsOverSixSteps) {
  // AdamW's step is nearly invariant to a constant gradient scale, but not to one that changes
  // from step to step: the moments mix the clipped and unclipped steps.
  const std::int64_t n = 1001;
  for (const AdamWConfig& c : {AdamWConfig{}, AdamWConfig{0.8f, 0.99f, 1e-3f, 0.1f}}) {
    std::vector<float> p = floats(n, 901, 1.f), m(static_cast<std::size_t>(n)), v(static_cast<std::size_t>(n));
    AdamWReference ref{std::vector<double>(p.begin(), p.end()), std::vector<double>(p.size()),
                       std::vector<double>(p.size())};
    for (std::int64_t t = 1; t <= 6; ++t) {
      const std::vector<float> g = floats(n, 910 + static_cast<std::uint32_t>(t), kGradScale[static_cast<std::size_t>(t - 1)]);
      const double ss = sum_of_squares(g);
      const float ss32 = static_cast<float>(ss);
      const float lr = kLr[static_cast<std::size_t>(t - 1)];
      kestrel::cpu::adamw_update(p.data(), g.data(), m.data(), v.data(), n, c, &lr, &t, nullptr, nullptr,
                                 GradClip{&ss32, 1.f});
      ref.step(c, g, lr, t, {}, clip_factor(ss, 1.0));
    }
    EXPECT_TRUE(all_close(p, ref.p, kTol, kTol)) << "eps " << c.eps;
    EXPECT_TRUE(all_close(m, ref.m, kTol, kTol));
    EXPECT_TRUE(all_close(v, ref.v, kTol, kTol));
  }
}

TEST(CpuGradClip, UnderTheLimitTheUpdateIsBitIdenticalToNoClipping) {
  const std::int64_t n = 257;
  const std::vector<float> g = floats(n, 951, 0.01f);
  const float ss = static_cast<float>(sum_of_squares(g));
  ASSERT_LT(std::sqrt(ss), 1.f);
  const SgdConfig c{0.9f, 0.f, 1e-3f, true};
  const float lr = 0.1f;
  const std::int64_t t = 1;
  std::vector<float> a = floats(n, 952, 1.f), b = a, ma(static_cast<std::size_t>(n)), mb = ma;
  kestrel::cpu::sgd_update(a.data(), g.data(), ma.data(), n, c, &lr, &t, nullptr, nullptr, GradClip{&ss, 1.f});
  kestrel::cpu::sgd_update(b.data(), g.data(), mb.data(), n, c, &lr, &t, nullptr, nullptr);
  EXPECT_TRUE(bit_equal(a, b));
  EXPECT_TRUE(bit_equal(ma, mb));
}

TEST(CpuGradClip, NonFiniteNormsBehaveAsInPyTorch) {
  // An infinite norm gives coefficient 0: finite gradients become 0 and (no decay, no momentum)
  // the parameters stay. A NaN norm makes every updated parameter NaN.
  const std::int64_t n = 9;
  const std::vector<float> g = floats(n, 961, 1.f), p0 = floats(n, 962, 1.f);
  const SgdConfig c{0.f, 0.f, 0.f, false};
  const float lr = 0.5f;
  const std::int64_t t = 1;
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> p = p0;
  kestrel::cpu::sgd_update(p.data(), g.data(), nullptr, n, c, &lr, &t, nullptr, nullptr, GradClip{&inf, 1.f});
  EXPECT_TRUE(bit_equal(p, p0));
  kestrel::cpu::sgd_update(p.data(), g.data(), nullptr, n, c, &lr, &t, nullptr, nullptr, GradClip{&nan, 1.f});
  EXPECT_TRUE(std::all_of(p.begin(), p.end(), [](float v) { return std::isnan(v); }));
}

TEST(CpuGradClip, RejectsAMaxNormThatIsNotPositiveAndFinite) {
  std::vector<float> p(4, 1.f), g(4, 1.f), m(4), v(4);
  const float lr = 0.1f, ss = 4.f;
  const std::int64_t t = 1;
  for (float bad : {0.f, -1.f, std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
    const std::string e = error_of([&] {
      kestrel::cpu::sgd_update(p.data(), g.data(), m.data(), 4, SgdConfig{}, &lr, &t, nullptr, nullptr,
                               GradClip{&ss, bad});
    });
    EXPECT_NE(e.find("max_norm must be finite and > 0"), std::string::npos) << e;
    EXPECT_THROW(kestrel::cpu::adamw_update(p.data(), g.data(), m.data(), v.data(), 4, AdamWConfig{}, &lr, &t,
                                            nullptr, nullptr, GradClip{&ss, bad}),
                 kestrel::Error);
  }
  EXPECT_EQ(p, std::vector<float>(4, 1.f)) << "nothing written";
}

namespace {
using namespace kestrel;

// A linear layer and softmax cross-entropy: a step's gradients are known exactly to the test.
struct Net {
  Graph g{kestrel::testing::graph_options(6)};
  Net() {
    const Value x = g.input("x", {Shape{6, 10}});
    const Value labels = nn::label_input(g, "labels");
    nn::softmax_cross_entropy(g, nn::linear(g, "fc", x, 5), labels);
  }
};

CompileOptions plain_sgd() {
  CompileOptions co;
  co.sgd = SgdConfig{0.f, 0.f, 0.f, false};  // the step is -lr * coef * g
  return co;
}

void feed(Executor& ex, std::uint64_t seed) {
  kestrel::testing::feed_uniform(ex, "x", seed, -3.f, 3.f);
  kestrel::testing::feed_labels(ex, "labels", 5);
}
}  // namespace

TEST(ExecutorGradClip, TheStepIsClippedToTheMaxNormAndGradNormIsTheRawNorm) {
  Net net;
  Context ctx;
  ParameterStore store(net.g, ctx, 3);
  CompileOptions co = plain_sgd();
  co.max_grad_norm = 1e-2f;
  Executor ex(net.g, store, ctx, co);
  store.set_learning_rate(1.f);
  feed(ex, 11);
  const std::vector<float> p0 = store.flat_params().to_float_vector();
  ex.run();
  const std::vector<float> g = store.flat_grads().to_float_vector();  // left unscaled
  const double norm = std::sqrt(sum_of_squares(g));
  ASSERT_GT(norm, 10 * co.max_grad_norm) << "the case must clip";
  EXPECT_NEAR(ex.grad_norm(), norm, 1e-6 * norm);
  const double f = clip_factor(norm * norm, co.max_grad_norm);
  const std::vector<float> p1 = store.flat_params().to_float_vector();
  std::vector<double> want(p0.size()), step(p0.size());
  double step_sq = 0;
  for (std::size_t i = 0; i < p0.size(); ++i) {
    want[i] = p0[i] - f * g[i];
    step[i] = static_cast<double>(p0[i]) - p1[i];
    step_sq += step[i] * step[i];
  }
  EXPECT_TRUE(all_close(p1, want, 1e-7, 1e-6));
  EXPECT_NEAR(std::sqrt(step_sq), co.max_grad_norm, 1e-3 * co.max_grad_norm);
}

TEST(ExecutorGradClip, TrackingTheNormAloneLeavesTrainingBitIdentical) {
  std::vector<float> params[2];
  for (int track = 0; track < 2; ++track) {
    Net net;
    Context ctx;
    ParameterStore store(net.g, ctx, 5);
    CompileOptions co;  // SGD with momentum 0.9 and decay: the defaults
    co.track_grad_norm = track == 1;
    co.max_grad_norm = track == 1 ? 1e6f : 0.f;  // never reached: coefficient 1
    Executor ex(net.g, store, ctx, co);
    store.set_learning_rate(0.1f);
    for (std::uint64_t s = 0; s < 3; ++s) {
      feed(ex, 20 + s);
      ex.run();
      if (track == 1) {
        const double norm = std::sqrt(sum_of_squares(store.flat_grads().to_float_vector()));
        EXPECT_NEAR(ex.grad_norm(), norm, 1e-6 * norm) << "step " << s;
      }
    }
    params[track] = store.flat_params().to_float_vector();
  }
  EXPECT_TRUE(bit_equal(params[0], params[1]));
}

TEST(ExecutorGradClip, OptionErrorsSayWhatIsWrong) {
  Net net;
  Context ctx;
  ParameterStore store(net.g, ctx, 1);
  for (float bad : {-1.f, std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
    CompileOptions co;
    co.max_grad_norm = bad;
    const std::string e = error_of([&] { Executor ex(net.g, store, ctx, co); });
    EXPECT_NE(e.find("max_grad_norm must be finite and >= 0"), std::string::npos) << e;
  }
  CompileOptions none;
  none.optimizer = OptimizerKind::kNone;
  none.track_grad_norm = true;
  EXPECT_NE(error_of([&] { Executor ex(net.g, store, ctx, none); }).find("need a training executor with an optimizer"),
            std::string::npos);
  CompileOptions eval;
  eval.training = false;
  eval.max_grad_norm = 1.f;
  EXPECT_NE(error_of([&] { Executor ex(net.g, store, ctx, eval); }).find("need a training executor"),
            std::string::npos);
  Executor plain(net.g, store, ctx, CompileOptions{});
  EXPECT_NE(error_of([&] { (void)plain.grad_norm(); }).find("track_grad_norm or max_grad_norm"), std::string::npos);
  CompileOptions tracked;
  tracked.track_grad_norm = true;
  Executor fresh(net.g, store, ctx, tracked);
  EXPECT_EQ(fresh.grad_norm(), 0.f) << "0 before the first update";
}
