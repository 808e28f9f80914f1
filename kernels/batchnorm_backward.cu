// Batch-normalisation backward on the GPU (kernels/batchnorm.h): partial sums of g and
// g * (x - mean), per-channel combine into dbeta / dgamma, then dx (and dresidual).
#include "kestrel/kernels/batchnorm.h"
#include "kestrel/kernels/batchnorm_check_internal.h"
#include "kestrel/kernels/batchnorm_internal.cuh"
#include "kestrel/kernels/launch_internal.cuh"

namespace kestrel::cuda_detail::bn {
namespace {

// Blocks of 256 an SM the backward ops' launch bounds ask for: they need up to 110 registers,
// and a cap of 80 (3 blocks) spills.
constexpr int kBackwardMinBlocks = 2;

struct BackwardArgs {
  const void* dy;
  const void* x;
  const void* y;
  void* dx;
  void* dresidual;
  const float* gamma;
  const float* mean;
  const float* invstd;
  const GradSums* sums;  // per channel {dbeta, dgamma}, from the combine kernel
  float m;
  BnActivation act;
};

// Loads dy, x and (for the ReLU variants) y.
template <class C>
struct GradLoads {
  using S = typename C::Storage;
  struct Regs {
    Pack<S, C::kV> dy, x, y;
  };
  const S* dy;
  const S* x;
  const S* y;
  BnActivation act;

  __device__ explicit GradLoads(const BackwardArgs& a)
      : dy(static_cast<const S*>(a.dy)), x(static_cast<const S*>(a.x)),
        y(static_cast<const S*>(a.y)), act(a.act) {}
  __device__ Regs load(std::int64_t off) const {
    Regs r;
    r.dy = load_pack<S, C::kV>(dy, off);
    r.x = load_pack<S, C::kV>(x, off);
    if (act != BnActivation::kNone) {
      r.y = load_pack<S, C::kV>(y, off);
    } else {
#pragma unroll
      for (int j = 0; j < C::kV; ++j) r.y.v[j] = from_float<S>(0.f);
    }
    return r;
  }
  __device__ float grad(const Regs& r, int j) const {
    return bn_detail::bn_masked_grad(as_float(r.dy.v[j]), as_float(r.y.v[j]), act);
  }
};

// Per-thread sums of g and g * (x - mean), one pair per lane's channel.
template <class C>
struct GradSumsOp : GradLoads<C> {
  using Args = BackwardArgs;
  using Partial = GradSums;
  using typename GradLoads<C>::Regs;
  static constexpr int kV = C::kV;
  static constexpr bool kChannelsLast = C::kChannelsLast;
  static constexpr int kUnroll = C::kUnroll;
  static constexpr int kMinBlocks = kBackwardMinBlocks;

  float mean[C::kLanes];
  GradSums acc[C::kLanes];

  __device__ GradSumsOp(const Args& a, std::int64_t ch0) : GradLoads<C>(a) {
#pragma unroll
    for (int j = 0; j < C::kLanes; ++j) {
      mean[j] = a.mean[ch0 + j];
      acc[j] = {0.f, 0.f};
    }
  }
  __device__ void consume(const Regs& r, std::int64_t) {
#pragma unroll
    for (int j = 0; j < kV; ++j)
      bn_detail::grad_sums_add(acc[C::lane(j)], this->grad(r, j), as_float(r.x.v[j]),
                               mean[C::lane(j)]);
  }
  __device__ GradSums partial(int lane) const { return acc[lane]; }
};

// dx = a*g + k*(x - mean) + b; dresidual = g.
template <class C>
struct BackwardOp : GradLoads<C> {
  using S = typename C::Storage;
  using Args = BackwardArgs;
  using typename GradLoads<C>::Regs;
  static constexpr int kV = C::kV;
  static constexpr bool kChannelsLast = C::kChannelsLast;
  static constexpr int kUnroll = C::kUnroll;
  static constexpr int kMinBlocks = kBackwardMinBlocks;

  S* dx;
  S* dresidual;
  bn_detail::BnBackwardCoeffs coeffs[C::kLanes];

  __device__ BackwardOp(const Args& a, std::int64_t ch0)
      : GradLoads<C>(a), dx(static_cast<S*>(a.dx)), dresidual(static_cast<S*>(a.dresidual)) {
#pragma unroll
    for (int j = 0; j < C::kLanes; ++j) {
      const std::int64_t ch = ch0 + j;
      const GradSums s = a.sums[ch];
      coeffs[j] = bn_detail::bn_backward_coeffs(a.mean[ch], a.invstd[ch], a.gamma, ch, s.g, s.gd,
                                                a.m);
    }
  }
  __device__ void consume(const Regs& r, std::int64_t off) const {
    Pack<S, kV> out, gout;
#pragma unroll
    for (int j = 0; j < kV; ++j) {
      const float g = this->grad(r, j);
      out.v[j] = from_float<S>(bn_detail::bn_backward_element(g, as_float(r.x.v[j]),
                                                              coeffs[C::lane(j)]));
      gout.v[j] = from_float<S>(g);
    }
    store_pack<S, kV>(dx, off, out);
    if (this->act == BnActivation::kAddRelu) store_pack<S, kV>(dresidual, off, gout);
  }
};

}  // namespace
}  // namespace kestrel::cuda_detail::bn

namespace kestrel::cuda {

void batchnorm_backward(const void* dy, const void* x, const void* y, DType dtype,
                        const BatchNormDims& d, const float* gamma, const float* save_mean,
                        const float* save_invstd, void* dx, void* dresidual, float* dgamma,
                        float* dbeta, BnActivation act, void* workspace, cudaStream_t stream) {
  namespace bn = cuda_detail::bn;
  bn_detail::check_backward(dy, x, y, dtype, d, save_mean, save_invstd, dx, dresidual, act);
  cuda_detail::check_workspace(workspace, "batchnorm_backward", "batchnorm_workspace_bytes");
  const bn_detail::BnGeometry g = bn::launch_geometry(dtype, d, {dy, x, y, dx, dresidual});
  auto* part = static_cast<bn_detail::GradSums*>(workspace);
  auto* sums = reinterpret_cast<bn_detail::GradSums*>(static_cast<unsigned char*>(workspace) +
                                                      bn_detail::workspace_layout(d).sums_offset);
  const bn::BackwardArgs args{dy,        x,           y,    dx,   dresidual, gamma,
                              save_mean, save_invstd, sums, static_cast<float>(d.n * d.hw), act};
  bn::dispatch(dtype, g, [&](auto cfg) {
    using C = decltype(cfg);
    bn::launch_reduce<bn::GradSumsOp<C>>(g, args, part, stream);
    bn::launch_finalize_grads(g, part, save_invstd, sums, dgamma, dbeta, stream);
    bn::launch_apply<bn::BackwardOp<C>>(g, args, stream);
  });
}

}  // namespace kestrel::cuda
