#include <cstdint>

#include "kestrel/core/half.h"
#include "kestrel/kernels/launch_internal.cuh"
#include "kestrel/kernels/optimizer.h"

namespace kestrel::cuda {
namespace {
constexpr int kThreads = 256;

// The launch's scalars from the config and the lr/step read when the kernel runs (so graph
// replays see new values), by the same double arithmetic as the CPU twin.
__device__ optimizer_detail::SgdScalars prepare(const SgdConfig& c, float lr, std::int64_t step) {
  return optimizer_detail::sgd_scalars(c, lr, step);
}
__device__ optimizer_detail::AdamWScalars prepare(const AdamWConfig& c, float lr, std::int64_t step) {
  return optimizer_detail::adamw_scalars(c, lr, step);
}

// One element; SGD keeps its momentum in state a and ignores b.
__device__ void apply(const optimizer_detail::SgdScalars& s, float& p, float g, float& a, float&,
                      bool decay) {
  optimizer_detail::sgd_element(p, g, a, decay, s);
}
__device__ void apply(const optimizer_detail::AdamWScalars& s, float& p, float g, float& a,
                      float& b, bool decay) {
  optimizer_detail::adamw_element(p, g, a, b, decay, s);
}

// The flat buffers of one update; state0/state1 are null when the optimizer does not use them.
struct Buffers {
  float* params;
  const float* grads;
  float* state0;
  float* state1;
  const std::uint8_t* mask;
  std::uint16_t* params_bf16;
};

template <typename Scalars>
__device__ void apply4(const Scalars& s, float4& p, const float4& g, float4& a, float4& b,
                       const uchar4& m) {
  apply(s, p.x, g.x, a.x, b.x, m.x != 0);
  apply(s, p.y, g.y, a.y, b.y, m.y != 0);
  apply(s, p.z, g.z, a.z, b.z, m.z != 0);
  apply(s, p.w, g.w, a.w, b.w, m.w != 0);
}

// Quads [0, n/4) with 16-byte accesses when `vec`, then the remaining elements one by one.
template <typename Config>
__global__ void update_kernel(Config cfg, const float* lr, const std::int64_t* step, Buffers buf,
                              std::int64_t n, bool vec, GradClip clip) {
  const auto s = prepare(cfg, *lr, *step);
  const bool clipping = clip.sum_squares != nullptr;
  const float scale = optimizer_detail::grad_scale(clip);
  const std::int64_t tid = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  const std::int64_t quads = vec ? n / 4 : 0;
  for (std::int64_t q = tid; q < quads; q += stride) {
    float4 p = reinterpret_cast<const float4*>(buf.params)[q];
    float4 g = reinterpret_cast<const float4*>(buf.grads)[q];
    if (clipping) {
      g = make_float4(optimizer_detail::scale_grad(g.x, scale), optimizer_detail::scale_grad(g.y, scale),
                      optimizer_detail::scale_grad(g.z, scale), optimizer_detail::scale_grad(g.w, scale));
    }
    float4 a = buf.state0 ? reinterpret_cast<const float4*>(buf.state0)[q] : make_float4(0.f, 0.f, 0.f, 0.f);
    float4 b = buf.state1 ? reinterpret_cast<const float4*>(buf.state1)[q] : make_float4(0.f, 0.f, 0.f, 0.f);
    const uchar4 m = buf.mask ? reinterpret_cast<const uchar4*>(buf.mask)[q] : make_uchar4(1, 1, 1, 1);
    apply4(s, p, g, a, b, m);
    reinterpret_cast<float4*>(buf.params)[q] = p;
    if (buf.state0) reinterpret_cast<float4*>(buf.state0)[q] = a;
    if (buf.state1) reinterpret_cast<float4*>(buf.state1)[q] = b;
    if (buf.params_bf16) {
      reinterpret_cast<ushort4*>(buf.params_bf16)[q] =
          make_ushort4(bf16_bits_from_float(p.x), bf16_bits_from_float(p.y),
                       bf16_bits_from_float(p.z), bf16_bits_from_float(p.w));
    }
  }
  for (std::int64_t i = quads * 4 + tid; i < n; i += stride) {
    float p = buf.params[i];
    float a = buf.state0 ? buf.state0[i] : 0.f;
    float b = buf.state1 ? buf.state1[i] : 0.f;
    const float g = clipping ? optimizer_detail::scale_grad(buf.grads[i], scale) : buf.grads[i];
    apply(s, p, g, a, b, !buf.mask || buf.mask[i] != 0);
    buf.params[i] = p;
    if (buf.state0) buf.state0[i] = a;
    if (buf.state1) buf.state1[i] = b;
    if (buf.params_bf16) buf.params_bf16[i] = bf16_bits_from_float(p);
  }
}

bool aligned(const void* p, std::uintptr_t bytes) {
  return p == nullptr || reinterpret_cast<std::uintptr_t>(p) % bytes == 0;
}

template <typename Config>
void launch(const Config& cfg, const float* lr, const std::int64_t* step, const Buffers& b,
            std::int64_t n, const GradClip& clip, cudaStream_t stream) {
  const bool vec = aligned(b.params, 16) && aligned(b.grads, 16) && aligned(b.state0, 16) &&
                   aligned(b.state1, 16) && aligned(b.mask, 4) && aligned(b.params_bf16, 8);
  update_kernel<<<cuda_detail::grid_for(vec ? (n + 3) / 4 : n, kThreads), kThreads, 0, stream>>>(
      cfg, lr, step, b, n, vec, clip);
  KESTREL_CUDA_CHECK_LAUNCH();
}

__global__ void increment_step_kernel(std::int64_t* step) { *step += 1; }
}  // namespace

void sgd_update(float* params, const float* grads, float* momentum_buf, std::int64_t n,
                const SgdConfig& cfg, const float* lr, const std::int64_t* step,
                const std::uint8_t* decay_mask, std::uint16_t* params_bf16, cudaStream_t stream,
                const GradClip& clip) {
  validate(cfg);
  validate(clip);
  float* buf = cfg.momentum != 0.f ? momentum_buf : nullptr;
  optimizer_detail::check_update("sgd_update", n, params, grads, lr, step,
                                 {cfg.momentum != 0.f ? momentum_buf : params});
  if (n == 0) return;
  launch(cfg, lr, step, Buffers{params, grads, buf, nullptr, decay_mask, params_bf16}, n, clip, stream);
}

void adamw_update(float* params, const float* grads, float* exp_avg, float* exp_avg_sq,
                  std::int64_t n, const AdamWConfig& cfg, const float* lr, const std::int64_t* step,
                  const std::uint8_t* decay_mask, std::uint16_t* params_bf16, cudaStream_t stream,
                  const GradClip& clip) {
  validate(cfg);
  validate(clip);
  optimizer_detail::check_update("adamw_update", n, params, grads, lr, step, {exp_avg, exp_avg_sq});
  if (n == 0) return;
  launch(cfg, lr, step, Buffers{params, grads, exp_avg, exp_avg_sq, decay_mask, params_bf16},
         n, clip, stream);
}

void increment_step(std::int64_t* step, cudaStream_t stream) {
  KESTREL_CHECK(step != nullptr, "increment_step: null step pointer");
  increment_step_kernel<<<1, 1, 0, stream>>>(step);
  KESTREL_CUDA_CHECK_LAUNCH();
}

}  // namespace kestrel::cuda
