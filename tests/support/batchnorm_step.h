// One batch-norm training step (forward with running statistics, then backward) as test data:
// random inputs, the outputs a backend filled in, and the comparison of those outputs with the
// double-precision reference (batchnorm_reference.h). The CPU and CUDA tests differ only in
// how they run the step.
//
// Tolerances: |a - e| <= tol * (|e| + scale); tol = 1e-5 for fp32 outputs and statistics,
// 1e-4 for fp32 gradients (about 100 and 1000 units of fp32 rounding), 1e-2 for anything stored
// as bf16 (a bf16 rounding is 2^-9 = 2e-3). The scale is the rms of the expected values for
// outputs and statistics, and the size of the terms a gradient is summed from for gradients
// (dx for m = 2 is eps-sized: its terms cancel; see Grads in batchnorm_reference.h).
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "batchnorm_reference.h"
#include "test_support.h"

namespace kestrel::testing::bnref {

struct Step {
  // inputs (values already rounded to the storage dtype)
  std::vector<float> x, residual, gamma, beta, rm0, rv0, dy;
  // outputs
  std::vector<float> y, dx, dresidual, save_mean, save_invstd, rm, rv, dgamma, dbeta;
};

inline Step make_step(const BatchNormDims& d, DType t, BnActivation act, std::uint32_t seed) {
  const std::int64_t count = numel(d);
  Step s;
  s.x = channel_data(d, t, seed);
  if (act == BnActivation::kAddRelu) s.residual = uniform_data(count, -2.f, 2.f, t, seed + 1);
  s.gamma = uniform_data(d.c, -1.5f, 1.5f, DType::kFloat32, seed + 2);
  s.beta = uniform_data(d.c, -1.f, 1.f, DType::kFloat32, seed + 3);
  s.rm0 = uniform_data(d.c, -1.f, 1.f, DType::kFloat32, seed + 4);
  s.rv0 = uniform_data(d.c, 0.5f, 2.f, DType::kFloat32, seed + 5);
  s.dy = uniform_data(count, -1.f, 1.f, t, seed + 6);
  return s;
}

// Outputs, saved statistics, running statistics (PyTorch's update), gradients.
inline void check_step(const BatchNormDims& d, DType t, BnActivation act, const Step& s,
                       float eps, float momentum) {
  SCOPED_TRACE(describe(d, t, act));
  const bool bf16 = t == DType::kBFloat16;
  const double out_tol = bf16 ? 1e-2 : 1e-5, grad_tol = bf16 ? 1e-2 : 1e-4;
  const Stats st = batch_stats(d, s.x);
  const auto* r = act == BnActivation::kAddRelu ? &s.residual : nullptr;
  EXPECT_TRUE(close_to(s.y, normalise(d, s.x, r, st.mean, st.var, s.gamma, s.beta, eps, act),
                       out_tol));
  const double m = static_cast<double>(d.n * d.hw);
  std::vector<double> invstd(d.c), rm(d.c), rv(d.c);
  for (std::int64_t ch = 0; ch < d.c; ++ch) {
    invstd[ch] = 1.0 / std::sqrt(st.var[ch] + eps);
    rm[ch] = (1.0 - momentum) * s.rm0[ch] + momentum * st.mean[ch];
    rv[ch] = (1.0 - momentum) * s.rv0[ch] + momentum * st.var[ch] * m / (m - 1.0);
  }
  EXPECT_TRUE(close_to(s.save_mean, st.mean, 1e-5));
  EXPECT_TRUE(close_to(s.save_invstd, invstd, 1e-5));
  EXPECT_TRUE(close_to(s.rm, rm, 1e-5));
  EXPECT_TRUE(close_to(s.rv, rv, 1e-5));

  const Grads g = backward(d, s.dy, s.x, s.y, s.gamma, eps, act);
  EXPECT_TRUE(within(s.dx, g.dx, g.dx_scale, grad_tol));
  EXPECT_TRUE(within(s.dgamma, g.dgamma, g.dgamma_scale, grad_tol));
  EXPECT_TRUE(within(s.dbeta, g.dbeta, g.dbeta_scale, grad_tol));
  if (act == BnActivation::kAddRelu) {
    EXPECT_TRUE(close_to(s.dresidual, g.dresidual, grad_tol));
  }
}

}  // namespace kestrel::testing::bnref
