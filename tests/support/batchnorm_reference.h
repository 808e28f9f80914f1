// Independent double-precision batch normalisation for the tests (textbook formulas, written
// without the library's helpers), plus shared test data helpers. Tensors are flat vectors in the
// physical layout of `d`.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "kestrel/core/dtype.h"
#include "kestrel/core/half.h"
#include "kestrel/kernels/batchnorm_types.h"
#include "test_support.h"

namespace kestrel::testing::bnref {

inline std::int64_t numel(const BatchNormDims& d) { return d.n * d.c * d.hw; }

inline std::int64_t offset(const BatchNormDims& d, std::int64_t ni, std::int64_t ch,
                           std::int64_t p) {
  return d.layout == Layout::kNCHW ? (ni * d.c + ch) * d.hw + p : (ni * d.hw + p) * d.c + ch;
}

inline std::string describe(const BatchNormDims& d, DType t, BnActivation act) {
  static const char* acts[] = {"none", "relu", "add_relu"};
  return std::string(dtype_name(t)) + " " + layout_name(d.layout) + " " + std::to_string(d.n) +
         "x" + std::to_string(d.c) + "x" + std::to_string(d.hw) + " " +
         acts[static_cast<int>(act)];
}

// What storing v as `t` does to it.
inline float storage_round(float v, DType t) {
  return t == DType::kBFloat16 ? round_to_bf16(v) : v;
}

// Per-channel normal data with nonzero means: x = mean_c + std_c * z, rounded to `t`. Each
// channel's z is standardised over its m values, so the sample spread is std_c even for m = 2
// (a tiny sample spread would make fp32 rounding of the mean, not the kernel, dominate).
inline std::vector<float> channel_data(const BatchNormDims& d, DType t, std::uint32_t seed,
                                       double mean_range = 3.0) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> mean_u(-mean_range, mean_range), std_u(0.5, 2.0);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::vector<float> x(numel(d));
  std::vector<double> z(d.n * d.hw);
  for (std::int64_t ch = 0; ch < d.c; ++ch) {
    const double mu = mean_u(rng), sd = std_u(rng);
    double zm = 0, zs = 0;
    for (double& e : z) zm += (e = normal(rng)) / static_cast<double>(z.size());
    for (double e : z) zs += (e - zm) * (e - zm) / static_cast<double>(z.size());
    zs = z.size() > 1 && zs > 0 ? std::sqrt(zs) : 1.0;
    for (std::int64_t ni = 0; ni < d.n; ++ni)
      for (std::int64_t p = 0; p < d.hw; ++p)
        x[offset(d, ni, ch, p)] =
            storage_round(static_cast<float>(mu + sd * (z[ni * d.hw + p] - zm) / zs), t);
  }
  return x;
}

inline std::vector<float> uniform_data(std::int64_t count, float lo, float hi, DType t,
                                       std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(count);
  for (float& e : v) e = storage_round(u(rng), t);
  return v;
}

struct Stats {
  std::vector<double> mean, var;  // biased variance
};

inline Stats batch_stats(const BatchNormDims& d, const std::vector<float>& x) {
  Stats s{std::vector<double>(d.c), std::vector<double>(d.c)};
  const double m = static_cast<double>(d.n * d.hw);
  for (std::int64_t ch = 0; ch < d.c; ++ch) {
    double sum = 0;
    for (std::int64_t ni = 0; ni < d.n; ++ni)
      for (std::int64_t p = 0; p < d.hw; ++p) sum += x[offset(d, ni, ch, p)];
    const double mean = sum / m;
    double sq = 0;
    for (std::int64_t ni = 0; ni < d.n; ++ni)
      for (std::int64_t p = 0; p < d.hw; ++p) {
        const double e = x[offset(d, ni, ch, p)] - mean;
        sq += e * e;
      }
    s.mean[ch] = mean;
    s.var[ch] = sq / m;
  }
  return s;
}

inline double activate(double v, double r, BnActivation act) {
  if (act == BnActivation::kAddRelu) v += r;
  if (act != BnActivation::kNone && v < 0) v = 0;
  return v;
}

// y = act(gamma * (x - mean) / sqrt(var + eps) + beta [+ r]) with the given per-channel mean and
// variance (batch statistics in training, running statistics in inference).
inline std::vector<double> normalise(const BatchNormDims& d, const std::vector<float>& x,
                                     const std::vector<float>* residual,
                                     const std::vector<double>& mean,
                                     const std::vector<double>& var,
                                     const std::vector<float>& gamma,
                                     const std::vector<float>& beta, double eps,
                                     BnActivation act) {
  std::vector<double> y(x.size());
  for (std::int64_t ni = 0; ni < d.n; ++ni)
    for (std::int64_t ch = 0; ch < d.c; ++ch)
      for (std::int64_t p = 0; p < d.hw; ++p) {
        const std::int64_t i = offset(d, ni, ch, p);
        const double bn = gamma[ch] * (x[i] - mean[ch]) / std::sqrt(var[ch] + eps) + beta[ch];
        y[i] = activate(bn, residual != nullptr ? (*residual)[i] : 0.0, act);
      }
  return y;
}

// The gradients and, for tolerances, the size of the terms each is computed from:
// dx_scale = |gamma| * invstd * (|g| + rms of g over the channel), dgamma_scale = sum |g * xhat|,
// dbeta_scale = sum |g| (a sum that cancels cannot be held to its own tiny size).
struct Grads {
  std::vector<double> dx, dresidual, dgamma, dbeta;
  std::vector<double> dx_scale, dgamma_scale, dbeta_scale;
};

// Backward from the batch statistics of x, the ReLU mask taken from the given output y:
// dx = gamma / (m * sigma) * (m*g - sum g - xhat * sum(g * xhat)), sigma = sqrt(var + eps).
inline Grads backward(const BatchNormDims& d, const std::vector<float>& dy,
                      const std::vector<float>& x, const std::vector<float>& y,
                      const std::vector<float>& gamma, double eps, BnActivation act) {
  const Stats s = batch_stats(d, x);
  const double m = static_cast<double>(d.n * d.hw);
  Grads gr{std::vector<double>(x.size()), std::vector<double>(x.size()),
           std::vector<double>(d.c),      std::vector<double>(d.c),
           std::vector<double>(x.size()), std::vector<double>(d.c),
           std::vector<double>(d.c)};
  auto g_at = [&](std::int64_t i) {
    return (act != BnActivation::kNone && y[i] <= 0.f) ? 0.0 : static_cast<double>(dy[i]);  // a NaN y passes, as PyTorch
  };
  for (std::int64_t ch = 0; ch < d.c; ++ch) {
    const double sigma = std::sqrt(s.var[ch] + eps);
    double sg = 0, sgx = 0, sg2 = 0;
    for (std::int64_t ni = 0; ni < d.n; ++ni)
      for (std::int64_t p = 0; p < d.hw; ++p) {
        const std::int64_t i = offset(d, ni, ch, p);
        const double g = g_at(i), xhat = (x[i] - s.mean[ch]) / sigma;
        sg += g;
        sgx += g * xhat;
        sg2 += g * g;
        gr.dbeta_scale[ch] += std::fabs(g);
        gr.dgamma_scale[ch] += std::fabs(g * xhat);
      }
    gr.dbeta[ch] = sg;
    gr.dgamma[ch] = sgx;
    const double g_rms = std::sqrt(sg2 / m);
    for (std::int64_t ni = 0; ni < d.n; ++ni)
      for (std::int64_t p = 0; p < d.hw; ++p) {
        const std::int64_t i = offset(d, ni, ch, p);
        const double xhat = (x[i] - s.mean[ch]) / sigma;
        gr.dx[i] = gamma[ch] / (m * sigma) * (m * g_at(i) - sg - xhat * sgx);
        gr.dx_scale[i] = std::fabs(gamma[ch]) / sigma * (std::fabs(g_at(i)) + g_rms);
        gr.dresidual[i] = g_at(i);
      }
  }
  return gr;
}

// Host bytes of `v` stored as `t` (fp32 or bf16), and back.
inline std::vector<std::uint8_t> to_storage(const std::vector<float>& v, DType t) {
  std::vector<std::uint8_t> b(v.size() * dtype_size(t));
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (t == DType::kFloat32) {
      std::memcpy(b.data() + 4 * i, &v[i], 4);
    } else {
      const std::uint16_t h = bf16_bits_from_float(v[i]);
      std::memcpy(b.data() + 2 * i, &h, 2);
    }
  }
  return b;
}

inline std::vector<float> from_storage(const std::vector<std::uint8_t>& b, DType t) {
  std::vector<float> v(b.size() / dtype_size(t));
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (t == DType::kFloat32) {
      std::memcpy(&v[i], b.data() + 4 * i, 4);
    } else {
      std::uint16_t h;
      std::memcpy(&h, b.data() + 2 * i, 2);
      v[i] = float_from_bf16_bits(h);
    }
  }
  return v;
}

// |actual - expected| <= tol * (|expected| + scale) element by element; reports the first
// mismatches with their indices.
inline ::testing::AssertionResult within(const std::vector<float>& actual,
                                         const std::vector<double>& expected,
                                         const std::vector<double>& scale, double tol) {
  if (actual.size() != expected.size() || scale.size() != expected.size())
    return ::testing::AssertionFailure() << "sizes differ";
  std::size_t bad = 0;
  std::string first;
  for (std::size_t i = 0; i < actual.size(); ++i) {
    const double lim = tol * (std::fabs(expected[i]) + scale[i]);
    if (!(std::fabs(actual[i] - expected[i]) <= lim)) {
      if (bad++ < 5)
        first += "\n  [" + std::to_string(i) + "] actual " + std::to_string(actual[i]) +
                 " expected " + std::to_string(expected[i]) + " tol " + std::to_string(lim);
    }
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << bad << " of " << actual.size()
                                       << " elements out of tolerance:" << first;
}

// Root mean square of v (the scale that absolute tolerances are written against).
inline double rms(const std::vector<double>& v) {
  double s = 0;
  for (double e : v) s += e * e;
  return v.empty() ? 0.0 : std::sqrt(s / static_cast<double>(v.size()));
}

// |actual - expected| <= tol * (|expected| + rms(expected)).
inline ::testing::AssertionResult close_to(const std::vector<float>& actual,
                                           const std::vector<double>& expected, double tol) {
  return all_close(actual, expected, tol * rms(expected), tol);
}

}  // namespace kestrel::testing::bnref
