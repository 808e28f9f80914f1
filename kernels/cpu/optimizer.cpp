#include "kestrel/kernels/cpu/optimizer.h"

#include <cmath>

#include "kestrel/core/error.h"
#include "kestrel/core/half.h"

namespace kestrel {

// The configs' validation is host code shared by both twins; it lives with the CPU twin.
void validate(const SgdConfig& c) {
  KESTREL_CHECK(std::isfinite(c.momentum) && c.momentum >= 0.f, "SGD: momentum must be >= 0, got ",
                c.momentum);
  KESTREL_CHECK(std::isfinite(c.weight_decay) && c.weight_decay >= 0.f,
                "SGD: weight_decay must be >= 0, got ", c.weight_decay);
  KESTREL_CHECK(c.dampening >= 0.f && c.dampening <= 1.f, "SGD: dampening must be in [0, 1], got ",
                c.dampening);
  KESTREL_CHECK(!c.nesterov || (c.momentum > 0.f && c.dampening == 0.f),
                "SGD: nesterov needs momentum > 0 and dampening 0 (got momentum ", c.momentum,
                ", dampening ", c.dampening, ")");
}

void validate(const AdamWConfig& c) {
  KESTREL_CHECK(c.beta1 >= 0.f && c.beta1 < 1.f, "AdamW: beta1 must be in [0, 1), got ", c.beta1);
  KESTREL_CHECK(c.beta2 >= 0.f && c.beta2 < 1.f, "AdamW: beta2 must be in [0, 1), got ", c.beta2);
  KESTREL_CHECK(std::isfinite(c.eps) && c.eps > 0.f, "AdamW: eps must be > 0, got ", c.eps);
  KESTREL_CHECK(std::isfinite(c.weight_decay) && c.weight_decay >= 0.f,
                "AdamW: weight_decay must be >= 0, got ", c.weight_decay);
}

void validate(const GradClip& clip) {
  if (clip.sum_squares == nullptr) return;
  KESTREL_CHECK(std::isfinite(clip.max_norm) && clip.max_norm > 0.f,
                "gradient clipping: max_norm must be finite and > 0, got ", clip.max_norm);
}

namespace cpu {
namespace {
void check_schedule(const char* op, const float* lr, const std::int64_t* step) {
  KESTREL_CHECK(std::isfinite(*lr) && *lr >= 0.f, op, ": lr must be finite and >= 0, got ", *lr);
  KESTREL_CHECK(*step >= 1, op, ": step must be >= 1 (1 on the first update), got ", *step);
}
}  // namespace

void sgd_update(float* params, const float* grads, float* momentum_buf, std::int64_t n,
                const SgdConfig& cfg, const float* lr, const std::int64_t* step,
                const std::uint8_t* decay_mask, std::uint16_t* params_bf16, const GradClip& clip) {
  validate(cfg);
  validate(clip);
  optimizer_detail::check_update("sgd_update", n, params, grads, lr, step,
                                 {cfg.momentum != 0.f ? momentum_buf : params});
  if (n == 0) return;
  check_schedule("sgd_update", lr, step);
  const optimizer_detail::SgdScalars s = optimizer_detail::sgd_scalars(cfg, *lr, *step);
  const float scale = optimizer_detail::grad_scale(clip);
  const bool clipping = clip.sum_squares != nullptr;
  for (std::int64_t i = 0; i < n; ++i) {
    float unused = 0.f;
    float& buf = cfg.momentum != 0.f ? momentum_buf[i] : unused;
    const float g = clipping ? optimizer_detail::scale_grad(grads[i], scale) : grads[i];
    optimizer_detail::sgd_element(params[i], g, buf, !decay_mask || decay_mask[i], s);
    if (params_bf16) params_bf16[i] = bf16_bits_from_float(params[i]);
  }
}

void adamw_update(float* params, const float* grads, float* exp_avg, float* exp_avg_sq,
                  std::int64_t n, const AdamWConfig& cfg, const float* lr, const std::int64_t* step,
                  const std::uint8_t* decay_mask, std::uint16_t* params_bf16, const GradClip& clip) {
  validate(cfg);
  validate(clip);
  optimizer_detail::check_update("adamw_update", n, params, grads, lr, step, {exp_avg, exp_avg_sq});
  if (n == 0) return;
  check_schedule("adamw_update", lr, step);
  const optimizer_detail::AdamWScalars s = optimizer_detail::adamw_scalars(cfg, *lr, *step);
  const float scale = optimizer_detail::grad_scale(clip);
  const bool clipping = clip.sum_squares != nullptr;
  for (std::int64_t i = 0; i < n; ++i) {
    const float g = clipping ? optimizer_detail::scale_grad(grads[i], scale) : grads[i];
    optimizer_detail::adamw_element(params[i], g, exp_avg[i], exp_avg_sq[i],
                                    !decay_mask || decay_mask[i], s);
    if (params_bf16) params_bf16[i] = bf16_bits_from_float(params[i]);
  }
}

void increment_step(std::int64_t* step) {
  KESTREL_CHECK(step != nullptr, "increment_step: null step pointer");
  ++*step;
}

}  // namespace cpu
}  // namespace kestrel
