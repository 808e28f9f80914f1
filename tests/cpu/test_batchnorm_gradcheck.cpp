// Batch normalisation: the CPU twin's backward against central finite differences of a
// double-precision forward (coordinates whose step moves a ReLU across its kink are skipped),
// and the statistics of a channel whose mean is far larger than its spread.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "batchnorm_reference.h"
#include "kestrel/kernels/cpu/batchnorm.h"
#include "test_support.h"

namespace ref = kestrel::testing::bnref;
using kestrel::BatchNormDims;
using kestrel::BnActivation;
using kestrel::DType;
using kestrel::Layout;

namespace {

struct Params {
  std::vector<double> x, r, gamma, beta;
};

// L = sum w * y with y from a double forward; also reports which outputs are clamped by ReLU.
double loss(const BatchNormDims& d, const Params& p, const std::vector<double>& w, double eps,
            BnActivation act, std::vector<bool>* active) {
  const double m = static_cast<double>(d.n * d.hw);
  double l = 0;
  if (active != nullptr) active->assign(p.x.size(), true);
  for (std::int64_t ch = 0; ch < d.c; ++ch) {
    double mean = 0, var = 0;
    for (std::int64_t ni = 0; ni < d.n; ++ni)
      for (std::int64_t q = 0; q < d.hw; ++q) mean += p.x[ref::offset(d, ni, ch, q)] / m;
    for (std::int64_t ni = 0; ni < d.n; ++ni)
      for (std::int64_t q = 0; q < d.hw; ++q) {
        const double e = p.x[ref::offset(d, ni, ch, q)] - mean;
        var += e * e / m;
      }
    for (std::int64_t ni = 0; ni < d.n; ++ni)
      for (std::int64_t q = 0; q < d.hw; ++q) {
        const std::int64_t i = ref::offset(d, ni, ch, q);
        double z = p.gamma[ch] * (p.x[i] - mean) / std::sqrt(var + eps) + p.beta[ch];
        if (act == BnActivation::kAddRelu) z += p.r[i];
        if (act != BnActivation::kNone && z <= 0) {
          z = 0;
          if (active != nullptr) (*active)[i] = false;
        }
        l += w[i] * z;
      }
  }
  return l;
}

// Central difference of the loss along v[i]; false when the step changes the ReLU pattern.
bool numeric(const BatchNormDims& d, Params& p, std::vector<double>& v, std::size_t i,
             const std::vector<double>& w, double eps, BnActivation act, double& out) {
  const double h = 1e-6, keep = v[i];
  std::vector<bool> plus, minus;
  v[i] = keep + h;
  const double lp = loss(d, p, w, eps, act, &plus);
  v[i] = keep - h;
  const double lm = loss(d, p, w, eps, act, &minus);
  v[i] = keep;
  out = (lp - lm) / (2 * h);
  return plus == minus;
}

std::vector<double> to_double(const std::vector<float>& v) { return {v.begin(), v.end()}; }

}  // namespace

TEST(BatchNormGradCheck, BackwardMatchesFiniteDifferences) {
  const double eps = 1e-3;  // a visible eps, so the check sees where it enters
  const BatchNormDims shapes[] = {{2, 2, 3, Layout::kNCHW}, {3, 2, 2, Layout::kNHWC},
                                  {4, 1, 1, Layout::kNCHW}};
  std::uint32_t seed = 100;
  for (const BatchNormDims& d : shapes)
    for (BnActivation act : {BnActivation::kNone, BnActivation::kRelu, BnActivation::kAddRelu}) {
      SCOPED_TRACE(ref::describe(d, DType::kFloat32, act));
      const std::int64_t count = ref::numel(d);
      const bool add = act == BnActivation::kAddRelu;
      const auto x = ref::channel_data(d, DType::kFloat32, seed++);
      const auto r = ref::uniform_data(count, -1.f, 1.f, DType::kFloat32, seed++);
      const auto gamma = ref::uniform_data(d.c, -1.5f, 1.5f, DType::kFloat32, seed++);
      const auto beta = ref::uniform_data(d.c, -0.5f, 0.5f, DType::kFloat32, seed++);
      const auto w = ref::uniform_data(count, -1.f, 1.f, DType::kFloat32, seed++);

      std::vector<float> y(count), sm(d.c), si(d.c), dx(count), dr(count), dg(d.c), db(d.c);
      kestrel::cpu::batchnorm_forward_training(x.data(), add ? r.data() : nullptr, y.data(),
                                               DType::kFloat32, d, gamma.data(), beta.data(),
                                               static_cast<float>(eps), 0.1f, nullptr, nullptr,
                                               sm.data(), si.data(), act, nullptr);
      kestrel::cpu::batchnorm_backward(w.data(), x.data(), y.data(), DType::kFloat32, d,
                                       gamma.data(), sm.data(), si.data(), dx.data(),
                                       add ? dr.data() : nullptr, dg.data(), db.data(), act,
                                       nullptr);

      Params p{to_double(x), to_double(r), to_double(gamma), to_double(beta)};
      const std::vector<double> wd = to_double(w);
      auto check = [&](std::vector<double>& v, const std::vector<float>& analytic,
                       const char* what) {
        int compared = 0;
        for (std::size_t i = 0; i < v.size(); ++i) {
          double fd;
          if (!numeric(d, p, v, i, wd, eps, act, fd)) continue;
          ++compared;
          EXPECT_NEAR(analytic[i], fd, 1e-4 * (1.0 + std::fabs(fd))) << what << "[" << i << "]";
        }
        EXPECT_GT(compared, 0) << what;
      };
      check(p.x, dx, "dx");
      check(p.gamma, dg, "dgamma");
      check(p.beta, db, "dbeta");
      if (add) check(p.r, dr, "dresidual");
    }
}

// mean 1e4, std 1: a naive sum-of-squares in fp32 loses the variance entirely.
TEST(BatchNormStability, LargeMeanSmallSpread) {
  for (Layout l : {Layout::kNCHW, Layout::kNHWC}) {
    const BatchNormDims d{7, 2, 1024, l};
    SCOPED_TRACE(kestrel::layout_name(l));
    std::vector<float> x = ref::channel_data(d, DType::kFloat32, 5, 0.0);
    for (float& v : x) v += 1e4f;
    const ref::Stats st = ref::batch_stats(d, x);
    std::vector<float> y(x.size()), sm(2), si(2), rm(2, 0.f), rv(2, 1.f);
    kestrel::cpu::batchnorm_forward_training(x.data(), nullptr, y.data(), DType::kFloat32, d,
                                             nullptr, nullptr, 1e-5f, 1.f, rm.data(), rv.data(),
                                             sm.data(), si.data(), BnActivation::kNone, nullptr);
    const double m = static_cast<double>(d.n * d.hw);
    for (int ch = 0; ch < 2; ++ch) {
      const double var = 1.0 / (static_cast<double>(si[ch]) * si[ch]) - 1e-5;
      EXPECT_NEAR(var, st.var[ch], 1e-4 * st.var[ch]) << "channel " << ch;
      EXPECT_NEAR(rv[ch], st.var[ch] * m / (m - 1), 1e-4 * st.var[ch]) << "channel " << ch;
      EXPECT_NEAR(sm[ch], st.mean[ch], 4e-3) << "channel " << ch;  // 4 fp32 ulps at 1e4
    }
  }
}
