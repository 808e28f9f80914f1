// Batch-normalisation forward on the GPU (kernels/batchnorm.h): training = partial statistics,
// per-channel combine, normalise; inference = normalise with the running statistics.
#include "kestrel/kernels/batchnorm.h"
#include "kestrel/kernels/batchnorm_check_internal.h"
#include "kestrel/kernels/batchnorm_internal.cuh"
#include "kestrel/kernels/launch_internal.cuh"

namespace kestrel::cuda_detail::bn {
namespace {

// Blocks of 256 an SM the forward ops' launch bounds ask for: 3 caps registers at 80, so 768
// threads keep loads in flight where 2 blocks (the 82 registers nvcc chose for the fp32
// normalise pass) left 512; no spills at sm_90.
constexpr int kForwardMinBlocks = 3;

struct ForwardArgs {
  const void* x;
  const void* residual;
  void* y;
  const float* gamma;
  const float* beta;
  const float* mean;    // save_mean (training) or running_mean (inference)
  const float* spread;  // save_invstd (training) or running_var (inference)
  float eps;
  bool spread_is_var;
  BnActivation act;
};

// Per-thread shifted sums of x, one set per lane's channel.
template <class C>
struct StatsOp {
  using S = typename C::Storage;
  using Args = ForwardArgs;
  using Partial = Welford;
  using Regs = Pack<S, C::kV>;
  static constexpr int kV = C::kV;
  static constexpr bool kChannelsLast = C::kChannelsLast;
  // A load here is one packed vector (4 registers in either dtype) and the statistics are a few
  // registers a lane, so this pass batches 4 vectors even where the elementwise passes, which
  // hold two or three unpacked vectors a load, batch 2 (Cfg::kUnroll): 64 bytes in flight a
  // thread in bf16 too. 60 -> 77 registers for bf16 channels-last at sm_90 (cap 80), no spills.
  static constexpr int kUnroll = 4;
  static constexpr int kMinBlocks = kForwardMinBlocks;

  const S* x;
  bn_detail::ShiftedSums acc[C::kLanes];
  float n = 0.f;  // values per lane so far

  __device__ StatsOp(const Args& a, std::int64_t) : x(static_cast<const S*>(a.x)) {
#pragma unroll
    for (int j = 0; j < C::kLanes; ++j) acc[j] = {0.f, 0.f, 0.f};
  }
  __device__ Regs load(std::int64_t off) const { return load_pack<S, kV>(x, off); }
  __device__ void consume(const Regs& r, std::int64_t) {
    if (n == 0.f) {
#pragma unroll
      for (int j = 0; j < C::kLanes; ++j) acc[j].shift = as_float(r.v[j]);
    }
#pragma unroll
    for (int j = 0; j < kV; ++j) bn_detail::shifted_add(acc[C::lane(j)], as_float(r.v[j]));
    n += kChannelsLast ? 1.f : static_cast<float>(kV);
  }
  __device__ Welford partial(int lane) const { return bn_detail::shifted_to_welford(acc[lane], n); }
};

// y = act((x - mean) * scale + shift [+ residual]).
template <class C>
struct ForwardOp {
  using S = typename C::Storage;
  using Args = ForwardArgs;
  struct Regs {
    Pack<S, C::kV> x, r;
  };
  static constexpr int kV = C::kV;
  static constexpr bool kChannelsLast = C::kChannelsLast;
  static constexpr int kUnroll = C::kUnroll;
  static constexpr int kMinBlocks = kForwardMinBlocks;

  const S* x;
  const S* residual;
  S* y;
  BnActivation act;
  bn_detail::BnAffine affine[C::kLanes];

  __device__ ForwardOp(const Args& a, std::int64_t ch0)
      : x(static_cast<const S*>(a.x)), residual(static_cast<const S*>(a.residual)),
        y(static_cast<S*>(a.y)), act(a.act) {
#pragma unroll
    for (int j = 0; j < C::kLanes; ++j) {
      const std::int64_t ch = ch0 + j;
      const float invstd = a.spread_is_var ? bn_detail::bn_invstd(a.spread[ch], a.eps) : a.spread[ch];
      affine[j] = bn_detail::bn_affine(a.mean[ch], invstd, a.gamma, a.beta, ch);
    }
  }
  __device__ Regs load(std::int64_t off) const {
    Regs r;
    r.x = load_pack<S, kV>(x, off);
    if (act == BnActivation::kAddRelu) {
      r.r = load_pack<S, kV>(residual, off);
    } else {
#pragma unroll
      for (int j = 0; j < kV; ++j) r.r.v[j] = from_float<S>(0.f);
    }
    return r;
  }
  __device__ void consume(const Regs& r, std::int64_t off) const {
    Pack<S, kV> out;
#pragma unroll
    for (int j = 0; j < kV; ++j)
      out.v[j] = from_float<S>(bn_detail::bn_forward_element(as_float(r.x.v[j]), as_float(r.r.v[j]),
                                                             affine[C::lane(j)], act));
    store_pack<S, kV>(y, off, out);
  }
};

}  // namespace
}  // namespace kestrel::cuda_detail::bn

namespace kestrel::cuda {

using cuda_detail::bn::ForwardArgs;

void batchnorm_forward_training(const void* x, const void* residual, void* y, DType dtype,
                                const BatchNormDims& d, const float* gamma, const float* beta,
                                float eps, float momentum, float* running_mean, float* running_var,
                                float* save_mean, float* save_invstd, BnActivation act,
                                void* workspace, cudaStream_t stream) {
  namespace bn = cuda_detail::bn;
  bn_detail::check_training_forward(x, residual, y, dtype, d, eps, momentum, running_mean,
                                    running_var, save_mean, save_invstd, act);
  cuda_detail::check_workspace(workspace, "batchnorm_forward_training", "batchnorm_workspace_bytes");
  const bn_detail::BnGeometry g = bn::launch_geometry(dtype, d, {x, residual, y});
  auto* part = static_cast<bn_detail::Welford*>(workspace);
  const ForwardArgs args{x, residual, y, gamma, beta, save_mean, save_invstd, eps, false, act};
  const float m = static_cast<float>(d.n * d.hw);
  bn::dispatch(dtype, g, [&](auto cfg) {
    using C = decltype(cfg);
    bn::launch_reduce<bn::StatsOp<C>>(g, args, part, stream);
    bn::launch_finalize_stats(g, part, m, eps, momentum, save_mean, save_invstd, running_mean,
                              running_var, stream);
    bn::launch_apply<bn::ForwardOp<C>>(g, args, stream);
  });
}

void batchnorm_forward_inference(const void* x, const void* residual, void* y, DType dtype,
                                 const BatchNormDims& d, const float* gamma, const float* beta,
                                 const float* running_mean, const float* running_var, float eps,
                                 BnActivation act, cudaStream_t stream) {
  namespace bn = cuda_detail::bn;
  bn_detail::check_inference_forward(x, residual, y, dtype, d, running_mean, running_var, eps,
                                     act);
  const bn_detail::BnGeometry g = bn::launch_geometry(dtype, d, {x, residual, y});
  const ForwardArgs args{x, residual, y, gamma, beta, running_mean, running_var, eps, true, act};
  bn::dispatch(dtype, g, [&](auto cfg) {
    using C = decltype(cfg);
    bn::launch_apply<bn::ForwardOp<C>>(g, args, stream);
  });
}

void batchnorm_forward_apply(const void* x, const void* residual, void* y, DType dtype,
                             const BatchNormDims& d, const float* gamma, const float* beta,
                             const float* save_mean, const float* save_invstd, BnActivation act,
                             cudaStream_t stream) {
  namespace bn = cuda_detail::bn;
  bn_detail::check_apply(x, residual, y, dtype, d, save_mean, save_invstd, act);
  const bn_detail::BnGeometry g = bn::launch_geometry(dtype, d, {x, residual, y});
  // The same arguments as the normalise pass of batchnorm_forward_training (eps is unused when
  // the spread is an inverse standard deviation).
  const ForwardArgs args{x, residual, y, gamma, beta, save_mean, save_invstd, 1.f, false, act};
  bn::dispatch(dtype, g, [&](auto cfg) {
    using C = decltype(cfg);
    bn::launch_apply<bn::ForwardOp<C>>(g, args, stream);
  });
}

}  // namespace kestrel::cuda
