// Fused SGD and AdamW updates (CPU twins) against a double-precision transcription of PyTorch's
// torch.optim.SGD / torch.optim.AdamW over several steps with a changing learning rate, plus the
// configuration checks.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "kestrel/core/error.h"
#include "kestrel/core/half.h"
#include "kestrel/kernels/cpu/optimizer.h"
#include "optimizer_reference.h"
#include "storage_buffer.h"
#include "test_support.h"

using kestrel::AdamWConfig;
using kestrel::DType;
using kestrel::SgdConfig;
using kestrel::testing::AdamWReference;
using kestrel::testing::SgdReference;
using kestrel::testing::all_close;
using kestrel::testing::bit_equal;
using kestrel::testing::random_buffer;
using kestrel::testing::random_ints;

namespace {
const std::vector<float> kLrSchedule = {0.1f, 0.05f, 0.2f, 0.01f, 0.15f, 0.3f};

std::vector<float> floats(std::int64_t n, std::uint32_t seed, float lo, float hi) {
  const auto b = random_buffer(DType::kFloat32, n, seed, lo, hi);
  std::vector<float> v(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) v[static_cast<std::size_t>(i)] = b.at(i);
  return v;
}

std::vector<std::uint8_t> random_mask(std::int64_t n, std::uint32_t seed) {
  const auto r = random_ints(n, seed, 0, 1);
  return std::vector<std::uint8_t>(r.begin(), r.end());
}

std::vector<std::uint16_t> to_bf16(const std::vector<float>& v) {
  std::vector<std::uint16_t> r(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) r[i] = kestrel::bf16_bits_from_float(v[i]);
  return r;
}

// A few fp32 roundings per step over six steps, relative to values of order 1.
constexpr double kTol = 64 * 5.9604644775390625e-8;
}  // namespace

TEST(CpuSgd, MatchesPyTorchTranscriptionOverSixSteps) {
  const SgdConfig configs[] = {{0.9f, 0.f, 5e-4f, false}, {0.9f, 0.f, 5e-2f, true},
                               {0.8f, 0.3f, 1e-2f, false}, {0.f, 0.f, 1e-2f, false},
                               {0.5f, 1.f, 0.f, false}};
  for (const SgdConfig& c : configs) {
    for (std::int64_t n : {1, 7, 1001}) {
      for (bool masked : {false, true}) {
        std::vector<float> p = floats(n, 501, -1.f, 1.f), buf(static_cast<std::size_t>(n), 123.f);
        std::vector<std::uint16_t> p16(static_cast<std::size_t>(n));
        const std::vector<std::uint8_t> mask = masked ? random_mask(n, 502) : std::vector<std::uint8_t>{};
        SgdReference ref{std::vector<double>(p.begin(), p.end()), std::vector<double>(p.size())};
        for (std::int64_t t = 1; t <= 6; ++t) {
          const std::vector<float> g = floats(n, 510 + static_cast<std::uint32_t>(t), -1.f, 1.f);
          const float lr = kLrSchedule[static_cast<std::size_t>(t - 1)];
          kestrel::cpu::sgd_update(p.data(), g.data(), buf.data(), n, c, &lr, &t,
                                   masked ? mask.data() : nullptr, p16.data());
          ref.step(c, g, lr, t, mask);
        }
        const std::string what = "momentum " + std::to_string(c.momentum) + " dampening " +
                                 std::to_string(c.dampening) + " wd " + std::to_string(c.weight_decay) +
                                 (c.nesterov ? " nesterov" : "") + " n=" + std::to_string(n) +
                                 (masked ? " masked" : "");
        EXPECT_TRUE(all_close(p, ref.p, kTol, kTol)) << what;
        if (c.momentum != 0) EXPECT_TRUE(all_close(buf, ref.buf, kTol, kTol)) << what;
        else EXPECT_EQ(buf[0], 123.f) << "momentum 0 leaves the buffer alone";
        EXPECT_TRUE(bit_equal(p16, to_bf16(p))) << what;
      }
    }
  }
}

TEST(CpuSgd, DecayMaskExemptsParameters) {
  // Two parameters, same value and gradient; only the first is decayed.
  std::vector<float> p = {2.f, 2.f}, buf(2);
  const std::vector<float> g = {0.5f, 0.5f};
  const std::vector<std::uint8_t> mask = {1, 0};
  const SgdConfig c{0.f, 0.f, 0.25f, false};
  const float lr = 0.5f;
  const std::int64_t t = 1;
  kestrel::cpu::sgd_update(p.data(), g.data(), nullptr, 2, c, &lr, &t, mask.data(), nullptr);
  EXPECT_EQ(p[0], 2.f - 0.5f * (0.5f + 0.25f * 2.f));
  EXPECT_EQ(p[1], 2.f - 0.5f * 0.5f);
}

TEST(CpuAdamW, MatchesPyTorchTranscriptionOverSixSteps) {
  const AdamWConfig configs[] = {{}, {0.8f, 0.99f, 1e-6f, 0.1f}, {0.3f, 0.5f, 1e-3f, 0.f},
                                 {0.f, 0.f, 1e-8f, 1e-2f}};
  for (const AdamWConfig& c : configs) {
    for (std::int64_t n : {1, 7, 1001}) {
      for (bool masked : {false, true}) {
        std::vector<float> p = floats(n, 601, -1.f, 1.f);
        std::vector<float> m(static_cast<std::size_t>(n), 0.f), v(static_cast<std::size_t>(n), 0.f);
        std::vector<std::uint16_t> p16(static_cast<std::size_t>(n));
        const std::vector<std::uint8_t> mask = masked ? random_mask(n, 602) : std::vector<std::uint8_t>{};
        AdamWReference ref{std::vector<double>(p.begin(), p.end()), std::vector<double>(p.size()),
                           std::vector<double>(p.size())};
        for (std::int64_t t = 1; t <= 6; ++t) {
          const std::vector<float> g = floats(n, 610 + static_cast<std::uint32_t>(t), -1.f, 1.f);
          const float lr = kLrSchedule[static_cast<std::size_t>(t - 1)];
          kestrel::cpu::adamw_update(p.data(), g.data(), m.data(), v.data(), n, c, &lr, &t,
                                     masked ? mask.data() : nullptr, p16.data());
          ref.step(c, g, lr, t, mask);
        }
        const std::string what = "beta1 " + std::to_string(c.beta1) + " beta2 " + std::to_string(c.beta2) +
                                 " wd " + std::to_string(c.weight_decay) + " n=" + std::to_string(n) +
                                 (masked ? " masked" : "");
        EXPECT_TRUE(all_close(p, ref.p, kTol, kTol)) << what;
        EXPECT_TRUE(all_close(m, ref.m, kTol, kTol)) << what;
        EXPECT_TRUE(all_close(v, ref.v, kTol, kTol)) << what;
        EXPECT_TRUE(bit_equal(p16, to_bf16(p))) << what;
      }
    }
  }
}

TEST(CpuAdamW, FirstStepMovesEachParameterByLrTimesSignOfGradient) {
  // Step 1 without decay: m/bc1 = g, sqrt(v/bc2) = |g|, so p -= lr * g / (|g| + eps).
  std::vector<float> p = {1.f, -2.f, 0.5f}, m(3), v(3);
  const std::vector<float> g = {0.25f, -3.f, 1e-3f};
  const AdamWConfig c{0.9f, 0.999f, 1e-8f, 0.f};
  const float lr = 0.01f;
  const std::int64_t t = 1;
  kestrel::cpu::adamw_update(p.data(), g.data(), m.data(), v.data(), 3, c, &lr, &t, nullptr, nullptr);
  EXPECT_NEAR(p[0], 1.f - 0.01f, 1e-7);
  EXPECT_NEAR(p[1], -2.f + 0.01f, 2e-7);
  EXPECT_NEAR(p[2], 0.5f - 0.01f * 1e-3 / (1e-3 + 1e-8), 1e-7);
}

TEST(CpuAdamW, Beta1ZeroMakesTheFirstMomentExactlyTheGradient) {
  // exp_avg.lerp_(grad, 1 - beta1) with beta1 = 0 is lerp with weight 1, which PyTorch evaluates
  // as end - (end - self) * (1 - w) = grad exactly. A first moment of 1 from earlier steps and
  // gradients of order 1e-8 make self + w * (end - self) lose the gradient: 1e-8 - 1 rounds to
  // -1 in fp32, and 1 + (-1) = 0. Weight decay 0, so only the moments matter here.
  const std::vector<float> g = {1e-8f, -3e-8f, 2.5e-9f, 0.75f, -1.f};
  const std::int64_t n = static_cast<std::int64_t>(g.size());
  std::vector<float> p(g.size(), 0.5f), m(g.size(), 1.f), v(g.size(), 0.25f);
  const AdamWConfig c{0.f, 0.999f, 1e-8f, 0.f};
  const float lr = 0.01f;
  const std::int64_t t = 3;
  kestrel::cpu::adamw_update(p.data(), g.data(), m.data(), v.data(), n, c, &lr, &t, nullptr, nullptr);
  for (std::size_t i = 0; i < g.size(); ++i) EXPECT_EQ(m[i], g[i]) << i;
}

TEST(CpuOptimizer, AdamWRejectsBeta2OfOne) {
  // beta2 = 1 makes the bias correction 1 - beta2^t zero (an Inf or NaN step), as beta1 = 1 does.
  EXPECT_THROW(kestrel::validate(AdamWConfig{0.9f, 1.f, 1e-8f, 0.f}), kestrel::Error);
  EXPECT_NO_THROW(kestrel::validate(AdamWConfig{0.9f, 0.99999994f, 1e-8f, 0.f}));  // the float below 1
  std::vector<float> p(2, 1.f), g(2, 1.f), m(2), v(2);
  const float lr = 0.1f;
  const std::int64_t t = 1;
  EXPECT_THROW(kestrel::cpu::adamw_update(p.data(), g.data(), m.data(), v.data(), 2,
                                          AdamWConfig{0.9f, 1.f, 1e-8f, 0.f}, &lr, &t, nullptr, nullptr),
               kestrel::Error);
  EXPECT_EQ(p, (std::vector<float>{1.f, 1.f}));  // refused before any update
}

TEST(CpuOptimizer, ValidateRejectsBadConfigurations) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  EXPECT_NO_THROW(kestrel::validate(SgdConfig{}));
  EXPECT_THROW(kestrel::validate(SgdConfig{-0.1f, 0.f, 0.f, false}), kestrel::Error);
  EXPECT_THROW(kestrel::validate(SgdConfig{0.9f, 0.f, -1e-4f, false}), kestrel::Error);
  EXPECT_THROW(kestrel::validate(SgdConfig{0.9f, 1.5f, 0.f, false}), kestrel::Error);
  EXPECT_THROW(kestrel::validate(SgdConfig{0.f, 0.f, 0.f, true}), kestrel::Error);
  EXPECT_THROW(kestrel::validate(SgdConfig{0.9f, 0.1f, 0.f, true}), kestrel::Error);
  EXPECT_THROW(kestrel::validate(SgdConfig{nan, 0.f, 0.f, false}), kestrel::Error);
  EXPECT_NO_THROW(kestrel::validate(AdamWConfig{}));
  EXPECT_THROW(kestrel::validate(AdamWConfig{1.f, 0.999f, 1e-8f, 0.f}), kestrel::Error);
  EXPECT_THROW(kestrel::validate(AdamWConfig{0.9f, -0.1f, 1e-8f, 0.f}), kestrel::Error);
  EXPECT_THROW(kestrel::validate(AdamWConfig{0.9f, 0.999f, 0.f, 0.f}), kestrel::Error);
  EXPECT_THROW(kestrel::validate(AdamWConfig{0.9f, 0.999f, nan, 0.f}), kestrel::Error);
  EXPECT_THROW(kestrel::validate(AdamWConfig{0.9f, 0.999f, 1e-8f, -1.f}), kestrel::Error);
}

TEST(CpuOptimizer, RejectsBadScheduleAndMissingBuffers) {
  std::vector<float> p(4, 1.f), g(4, 1.f), m(4), v(4);
  const float lr = 0.1f, bad_lr = -0.1f;
  const std::int64_t t = 1, t0 = 0;
  EXPECT_THROW(kestrel::cpu::sgd_update(p.data(), g.data(), m.data(), 4, SgdConfig{}, &bad_lr, &t,
                                        nullptr, nullptr), kestrel::Error);
  EXPECT_THROW(kestrel::cpu::sgd_update(p.data(), g.data(), m.data(), 4, SgdConfig{}, &lr, &t0,
                                        nullptr, nullptr), kestrel::Error);
  EXPECT_THROW(kestrel::cpu::sgd_update(p.data(), g.data(), nullptr, 4, SgdConfig{}, &lr, &t,
                                        nullptr, nullptr), kestrel::Error);
  EXPECT_THROW(kestrel::cpu::adamw_update(p.data(), g.data(), m.data(), nullptr, 4, AdamWConfig{}, &lr,
                                          &t, nullptr, nullptr), kestrel::Error);
  EXPECT_THROW(kestrel::cpu::adamw_update(p.data(), g.data(), m.data(), v.data(), -1, AdamWConfig{}, &lr,
                                          &t, nullptr, nullptr), kestrel::Error);
  EXPECT_EQ(p, std::vector<float>(4, 1.f)) << "nothing written";
  std::int64_t step = 41;
  kestrel::cpu::increment_step(&step);
  EXPECT_EQ(step, 42);
}
