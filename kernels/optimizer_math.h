// Optimizer configurations and the per-element SGD and AdamW updates, shared by
// kernels/optimizer.cu and kernels/cpu/optimizer.cpp.
//
// The updates transcribe PyTorch's torch.optim.SGD and torch.optim.AdamW (single-tensor path,
// maximize=False, amsgrad=False) operation by operation, with every a*b+c written as an explicit
// fmaf (as PyTorch's CUDA kernels contract them), so host and device round identically: the CPU
// twin and the GPU agree bit for bit (fmaf, division and sqrtf are correctly rounded on both).
// The per-launch scalars (bias corrections, 1 - lr*wd, ...) are computed in double, as PyTorch's
// Python floats are, by the same operations on host and device (beta^step by repeated squaring,
// not pow, whose last bit differs between libms), then rounded to float once.
// Known difference from PyTorch: the config holds float betas/eps (0.9f is not the double 0.9);
// the bias corrections therefore differ in the 8th significant digit at step 1 at most.
#pragma once

#include <math.h>

#include <cstdint>
#include <initializer_list>

#include "kestrel/core/error.h"
#include "kestrel/core/hd.h"

namespace kestrel {

// torch.optim.SGD(momentum, dampening, weight_decay, nesterov); the learning rate is read from
// memory at run time (see kernels/optimizer.h). The default momentum is 0.9 (PyTorch's is 0).
struct SgdConfig {
  float momentum = 0.9f;
  float dampening = 0.f;
  float weight_decay = 0.f;
  bool nesterov = false;
};

// torch.optim.AdamW(betas=(beta1, beta2), eps, weight_decay), amsgrad off. fp32 state, as
// PyTorch's: a gradient above about 5.8e20 in magnitude (beta2 0.999) makes exp_avg_sq infinite
// for good (that parameter stops moving), and one below about 1e-21 makes it underflow to 0, so
// with a tiny eps (1e-30) the step lr * exp_avg / eps is far too large.
struct AdamWConfig {
  float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f, weight_decay = 1e-2f;
};

// Raise kestrel::Error on values PyTorch rejects (and non-finite ones): momentum < 0,
// weight_decay < 0, dampening outside [0, 1], nesterov without momentum or with dampening;
// betas outside [0, 1), eps <= 0.
void validate(const SgdConfig& cfg);
void validate(const AdamWConfig& cfg);

// Gradient clipping by the global L2 norm, as torch.nn.utils.clip_grad_norm_(max_norm) (norm
// type 2, error_if_nonfinite=False) followed by the step: every gradient is multiplied by
// coef = min(1, max_norm / (sqrt(sum of all g^2) + 1e-6)) before weight decay and momentum. The
// sum of squares is read from memory when the update runs (device memory on the GPU, host memory
// for the CPU twin), so a captured CUDA Graph clips each replay by that step's norm; the
// gradient buffer itself is left unscaled (PyTorch scales .grad in place). A NaN norm makes coef
// NaN and an infinite one makes it 0, as in PyTorch, so non-finite gradients still poison the
// step: detect them first (the trainer's --nonfinite policy). The sum of squares is an fp32 value:
// a finite norm above about 1.8e19 overflows it and counts as infinite (coef 0, the step makes no
// gradient move), as PyTorch's fp32 norm does on the GPU. Default: no clipping.
struct GradClip {
  const float* sum_squares = nullptr;  // null: no clipping
  float max_norm = 0.f;                // > 0 and finite when sum_squares is set
};

// Raises kestrel::Error for a set sum_squares with a max_norm that is not finite and > 0.
void validate(const GradClip& clip);

namespace optimizer_detail {

// b^e for e >= 0 by repeated squaring: a fixed sequence of correctly rounded multiplications.
KESTREL_HD double pow_int(double b, std::int64_t e) {
  double r = 1.0;
  while (e > 0) {
    if (e & 1) r *= b;
    b *= b;
    e >>= 1;
  }
  return r;
}

struct SgdScalars {
  float neg_lr, momentum, one_minus_dampening, weight_decay;
  bool first, nesterov;
};

KESTREL_HD SgdScalars sgd_scalars(const SgdConfig& c, float lr, std::int64_t step) {
  return SgdScalars{-lr, c.momentum, static_cast<float>(1.0 - static_cast<double>(c.dampening)),
                    c.weight_decay, step == 1, c.nesterov};
}

// One parameter: g += wd * p (when decayed); buf = first ? g : momentum * buf + (1 - dampening) g;
// g = nesterov ? g + momentum * buf : buf; p -= lr * g. buf is untouched when momentum is 0.
KESTREL_HD void sgd_element(float& p, float g, float& buf, bool decay, const SgdScalars& s) {
  if (decay && s.weight_decay != 0.f) g = fmaf(s.weight_decay, p, g);
  if (s.momentum != 0.f) {
    buf = s.first ? g : fmaf(s.one_minus_dampening, g, buf * s.momentum);
    g = s.nesterov ? fmaf(s.momentum, buf, g) : buf;
  }
  p = fmaf(s.neg_lr, g, p);
}

struct AdamWScalars {
  float decay_factor;      // 1 - lr * weight_decay
  float lerp_weight;       // 1 - beta1 (exp_avg.lerp_(grad, 1 - beta1))
  float beta2, one_minus_beta2;
  float neg_step_size;     // -lr / (1 - beta1^step)
  float bias_correction2_sqrt;  // sqrt(1 - beta2^step)
  float eps;
};

KESTREL_HD AdamWScalars adamw_scalars(const AdamWConfig& c, float lr, std::int64_t step) {
  const double b1 = c.beta1, b2 = c.beta2;
  const double bc1 = 1.0 - pow_int(b1, step);
  const double bc2 = 1.0 - pow_int(b2, step);
  return AdamWScalars{static_cast<float>(fma(-static_cast<double>(lr), static_cast<double>(c.weight_decay), 1.0)),
                      static_cast<float>(1.0 - b1),
                      c.beta2,
                      static_cast<float>(1.0 - b2),
                      static_cast<float>(-(static_cast<double>(lr) / bc1)),
                      static_cast<float>(sqrt(bc2)),
                      c.eps};
}

// PyTorch's lerp: self + w (end - self) for |w| < 0.5, else end - (end - self)(1 - w).
KESTREL_HD float torch_lerp(float self, float end, float w) {
  const float d = end - self;
  return fabsf(w) < 0.5f ? fmaf(w, d, self) : fmaf(-d, 1.f - w, end);
}

// One parameter: p *= 1 - lr wd (when decayed); m = lerp(m, g, 1 - b1); v = b2 v + (1 - b2) g^2;
// p += -step_size * (m / (sqrt(v) / sqrt(bc2) + eps)).
KESTREL_HD void adamw_element(float& p, float g, float& m, float& v, bool decay, const AdamWScalars& s) {
  if (decay && s.decay_factor != 1.f) p = p * s.decay_factor;
  m = torch_lerp(m, g, s.lerp_weight);
  v = fmaf(s.one_minus_beta2 * g, g, v * s.beta2);
  const float denom = sqrtf(v) / s.bias_correction2_sqrt + s.eps;
  p = fmaf(s.neg_step_size, m / denom, p);
}

// min(1, max_norm / (sqrt(sum_squares) + 1e-6)) in fp32, one division. PyTorch's total norm
// is a norm of per-tensor norms and its `max_norm / tensor` is a reciprocal times max_norm (two
// roundings), so the two coefficients agree to rounding, not bit for bit. NaN stays NaN.
KESTREL_HD float clip_coefficient(float sum_squares, float max_norm) {
  const float coef = max_norm / (sqrtf(sum_squares) + 1e-6f);
  return coef > 1.f ? 1.f : coef;
}

// g * scale rounded on its own. On the device a plain product could be contracted with the
// subtraction that follows it in torch_lerp into one FMA (nvcc contracts by default), and the
// twins would then round differently; __fmul_rn is never contracted. The host build compiles the
// library with -ffp-contract=off (CMakeLists.txt), so its product is never contracted either.
KESTREL_HD float scale_grad(float g, float scale) {
#ifdef __CUDA_ARCH__
  return __fmul_rn(g, scale);
#else
  return g * scale;
#endif
}

// The factor an update multiplies each gradient by: 1 without clipping.
KESTREL_HD float grad_scale(const GradClip& clip) {
  return clip.sum_squares != nullptr ? clip_coefficient(*clip.sum_squares, clip.max_norm) : 1.f;
}

// Host-side pointer and size checks shared by both twins; `state` are the optimizer's state
// buffers that this configuration uses.
inline void check_update(const char* op, std::int64_t n, const float* params, const float* grads,
                         const float* lr, const std::int64_t* step,
                         std::initializer_list<const float*> state) {
  KESTREL_CHECK(n >= 0, op, ": negative parameter count ", n);
  if (n == 0) return;
  KESTREL_CHECK(params != nullptr && grads != nullptr, op, ": params and grads must not be null");
  KESTREL_CHECK(lr != nullptr && step != nullptr, op, ": lr and step pointers must not be null");
  for (const float* s : state) KESTREL_CHECK(s != nullptr, op, ": an optimizer state buffer is null");
}

}  // namespace optimizer_detail
}  // namespace kestrel
