#include "kestrel/kernels/cpu/batchnorm.h"

#include <vector>

#include "kestrel/kernels/batchnorm_check_internal.h"
#include "kestrel/kernels/batchnorm_math.h"
#include "kestrel/kernels/element_io.h"

namespace kestrel::cpu {
namespace {
using namespace bn_detail;

// Element offset of (sample ni, channel ch, position p) in d.layout: positions as one row of hw.
std::int64_t offset_of(const BatchNormDims& d, std::int64_t ni, std::int64_t ch, std::int64_t p) {
  return element_io::offset4(d.layout, ni, ch, 0, p, d.c, 1, d.hw);
}

// Calls fn(offset) for every element of channel ch, in (ni, p) order.
template <typename Fn>
void for_channel(const BatchNormDims& d, std::int64_t ch, Fn&& fn) {
  for (std::int64_t ni = 0; ni < d.n; ++ni)
    for (std::int64_t p = 0; p < d.hw; ++p) fn(offset_of(d, ni, ch, p));
}

Welford channel_stats(const void* x, DType dtype, const BatchNormDims& d, std::int64_t ch) {
  RunStats stats;
  for_channel(d, ch, [&](std::int64_t off) { stats.add(element_io::load_float(x, dtype, off)); });
  return stats.result();
}

// y = act(affine(x) [+ residual]) for every element, with per-channel affines.
void apply_forward(const void* x, const void* residual, void* y, DType dtype,
                   const BatchNormDims& d, const std::vector<BnAffine>& affine, BnActivation act) {
  for (std::int64_t ch = 0; ch < d.c; ++ch) {
    for_channel(d, ch, [&](std::int64_t off) {
      const float r = residual != nullptr ? element_io::load_float(residual, dtype, off) : 0.f;
      element_io::store_float(y, dtype, off,
                            bn_forward_element(element_io::load_float(x, dtype, off), r, affine[ch], act));
    });
  }
}
}  // namespace

std::size_t batchnorm_workspace_bytes(const BatchNormDims& d) {
  check_shape("batchnorm_workspace_bytes", d);
  return 0;
}

void batchnorm_forward_training(const void* x, const void* residual, void* y, DType dtype,
                                const BatchNormDims& d, const float* gamma, const float* beta,
                                float eps, float momentum, float* running_mean, float* running_var,
                                float* save_mean, float* save_invstd, BnActivation act,
                                void* /*workspace*/) {
  check_training_forward(x, residual, y, dtype, d, eps, momentum, running_mean, running_var,
                         save_mean, save_invstd, act);
  const float m = static_cast<float>(d.n * d.hw);
  std::vector<BnAffine> affine(static_cast<std::size_t>(d.c));
  for (std::int64_t ch = 0; ch < d.c; ++ch) {
    bn_finalize_channel(channel_stats(x, dtype, d, ch), m, eps, momentum, save_mean, save_invstd,
                        running_mean, running_var, ch);
    affine[ch] = bn_affine(save_mean[ch], save_invstd[ch], gamma, beta, ch);
  }
  apply_forward(x, residual, y, dtype, d, affine, act);
}

void batchnorm_forward_inference(const void* x, const void* residual, void* y, DType dtype,
                                 const BatchNormDims& d, const float* gamma, const float* beta,
                                 const float* running_mean, const float* running_var, float eps,
                                 BnActivation act) {
  check_inference_forward(x, residual, y, dtype, d, running_mean, running_var, eps, act);
  std::vector<BnAffine> affine(static_cast<std::size_t>(d.c));
  for (std::int64_t ch = 0; ch < d.c; ++ch)
    affine[ch] = bn_affine(running_mean[ch], bn_invstd(running_var[ch], eps), gamma, beta, ch);
  apply_forward(x, residual, y, dtype, d, affine, act);
}

void batchnorm_forward_apply(const void* x, const void* residual, void* y, DType dtype,
                             const BatchNormDims& d, const float* gamma, const float* beta,
                             const float* save_mean, const float* save_invstd, BnActivation act) {
  check_apply(x, residual, y, dtype, d, save_mean, save_invstd, act);
  std::vector<BnAffine> affine(static_cast<std::size_t>(d.c));
  for (std::int64_t ch = 0; ch < d.c; ++ch)
    affine[ch] = bn_affine(save_mean[ch], save_invstd[ch], gamma, beta, ch);
  apply_forward(x, residual, y, dtype, d, affine, act);
}

void batchnorm_backward(const void* dy, const void* x, const void* y, DType dtype,
                        const BatchNormDims& d, const float* gamma, const float* save_mean,
                        const float* save_invstd, void* dx, void* dresidual, float* dgamma,
                        float* dbeta, BnActivation act, void* /*workspace*/) {
  check_backward(dy, x, y, dtype, d, save_mean, save_invstd, dx, dresidual, act);
  const float m = static_cast<float>(d.n * d.hw);
  auto masked = [&](std::int64_t off) {
    const float yv = y != nullptr ? element_io::load_float(y, dtype, off) : 0.f;
    return bn_masked_grad(element_io::load_float(dy, dtype, off), yv, act);
  };
  for (std::int64_t ch = 0; ch < d.c; ++ch) {
    // Sums in runs, like the GPU's per-thread partials, merged pairwise as its reductions are, so
    // neither twin sums 10^6 terms serially.
    RunSums<GradSums> sums(GradSums{0.f, 0.f}, grad_sums_combine);
    for_channel(d, ch, [&](std::int64_t off) {
      sums.add([&](GradSums& run) {
        grad_sums_add(run, masked(off), element_io::load_float(x, dtype, off), save_mean[ch]);
      });
    });
    const GradSums total = sums.result();
    const float dgamma_c = total.gd * save_invstd[ch];
    if (dbeta != nullptr) dbeta[ch] = total.g;
    if (dgamma != nullptr) dgamma[ch] = dgamma_c;
    const BnBackwardCoeffs k =
        bn_backward_coeffs(save_mean[ch], save_invstd[ch], gamma, ch, total.g, dgamma_c, m);
    for_channel(d, ch, [&](std::int64_t off) {
      const float g = masked(off);  // read every input of this element before writing
      const float v = bn_backward_element(g, element_io::load_float(x, dtype, off), k);
      element_io::store_float(dx, dtype, off, v);
      if (dresidual != nullptr) element_io::store_float(dresidual, dtype, off, g);
    });
  }
}

}  // namespace kestrel::cpu
