// CPU twin of layer normalisation ((std + eps) form) against the double reference
// (tests/support/layernorm_reference.h), the reference's gradient against finite differences,
// constant rows (std == 0), in-place use, optional pointers and errors. Tolerances as for batch
// norm (tests/support/batchnorm_step.h): fp32 1e-5 outputs and statistics, 1e-4 gradients,
// bf16 1e-2, relative to |expected| + the size of the terms.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

#include "batchnorm_reference.h"
#include "kestrel/core/error.h"
#include "kestrel/kernels/cpu/layernorm.h"
#include "layernorm_reference.h"
#include "test_support.h"

namespace bnref = kestrel::testing::bnref;
namespace lnref = kestrel::testing::lnref;
using kestrel::DType;

namespace {

constexpr float kEps = 1e-5f;

// Rows with means in [-3, 3] and spreads in [0.5, 2] (a one-column row is constant).
std::vector<float> row_data(std::int64_t rows, std::int64_t cols, DType t, std::uint32_t seed) {
  return bnref::channel_data({1, rows, cols, kestrel::Layout::kNCHW}, t, seed);
}

void check_shape(std::int64_t rows, std::int64_t cols, DType t, std::uint32_t seed) {
  SCOPED_TRACE(::testing::Message() << rows << "x" << cols << " " << kestrel::dtype_name(t));
  const bool bf16 = t == DType::kBFloat16;
  const double out_tol = bf16 ? 1e-2 : 1e-5, grad_tol = bf16 ? 1e-2 : 1e-4;
  const auto x = row_data(rows, cols, t, seed);
  const auto dy = bnref::uniform_data(rows * cols, -1.f, 1.f, t, seed + 1);
  const auto gamma = bnref::uniform_data(cols, -1.5f, 1.5f, DType::kFloat32, seed + 2);
  const auto beta = bnref::uniform_data(cols, -1.f, 1.f, DType::kFloat32, seed + 3);
  const auto xs = bnref::to_storage(x, t), dys = bnref::to_storage(dy, t);
  auto y = xs, dx = xs;
  std::vector<float> mean(rows), rstd(rows), dg(cols, 123.f), db(cols, 123.f);  // overwritten
  kestrel::cpu::layernorm_forward(xs.data(), y.data(), t, rows, cols, gamma.data(), beta.data(),
                                  kEps, mean.data(), rstd.data());
  kestrel::cpu::layernorm_backward(dys.data(), xs.data(), t, rows, cols, gamma.data(), mean.data(),
                                   rstd.data(), dx.data(), dg.data(), db.data(), nullptr);
  const lnref::Forward f = lnref::forward(x, rows, cols, gamma, beta, kEps);
  EXPECT_TRUE(bnref::close_to(bnref::from_storage(y, t), f.y, out_tol));
  EXPECT_TRUE(bnref::close_to(mean, f.mean, 1e-5));
  EXPECT_TRUE(bnref::close_to(rstd, f.rstd, 1e-5));
  const lnref::Grads g = lnref::backward(dy, x, rows, cols, gamma, kEps);
  EXPECT_TRUE(bnref::within(bnref::from_storage(dx, t), g.dx, g.dx_scale, grad_tol));
  EXPECT_TRUE(bnref::within(dg, g.dgamma, g.dgamma_scale, grad_tol));
  EXPECT_TRUE(bnref::within(db, g.dbeta, g.dbeta_scale, grad_tol));
}

}  // namespace

TEST(LayerNormCpu, MatchesDoubleReference) {
  const std::int64_t shapes[][2] = {{1, 1}, {3, 7}, {64, 256}, {300, 33}, {5, 4099}, {2, 2}};
  std::uint32_t seed = 1;
  for (const auto& s : shapes)
    for (DType t : {DType::kFloat32, DType::kBFloat16}) check_shape(s[0], s[1], t, seed += 10);
}

// The reference gradient (the (std + eps) derivation) against central differences in double,
// and the CPU twin against both.
TEST(LayerNormCpu, GradientMatchesFiniteDifferences) {
  const double eps = 0.05;  // large, so an error in how eps enters would show
  for (const auto& shape : {std::vector<std::int64_t>{3, 5}, std::vector<std::int64_t>{2, 16}}) {
    const std::int64_t rows = shape[0], cols = shape[1];
    const auto xf = row_data(rows, cols, DType::kFloat32, 40);
    const auto wf = bnref::uniform_data(rows * cols, -1.f, 1.f, DType::kFloat32, 41);
    const auto gf = bnref::uniform_data(cols, -1.5f, 1.5f, DType::kFloat32, 42);
    const auto bf = bnref::uniform_data(cols, -1.f, 1.f, DType::kFloat32, 43);
    std::vector<double> x(xf.begin(), xf.end()), w(wf.begin(), wf.end()), gamma(gf.begin(), gf.end()),
        beta(bf.begin(), bf.end());
    auto loss = [&] {
      const lnref::Forward f = lnref::forward(x, rows, cols, gamma, beta, eps);
      double l = 0;
      for (std::size_t i = 0; i < w.size(); ++i) l += w[i] * f.y[i];
      return l;
    };
    auto fd = [&](std::vector<double>& v, std::size_t i) {
      const double h = 1e-6, keep = v[i];
      v[i] = keep + h;
      const double lp = loss();
      v[i] = keep - h;
      const double lm = loss();
      v[i] = keep;
      return (lp - lm) / (2 * h);
    };
    const lnref::Grads g = lnref::backward(w, x, rows, cols, gamma, eps);
    std::vector<float> y(xf.size()), mean(rows), rstd(rows), dx(xf.size()), dg(cols, 123.f), db(cols, 123.f);
    kestrel::cpu::layernorm_forward(xf.data(), y.data(), DType::kFloat32, rows, cols, gf.data(),
                                    bf.data(), static_cast<float>(eps), mean.data(), rstd.data());
    kestrel::cpu::layernorm_backward(wf.data(), xf.data(), DType::kFloat32, rows, cols, gf.data(),
                                     mean.data(), rstd.data(), dx.data(), dg.data(), db.data(),
                                     nullptr);
    // At this eps, 1 / (std + eps) and 1 / sqrt(var + eps) differ by percents: the forward output
    // and the saved rstd follow the (std + eps) form too.
    const lnref::Forward f = lnref::forward(x, rows, cols, gamma, beta, eps);
    EXPECT_TRUE(bnref::close_to(y, f.y, 1e-5));
    EXPECT_TRUE(bnref::close_to(rstd, f.rstd, 1e-5));
    for (std::size_t i = 0; i < x.size(); ++i) {
      const double n = fd(x, i);
      EXPECT_NEAR(g.dx[i], n, 1e-7 * (1 + std::fabs(n))) << "reference dx[" << i << "]";
      EXPECT_NEAR(dx[i], n, 1e-4 * (1 + std::fabs(n))) << "dx[" << i << "]";
    }
    for (std::int64_t j = 0; j < cols; ++j) {
      const double ng = fd(gamma, j), nb = fd(beta, j);
      EXPECT_NEAR(g.dgamma[j], ng, 1e-7 * (1 + std::fabs(ng))) << "reference dgamma[" << j << "]";
      EXPECT_NEAR(dg[j], ng, 1e-4 * (1 + std::fabs(ng))) << "dgamma[" << j << "]";
      EXPECT_NEAR(db[j], nb, 1e-4 * (1 + std::fabs(nb))) << "dbeta[" << j << "]";
    }
  }
}

// Long sums in backward: dgamma / dbeta over 2^20 rows, and one row of 2^20 features whose
// mean(h) cancels against h in dx (dy has mean 1). The twin sums a row in runs of 64 merged
// pairwise and the columns in the GPU's 256 groups; one serial chain over rows or features
// drifts with their count. Reference: the double derivation. Relative errors (of |expected| +
// the terms' size), measured: column sums 1.5e-7 (one serial chain: 1.0e-5), the long row's dx
// 7.8e-8 (serial: 7.4e-6); bound 1e-6 on both.
TEST(LayerNormCpu, LongRowsAndColumnsStayAccurate) {
  const std::int64_t big = std::int64_t{1} << 20;
  const auto worst = [](const std::vector<float>& got, const std::vector<double>& want,
                        const std::vector<double>& scale) {
    double w = 0;
    for (std::size_t i = 0; i < got.size(); ++i)
      w = std::fmax(w, std::fabs(got[i] - want[i]) / (std::fabs(want[i]) + scale[i]));
    return w;
  };
  for (const auto& [rows, cols] : {std::pair{big, std::int64_t{4}}, std::pair{std::int64_t{1}, big}}) {
    SCOPED_TRACE(::testing::Message() << rows << "x" << cols);
    const auto x = bnref::uniform_data(rows * cols, -2.f, 2.f, DType::kFloat32, 7);
    const auto dy = bnref::uniform_data(rows * cols, 0.5f, 1.5f, DType::kFloat32, 8);
    const std::vector<float> gamma(static_cast<std::size_t>(cols), 1.f);
    std::vector<float> mean(static_cast<std::size_t>(rows)), rstd(mean), dx(x.size());
    std::vector<float> dg(static_cast<std::size_t>(cols)), db(dg);
    kestrel::cpu::layernorm_forward(x.data(), dx.data(), DType::kFloat32, rows, cols, gamma.data(),
                                    nullptr, kEps, mean.data(), rstd.data());
    kestrel::cpu::layernorm_backward(dy.data(), x.data(), DType::kFloat32, rows, cols, gamma.data(),
                                     mean.data(), rstd.data(), dx.data(), dg.data(), db.data(),
                                     nullptr);
    const lnref::Grads g = lnref::backward(dy, x, rows, cols, gamma, kEps);
    if (rows > 1) {
      const double sums =
          std::fmax(worst(dg, g.dgamma, g.dgamma_scale), worst(db, g.dbeta, g.dbeta_scale));
      EXPECT_LE(sums, 1e-6) << "dgamma / dbeta";
      RecordProperty("worst_column_sum_rel_error", ::testing::PrintToString(sums));
    } else {
      const double dxe = worst(dx, g.dx, g.dx_scale);
      EXPECT_LE(dxe, 1e-6) << "dx";
      RecordProperty("worst_long_row_dx_rel_error", ::testing::PrintToString(dxe));
    }
  }
}

// std == 0: y = beta, gradients finite, dx = rstd * (h - mean h) (the second term's limit is 0).
TEST(LayerNormCpu, ConstantRowsStayFinite) {
  const std::int64_t rows = 3, cols = 7;
  std::vector<float> x(rows * cols);
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t j = 0; j < cols; ++j) x[r * cols + j] = 2.5f - static_cast<float>(r);
  const auto dy = bnref::uniform_data(rows * cols, -1.f, 1.f, DType::kFloat32, 50);
  const auto gamma = bnref::uniform_data(cols, 0.5f, 1.5f, DType::kFloat32, 51);
  const auto beta = bnref::uniform_data(cols, -1.f, 1.f, DType::kFloat32, 52);
  std::vector<float> y(x.size()), mean(rows), rstd(rows), dx(x.size()), dg(cols, 123.f), db(cols, 123.f);
  kestrel::cpu::layernorm_forward(x.data(), y.data(), DType::kFloat32, rows, cols, gamma.data(),
                                  beta.data(), kEps, mean.data(), rstd.data());
  kestrel::cpu::layernorm_backward(dy.data(), x.data(), DType::kFloat32, rows, cols,
                                   gamma.data(), mean.data(), rstd.data(), dx.data(), dg.data(),
                                   db.data(), nullptr);
  for (std::int64_t r = 0; r < rows; ++r) {
    EXPECT_EQ(rstd[r], 1.f / kEps);
    double mh = 0;
    for (std::int64_t j = 0; j < cols; ++j) mh += dy[r * cols + j] * gamma[j] / cols;
    for (std::int64_t j = 0; j < cols; ++j) {
      EXPECT_EQ(y[r * cols + j], beta[j]);
      EXPECT_NEAR(dx[r * cols + j], (dy[r * cols + j] * gamma[j] - mh) / kEps,
                  1e-5 / kEps);
    }
  }
  for (std::int64_t j = 0; j < cols; ++j) {
    EXPECT_EQ(dg[j], 0.f);
    EXPECT_TRUE(std::isfinite(db[j]));
  }
}

TEST(LayerNormCpu, InPlaceAndOptionalPointersGiveTheSameBits) {
  const std::int64_t rows = 4, cols = 37;
  const auto x = row_data(rows, cols, DType::kFloat32, 60);
  const auto dy = bnref::uniform_data(rows * cols, -1.f, 1.f, DType::kFloat32, 61);
  const std::vector<float> ones(cols, 1.f), zeros(cols, 0.f);
  std::vector<float> y(x.size()), mean(rows), rstd(rows), dx(x.size()), dg(cols, 123.f), db(cols, 123.f);
  kestrel::cpu::layernorm_forward(x.data(), y.data(), DType::kFloat32, rows, cols, ones.data(),
                                  zeros.data(), kEps, mean.data(), rstd.data());
  kestrel::cpu::layernorm_backward(dy.data(), x.data(), DType::kFloat32, rows, cols, ones.data(),
                                   mean.data(), rstd.data(), dx.data(), dg.data(), db.data(),
                                   nullptr);
  std::vector<float> in = x, g = dy;
  kestrel::cpu::layernorm_forward(in.data(), in.data(), DType::kFloat32, rows, cols, nullptr,
                                  nullptr, kEps, nullptr, nullptr);
  kestrel::cpu::layernorm_backward(g.data(), x.data(), DType::kFloat32, rows, cols, nullptr,
                                   mean.data(), rstd.data(), g.data(), nullptr, nullptr, nullptr);
  EXPECT_TRUE(kestrel::testing::bit_equal(in, y));
  EXPECT_TRUE(kestrel::testing::bit_equal(g, dx));
}

TEST(LayerNormCpu, Errors) {
  std::vector<float> a(16, 1.f), b(16), s(4, 1.f);
  using kestrel::cpu::layernorm_backward;
  using kestrel::cpu::layernorm_forward;
  const DType f = DType::kFloat32;
  EXPECT_THROW(layernorm_forward(a.data(), b.data(), f, 0, 4, nullptr, nullptr, kEps, nullptr,
                                 nullptr), kestrel::Error);
  EXPECT_THROW(layernorm_forward(a.data(), b.data(), f, 4, -1, nullptr, nullptr, kEps, nullptr,
                                 nullptr), kestrel::Error);
  EXPECT_THROW(layernorm_forward(a.data(), b.data(), DType::kFloat16, 4, 4, nullptr, nullptr,
                                 kEps, nullptr, nullptr), kestrel::Error);
  EXPECT_THROW(layernorm_forward(a.data(), b.data(), f, 4, 4, nullptr, nullptr, 0.f, nullptr,
                                 nullptr), kestrel::Error);
  EXPECT_THROW(layernorm_forward(nullptr, b.data(), f, 4, 4, nullptr, nullptr, kEps, nullptr,
                                 nullptr), kestrel::Error);
  EXPECT_THROW(layernorm_backward(a.data(), a.data(), f, 4, 4, nullptr, nullptr, s.data(),
                                  b.data(), nullptr, nullptr, nullptr), kestrel::Error);
  EXPECT_THROW(layernorm_backward(a.data(), a.data(), f, 4, 4, nullptr, s.data(), s.data(),
                                  nullptr, nullptr, nullptr, nullptr), kestrel::Error);
  EXPECT_THROW(kestrel::cpu::layernorm_workspace_bytes(0, 3), kestrel::Error);
}
