// Formulas of layer normalisation (the (std + eps) form of kernels/layernorm.h), shared by
// kernels/layernorm.cu and kernels/cpu/layernorm.cpp (KESTREL_HD), plus the argument checks
// both twins raise (host only).
#pragma once

#include <math.h>

#include <cmath>
#include <cstdint>
#include <limits>

#include "kestrel/core/dtype.h"
#include "kestrel/core/error.h"
#include "kestrel/core/hd.h"
#include "kestrel/kernels/batchnorm_math.h"
#include "kestrel/kernels/element_io.h"

namespace kestrel::ln_detail {

using bn_detail::Welford;

// Groups of rows whose column sums (dgamma, dbeta) the GPU keeps apart before the final sum.
constexpr std::int64_t kGroups = 256;

// Row statistics from the merged (count, mean, M2) of its cols values.
KESTREL_HD void ln_finalize(const Welford& w, float cols, float eps, float& mean, float& rstd) {
  mean = w.mean;
  rstd = 1.f / (sqrtf(w.m2 / cols) + eps);
}

KESTREL_HD float ln_forward_element(float x, float mean, float rstd, const float* gamma,
                                    const float* beta, std::int64_t j) {
  const float g = gamma != nullptr ? gamma[j] : 1.f;
  const float b = beta != nullptr ? beta[j] : 0.f;
  return fmaf((x - mean) * rstd, g, b);
}

// Per-row sums of backward: h = dy * gamma, d = x - mean; sum h, sum h*d, sum d^2.
struct RowSums {
  float h, hd, dd;
};

KESTREL_HD RowSums row_sums_combine(const RowSums& a, const RowSums& b) {
  return {a.h + b.h, a.hd + b.hd, a.dd + b.dd};
}

KESTREL_HD void row_sums_add(RowSums& s, float dy, float x, float mean, const float* gamma,
                             std::int64_t j) {
  const float h = dy * (gamma != nullptr ? gamma[j] : 1.f);
  const float d = x - mean;
  s.h += h;
  s.hd = fmaf(h, d, s.hd);
  s.dd = fmaf(d, d, s.dd);
}

// dx = a*h + k*(x - mean) + b with a = rstd, b = -rstd * mean(h),
// k = -rstd^2 * mean(h*d) / sigma (0 when sigma == 0: the term's limit).
struct BackwardCoeffs {
  float mean, a, k, b;
};

KESTREL_HD BackwardCoeffs backward_coeffs(const RowSums& s, float mean, float rstd, float cols) {
  const float sigma = sqrtf(s.dd / cols);
  const float k = sigma > 0.f ? -rstd * rstd * (s.hd / cols) / sigma : 0.f;
  return {mean, rstd, k, -rstd * (s.h / cols)};
}

KESTREL_HD float backward_element(float dy, float x, const float* gamma, std::int64_t j,
                                  const BackwardCoeffs& c) {
  const float h = dy * (gamma != nullptr ? gamma[j] : 1.f);
  return fmaf(c.a, h, fmaf(c.k, x - c.mean, c.b));
}

// acc + dy * xhat for dgamma, as one fma in both twins.
KESTREL_HD float accumulate_dgamma(float acc, float dy, float x, float mean, float rstd) {
  return fmaf(dy, (x - mean) * rstd, acc);
}

inline void check_shape(const char* fn, std::int64_t rows, std::int64_t cols, DType dtype) {
  KESTREL_CHECK(rows > 0 && cols > 0, fn, ": rows and cols must be positive, got ", rows, " x ",
                cols);
  KESTREL_CHECK(rows <= std::numeric_limits<std::int64_t>::max() / 16 / cols, fn,
                ": tensor too large (", rows, " x ", cols, ")");
  element_io::check_float_or_bf16(dtype, fn);
}

inline void check_forward(const void* x, const void* y, DType dtype, std::int64_t rows,
                          std::int64_t cols, float eps) {
  check_shape("layernorm_forward", rows, cols, dtype);
  KESTREL_CHECK(eps > 0.f && std::isfinite(eps),
                "layernorm_forward: eps must be positive and finite, got ", eps);
  KESTREL_CHECK(x != nullptr && y != nullptr, "layernorm_forward: x and y are required");
  element_io::check_elements_aligned("layernorm_forward", dtype, {x, y});
}

inline void check_backward(const void* dy, const void* x, DType dtype, std::int64_t rows,
                           std::int64_t cols, const float* save_mean, const float* save_rstd,
                           const void* dx) {
  check_shape("layernorm_backward", rows, cols, dtype);
  KESTREL_CHECK(dy != nullptr && x != nullptr && dx != nullptr,
                "layernorm_backward: dy, x and dx are required");
  element_io::check_elements_aligned("layernorm_backward", dtype, {dy, x, dx});
  KESTREL_CHECK(save_mean != nullptr && save_rstd != nullptr,
                "layernorm_backward: save_mean and save_rstd are required");
}

}  // namespace kestrel::ln_detail
