// CPU twins of kernels/optimizer.h: same arguments, no stream; lr and step point to host
// memory. Unlike the GPU, the twin raises kestrel::Error for a negative or non-finite lr and for
// step < 1. clip.sum_squares points to host memory.
#pragma once

#include <cstdint>

#include "kestrel/kernels/optimizer_math.h"

namespace kestrel::cpu {
void sgd_update(float* params, const float* grads, float* momentum_buf, std::int64_t n,
                const SgdConfig& cfg, const float* lr, const std::int64_t* step,
                const std::uint8_t* decay_mask, std::uint16_t* params_bf16,
                const GradClip& clip = {});
void adamw_update(float* params, const float* grads, float* exp_avg, float* exp_avg_sq,
                  std::int64_t n, const AdamWConfig& cfg, const float* lr, const std::int64_t* step,
                  const std::uint8_t* decay_mask, std::uint16_t* params_bf16,
                  const GradClip& clip = {});
void increment_step(std::int64_t* step);
}  // namespace kestrel::cpu
