// Double-precision transcriptions of PyTorch's torch.optim.SGD and torch.optim.AdamW, the
// references of the optimizer tests. grad_scale multiplies every gradient first (what
// torch.nn.utils.clip_grad_norm_ does to .grad before the step).
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "kestrel/kernels/optimizer_math.h"

namespace kestrel::testing {

// Sum of squares of all gradients, in double.
inline double sum_of_squares(const std::vector<float>& g) {
  double s = 0;
  for (float v : g) s += static_cast<double>(v) * v;
  return s;
}

// What torch.nn.utils.clip_grad_norm_ multiplies the gradients by, in double.
inline double clip_factor(double sum_squares, double max_norm) {
  const double f = max_norm / (std::sqrt(sum_squares) + 1e-6);
  return f < 1.0 ? f : 1.0;
}

// torch.optim.SGD._single_tensor_sgd, in double.
struct SgdReference {
  std::vector<double> p, buf;
  void step(const kestrel::SgdConfig& c, const std::vector<float>& grad, double lr, std::int64_t t,
            const std::vector<std::uint8_t>& mask, double grad_scale = 1.0) {
    for (std::size_t i = 0; i < p.size(); ++i) {
      double d_p = grad[i] * grad_scale;
      if (c.weight_decay != 0 && (mask.empty() || mask[i])) d_p += static_cast<double>(c.weight_decay) * p[i];
      if (c.momentum != 0) {
        if (t == 1) buf[i] = d_p;
        else buf[i] = buf[i] * c.momentum + (1.0 - c.dampening) * d_p;
        d_p = c.nesterov ? d_p + static_cast<double>(c.momentum) * buf[i] : buf[i];
      }
      p[i] -= lr * d_p;
    }
  }
};

// torch.optim.AdamW (Adam with decoupled weight decay, amsgrad off), in double.
struct AdamWReference {
  std::vector<double> p, m, v;
  void step(const kestrel::AdamWConfig& c, const std::vector<float>& grad, double lr, std::int64_t t,
            const std::vector<std::uint8_t>& mask, double grad_scale = 1.0) {
    const double b1 = c.beta1, b2 = c.beta2;
    const double bc1 = 1 - std::pow(b1, static_cast<double>(t)), bc2 = 1 - std::pow(b2, static_cast<double>(t));
    for (std::size_t i = 0; i < p.size(); ++i) {
      const double g = grad[i] * grad_scale;
      if (c.weight_decay != 0 && (mask.empty() || mask[i])) p[i] *= 1 - lr * c.weight_decay;
      m[i] = b1 * m[i] + (1 - b1) * g;
      v[i] = b2 * v[i] + (1 - b2) * g * g;
      p[i] -= (lr / bc1) * m[i] / (std::sqrt(v[i]) / std::sqrt(bc2) + c.eps);
    }
  }
};

}  // namespace kestrel::testing
