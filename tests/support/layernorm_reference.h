// Independent double-precision layer normalisation (the (std + eps) form of kernels/layernorm.h)
// for the tests, with the gradient written out from its derivation; the finite-difference test
// checks that derivation. [rows, cols] row-major.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

namespace kestrel::testing::lnref {

struct Forward {
  std::vector<double> y, mean, rstd;
};

template <typename T>
Forward forward(const std::vector<T>& x, std::int64_t rows, std::int64_t cols,
                const std::vector<T>& gamma, const std::vector<T>& beta, double eps) {
  Forward f{std::vector<double>(x.size()), std::vector<double>(rows), std::vector<double>(rows)};
  for (std::int64_t r = 0; r < rows; ++r) {
    double mean = 0, var = 0;
    for (std::int64_t j = 0; j < cols; ++j) mean += x[r * cols + j];
    mean /= static_cast<double>(cols);
    for (std::int64_t j = 0; j < cols; ++j) var += (x[r * cols + j] - mean) * (x[r * cols + j] - mean);
    const double rstd = 1.0 / (std::sqrt(var / static_cast<double>(cols)) + eps);
    f.mean[r] = mean;
    f.rstd[r] = rstd;
    for (std::int64_t j = 0; j < cols; ++j)
      f.y[r * cols + j] = gamma[j] * (x[r * cols + j] - mean) * rstd + beta[j];
  }
  return f;
}

// Gradients, and for tolerances the size of the terms each is computed from.
struct Grads {
  std::vector<double> dx, dgamma, dbeta, dx_scale, dgamma_scale, dbeta_scale;
};

// h = dy*gamma, d = x - mean, sigma = sqrt(sum d^2 / N), r = 1/(sigma + eps):
// d xhat_i / d x_j = r (delta_ij - 1/N) - r^2 d_i d_j / (N sigma), so
// dx_j = r (h_j - mean h) - d_j r^2 mean(h d) / sigma   (0 for the second term at sigma == 0).
template <typename T>
Grads backward(const std::vector<T>& dy, const std::vector<T>& x, std::int64_t rows,
               std::int64_t cols, const std::vector<T>& gamma, double eps) {
  const double n = static_cast<double>(cols);
  Grads g{std::vector<double>(x.size()), std::vector<double>(cols), std::vector<double>(cols),
          std::vector<double>(x.size()), std::vector<double>(cols), std::vector<double>(cols)};
  for (std::int64_t r = 0; r < rows; ++r) {
    double mean = 0, ss = 0, mh = 0, mhd = 0, h2 = 0;
    for (std::int64_t j = 0; j < cols; ++j) mean += x[r * cols + j] / n;
    for (std::int64_t j = 0; j < cols; ++j) {
      const double d = x[r * cols + j] - mean, h = dy[r * cols + j] * gamma[j];
      ss += d * d;
      mh += h / n;
      mhd += h * d / n;
      h2 += h * h / n;
    }
    const double sigma = std::sqrt(ss / n), rs = 1.0 / (sigma + eps);
    for (std::int64_t j = 0; j < cols; ++j) {
      const std::int64_t i = r * cols + j;
      const double d = x[i] - mean, h = dy[i] * gamma[j];
      g.dx[i] = rs * (h - mh) - (sigma > 0 ? d * rs * rs * mhd / sigma : 0.0);
      g.dx_scale[i] = rs * (std::fabs(h) + std::sqrt(h2));
      g.dgamma[j] += dy[i] * d * rs;
      g.dbeta[j] += dy[i];
      g.dgamma_scale[j] += std::fabs(dy[i] * d * rs);
      g.dbeta_scale[j] += std::fabs(dy[i]);
    }
  }
  return g;
}

}  // namespace kestrel::testing::lnref
