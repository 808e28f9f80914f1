// Fused optimizer updates over one flat fp32 parameter buffer on the GPU. CPU twins:
// kernels/cpu/optimizer.h; the per-element formulas and configs: kernels/optimizer_math.h.
//
// - lr and step are read from device memory when the kernel runs, so a captured CUDA Graph sees
//   schedule changes; step = 1 on the first update (increment_step advances it on the device).
//   The GPU cannot raise on them: a negative lr or step < 1 gives meaningless updates (step 0
//   makes AdamW's bias correction 0, i.e. Inf/NaN parameters), so the caller's schedule owns them.
// - decay_mask (may be null = decay everything): one byte per parameter, 0 exempts it (BN, bias)
//   from weight decay.
// - params_bf16 (may be null): also receives the updated parameters rounded to bf16 (RNE), the
//   compute copy for bf16 training.
// - momentum_buf may be null when cfg.momentum == 0.
// - clip (default: none): gradient clipping by the global L2 norm; clip.sum_squares points to
//   device memory holding sum(g^2) over the whole gradient buffer (e.g. cuda::sum_squares on the
//   same stream just before), read when the kernel runs (see optimizer_math.h).
// Semantics are PyTorch's SGD and AdamW (see optimizer_math.h); the GPU and the CPU twin agree bit
// for bit. 16-byte vector accesses when every pointer allows it (floats 16 B, mask 4 B, bf16
// copy 8 B aligned), scalar code for the tail and for unaligned pointers.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kestrel/kernels/optimizer_math.h"

namespace kestrel::cuda {
void sgd_update(float* params, const float* grads, float* momentum_buf, std::int64_t n,
                const SgdConfig& cfg, const float* lr, const std::int64_t* step,
                const std::uint8_t* decay_mask, std::uint16_t* params_bf16, cudaStream_t stream,
                const GradClip& clip = {});
void adamw_update(float* params, const float* grads, float* exp_avg, float* exp_avg_sq,
                  std::int64_t n, const AdamWConfig& cfg, const float* lr, const std::int64_t* step,
                  const std::uint8_t* decay_mask, std::uint16_t* params_bf16, cudaStream_t stream,
                  const GradClip& clip = {});
// *step += 1 on the device (one thread), in stream order.
void increment_step(std::int64_t* step, cudaStream_t stream);
}  // namespace kestrel::cuda
