// CPU twin of batch normalisation against an independent double-precision reference
// (tests/support/batchnorm_reference.h): outputs, saved and running statistics, gradients, for
// every value of N in {1, 2, 7, 256}, C in {1, 3, 16, 64, 512}, H*W in {1, 49, 1024}, both
// layouts, all three activations, fp32 and bf16; inference, in-place use, the optional
// pointers and the error paths.
//
// Tolerances: see tests/support/batchnorm_step.h.
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>
#include <cmath>

#include "batchnorm_step.h"
#include "kestrel/core/error.h"
#include "kestrel/kernels/batchnorm.h"
#include "kestrel/kernels/cpu/batchnorm.h"
#include "test_support.h"

namespace ref = kestrel::testing::bnref;
using kestrel::BatchNormDims;
using kestrel::BnActivation;
using kestrel::DType;
using kestrel::Layout;
using kestrel::testing::bnref::close_to;

namespace {

constexpr float kEps = 1e-5f;
constexpr float kMomentum = 0.1f;
const BnActivation kActs[] = {BnActivation::kNone, BnActivation::kRelu, BnActivation::kAddRelu};
// What every output starts as: an element or statistic the kernel does not write (or adds to
// instead of overwriting) fails the comparison, where zeros would pass for ReLU outputs and sums.
const float kUnset = std::numeric_limits<float>::quiet_NaN();

// Runs s's step on the CPU twin, filling its outputs.
void run_step(const BatchNormDims& d, DType t, BnActivation act, ref::Step& s, float eps = kEps,
              float momentum = kMomentum) {
  const std::int64_t count = ref::numel(d);
  const bool add = act == BnActivation::kAddRelu;
  s.rm = s.rm0;
  s.rv = s.rv0;
  s.save_mean.assign(d.c, kUnset);
  s.save_invstd.assign(d.c, kUnset);
  s.dgamma.assign(d.c, kUnset);
  s.dbeta.assign(d.c, kUnset);
  const auto x = ref::to_storage(s.x, t), r = ref::to_storage(s.residual, t);
  auto y = ref::to_storage(std::vector<float>(count, kUnset), t);
  kestrel::cpu::batchnorm_forward_training(x.data(), add ? r.data() : nullptr, y.data(), t, d,
                                           s.gamma.data(), s.beta.data(), eps, momentum,
                                           s.rm.data(), s.rv.data(), s.save_mean.data(),
                                           s.save_invstd.data(), act, nullptr);
  s.y = ref::from_storage(y, t);
  const auto dy = ref::to_storage(s.dy, t);
  auto dx = ref::to_storage(std::vector<float>(count, kUnset), t), dr = dx;
  kestrel::cpu::batchnorm_backward(dy.data(), x.data(), y.data(), t, d, s.gamma.data(),
                                   s.save_mean.data(), s.save_invstd.data(), dx.data(),
                                   add ? dr.data() : nullptr, s.dgamma.data(), s.dbeta.data(), act,
                                   nullptr);
  s.dx = ref::from_storage(dx, t);
  if (add) s.dresidual = ref::from_storage(dr, t);
}

}  // namespace

// A subset of the N x C x HW grid that still takes every value of each axis.
TEST(BatchNormCpu, TrainingStepMatchesDoubleReference) {
  const std::int64_t shapes[][3] = {{1, 3, 49},  {2, 16, 1024}, {7, 1, 1},   {7, 64, 49},
                                    {256, 3, 1}, {2, 512, 1},   {1, 512, 49}, {256, 1, 1024},
                                    {256, 16, 49}, {7, 3, 1024}};
  std::uint32_t seed = 1;
  for (const auto& sh : shapes)
    for (Layout l : {Layout::kNCHW, Layout::kNHWC})
      for (DType t : {DType::kFloat32, DType::kBFloat16})
        for (BnActivation act : kActs) {
          const BatchNormDims d{sh[0], sh[1], sh[2], l};
          ref::Step s = ref::make_step(d, t, act, seed++);
          run_step(d, t, act, s);
          ref::check_step(d, t, act, s, kEps, kMomentum);
        }
}

// eps and momentum where they show: an eps of the order of the variances (a kernel that drops
// it or uses a fixed 1e-5 is off by far more than the tolerance) and a momentum other than the
// 0.1, 0 and 1 of the other tests.
TEST(BatchNormCpu, TrainingStepHonoursEpsAndMomentum) {
  const float eps = 0.5f, momentum = 0.7f;
  std::uint32_t seed = 4000;
  for (Layout l : {Layout::kNCHW, Layout::kNHWC})
    for (DType t : {DType::kFloat32, DType::kBFloat16})
      for (BnActivation act : kActs) {
        const BatchNormDims d{7, 16, 49, l};
        ref::Step s = ref::make_step(d, t, act, seed++);
        run_step(d, t, act, s, eps, momentum);
        ref::check_step(d, t, act, s, eps, momentum);
      }
}

TEST(BatchNormCpu, InferenceUsesRunningStatistics) {
  for (float eps : {kEps, 0.5f})  // 0.5: of the order of the running variances, so it shows
    for (Layout l : {Layout::kNCHW, Layout::kNHWC})
      for (DType t : {DType::kFloat32, DType::kBFloat16})
        for (BnActivation act : kActs) {
          const BatchNormDims d{7, 16, 49, l};
          SCOPED_TRACE(ref::describe(d, t, act) + " eps " + std::to_string(eps));
          const std::int64_t count = ref::numel(d);
          const bool add = act == BnActivation::kAddRelu;
          const auto x = ref::channel_data(d, t, 11);
          const auto r = ref::uniform_data(count, -2.f, 2.f, t, 12);
          const auto gamma = ref::uniform_data(d.c, -1.5f, 1.5f, DType::kFloat32, 13);
          const auto beta = ref::uniform_data(d.c, -1.f, 1.f, DType::kFloat32, 14);
          const auto rm = ref::uniform_data(d.c, -3.f, 3.f, DType::kFloat32, 15);
          const auto rv = ref::uniform_data(d.c, 0.25f, 4.f, DType::kFloat32, 16);
          const auto xs = ref::to_storage(x, t), rs = ref::to_storage(r, t);
          auto y = ref::to_storage(std::vector<float>(count, kUnset), t);
          kestrel::cpu::batchnorm_forward_inference(xs.data(), add ? rs.data() : nullptr, y.data(), t,
                                                    d, gamma.data(), beta.data(), rm.data(),
                                                    rv.data(), eps, act);
          const std::vector<double> mean(rm.begin(), rm.end()), var(rv.begin(), rv.end());
          EXPECT_TRUE(close_to(ref::from_storage(y, t),
                               ref::normalise(d, x, add ? &r : nullptr, mean, var, gamma, beta, eps,
                                              act),
                               t == DType::kBFloat16 ? 1e-2 : 1e-5));
        }
}

TEST(BatchNormCpu, RunningStatisticsAtMomentumZeroAndOne) {
  const BatchNormDims d{2, 3, 49, Layout::kNHWC};
  const auto x = ref::channel_data(d, DType::kFloat32, 21);
  const ref::Stats st = ref::batch_stats(d, x);
  std::vector<float> y(x.size()), sm(3), si(3);
  const std::vector<float> rm0{0.5f, -0.25f, 2.f}, rv0{1.f, 3.f, 0.5f};
  std::vector<float> rm = rm0, rv = rv0;
  kestrel::cpu::batchnorm_forward_training(x.data(), nullptr, y.data(), DType::kFloat32, d,
                                           nullptr, nullptr, kEps, 0.f, rm.data(), rv.data(),
                                           sm.data(), si.data(), BnActivation::kNone, nullptr);
  EXPECT_EQ(rm, rm0);
  EXPECT_EQ(rv, rv0);
  kestrel::cpu::batchnorm_forward_training(x.data(), nullptr, y.data(), DType::kFloat32, d,
                                           nullptr, nullptr, kEps, 1.f, rm.data(), rv.data(),
                                           sm.data(), si.data(), BnActivation::kNone, nullptr);
  std::vector<double> unbiased(3);
  for (int ch = 0; ch < 3; ++ch) unbiased[ch] = st.var[ch] * 98.0 / 97.0;
  EXPECT_TRUE(close_to(rm, st.mean, 1e-6));
  EXPECT_TRUE(close_to(rv, unbiased, 1e-6));
  // Null running statistics: no update, same outputs.
  std::vector<float> y2(x.size()), sm2(3), si2(3);
  kestrel::cpu::batchnorm_forward_training(x.data(), nullptr, y2.data(), DType::kFloat32, d,
                                           nullptr, nullptr, kEps, 1.f, nullptr, nullptr,
                                           sm2.data(), si2.data(), BnActivation::kNone, nullptr);
  EXPECT_EQ(y2, y);
  EXPECT_EQ(sm2, sm);
}

// In place (y == x, dx == dy), null gamma/beta (= 1 and 0) and null dgamma/dbeta give the same
// bits as the plain calls.
TEST(BatchNormCpu, InPlaceAndOptionalPointersGiveTheSameBits) {
  for (Layout l : {Layout::kNCHW, Layout::kNHWC}) {
    const BatchNormDims d{3, 5, 7, l};
    const auto x = ref::channel_data(d, DType::kFloat32, 31);
    const auto dy = ref::uniform_data(ref::numel(d), -1.f, 1.f, DType::kFloat32, 32);
    const std::vector<float> ones(5, 1.f), zeros(5, 0.f);
    std::vector<float> y(x.size()), sm(5), si(5), dx(x.size()), dg(5), db(5);
    kestrel::cpu::batchnorm_forward_training(x.data(), nullptr, y.data(), DType::kFloat32, d,
                                             ones.data(), zeros.data(), kEps, 0.1f, nullptr,
                                             nullptr, sm.data(), si.data(), BnActivation::kRelu,
                                             nullptr);
    kestrel::cpu::batchnorm_backward(dy.data(), x.data(), y.data(), DType::kFloat32, d,
                                     ones.data(), sm.data(), si.data(), dx.data(), nullptr,
                                     dg.data(), db.data(), BnActivation::kRelu, nullptr);

    std::vector<float> inplace = x, sm2(5), si2(5);
    kestrel::cpu::batchnorm_forward_training(inplace.data(), nullptr, inplace.data(),
                                             DType::kFloat32, d, nullptr, nullptr, kEps, 0.1f,
                                             nullptr, nullptr, sm2.data(), si2.data(),
                                             BnActivation::kRelu, nullptr);
    EXPECT_TRUE(kestrel::testing::bit_equal(inplace, y));
    std::vector<float> g = dy;
    kestrel::cpu::batchnorm_backward(g.data(), x.data(), y.data(), DType::kFloat32, d, nullptr,
                                     sm.data(), si.data(), g.data(), nullptr, nullptr, nullptr,
                                     BnActivation::kRelu, nullptr);
    EXPECT_TRUE(kestrel::testing::bit_equal(g, dx));
  }
}

TEST(BatchNormCpu, WorkspaceSizes) {
  const BatchNormDims d{256, 64, 1024, Layout::kNCHW};
  EXPECT_EQ(kestrel::cpu::batchnorm_workspace_bytes(d), 0u);
  // The CUDA size is host arithmetic: partials [c][parts] plus the channel sums.
  for (Layout l : {Layout::kNCHW, Layout::kNHWC}) {
    const BatchNormDims e{256, 64, 1024, l};
    const std::size_t bytes = kestrel::cuda::batchnorm_workspace_bytes(e);
    EXPECT_GE(bytes, 64u * 12u + 64u * 8u);
    EXPECT_LE(bytes, 64u * 2048u * 12u + 256u + 64u * 8u);
  }
  EXPECT_THROW(kestrel::cuda::batchnorm_workspace_bytes({0, 64, 1024, Layout::kNCHW}),
               kestrel::Error);
  EXPECT_THROW(kestrel::cpu::batchnorm_workspace_bytes({2, -1, 1, Layout::kNHWC}),
               kestrel::Error);
}

// Fused BN + ReLU (and + Add + ReLU) keeps NaN as relu() does (bn_activate: "relu that keeps
// NaN"): a NaN in x or in the residual reaches y, not 0, and nothing else becomes NaN.
TEST(BatchNormCpu, FusedReluKeepsNaNFromTheInputAndTheResidual) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (Layout l : {Layout::kNCHW, Layout::kNHWC}) {
    const BatchNormDims d{2, 3, 4, l};
    std::vector<float> x(24), r(24, 0.25f), y(24);
    for (int i = 0; i < 24; ++i) x[i] = 0.1f * static_cast<float>(i % 7) - 0.3f;
    x[5] = nan;
    r[9] = nan;
    const std::vector<float> gamma{1.f, 0.5f, 2.f}, beta{0.f, 0.1f, -0.2f}, rm{0.f, 0.1f, -0.1f},
        rv{1.f, 2.f, 0.5f};
    for (BnActivation act : {BnActivation::kRelu, BnActivation::kAddRelu}) {
      const bool add = act == BnActivation::kAddRelu;
      kestrel::cpu::batchnorm_forward_inference(x.data(), add ? r.data() : nullptr, y.data(),
                                                DType::kFloat32, d, gamma.data(), beta.data(),
                                                rm.data(), rv.data(), 1e-5f, act);
      EXPECT_TRUE(std::isnan(y[5])) << "x NaN, act " << static_cast<int>(act);
      if (add) {
        EXPECT_TRUE(std::isnan(y[9])) << "residual NaN";
      }
      for (int i = 0; i < 24; ++i) {
        if (i != 5 && !(add && i == 9)) {
          EXPECT_FALSE(std::isnan(y[i])) << i;
        }
      }
    }
  }
}
