// Argument checks and workspace layout of batch normalisation, shared by the CUDA launchers and
// the CPU twins so both raise the same errors. Private header.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>

#include "kestrel/core/dtype.h"
#include "kestrel/core/error.h"
#include "kestrel/kernels/batchnorm_math.h"
#include "kestrel/kernels/element_io.h"

namespace kestrel::bn_detail {

// The dimensions and layout (what every entry point checks, the workspace size included).
inline void check_shape(const char* fn, const BatchNormDims& d) {
  KESTREL_CHECK(d.n > 0 && d.c > 0 && d.hw > 0, fn, ": dimensions must be positive, got n=", d.n,
                " c=", d.c, " hw=", d.hw);
  KESTREL_CHECK(d.layout == Layout::kNCHW || d.layout == Layout::kNHWC, fn, ": unknown layout ",
                static_cast<int>(d.layout));
  constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max() / 16;
  KESTREL_CHECK(d.n <= kMax / d.c / d.hw, fn, ": tensor too large (n=", d.n, " c=", d.c,
                " hw=", d.hw, ")");
}

// check_shape and the storage dtype (every entry point that touches a tensor).
inline void check_dims(const char* fn, const BatchNormDims& d, DType dtype) {
  check_shape(fn, d);
  element_io::check_float_or_bf16(dtype, fn);
}

// The two forwards, which take eps.
inline void check_eps(const char* fn, float eps) {
  KESTREL_CHECK(eps > 0.f && std::isfinite(eps), fn, ": eps must be positive and finite, got ",
                eps);
}

inline void check_activation(const char* fn, BnActivation act, const void* residual,
                             const char* residual_name) {
  KESTREL_CHECK(act == BnActivation::kNone || act == BnActivation::kRelu ||
                    act == BnActivation::kAddRelu,
                fn, ": unknown activation ", static_cast<int>(act));
  KESTREL_CHECK((residual != nullptr) == (act == BnActivation::kAddRelu), fn, ": ", residual_name,
                residual != nullptr ? " must be null unless act is kAddRelu"
                                    : " is required when act is kAddRelu");
}

inline void check_training_forward(const void* x, const void* residual, const void* y,
                                   DType dtype, const BatchNormDims& d, float eps, float momentum,
                                   const float* running_mean, const float* running_var,
                                   const float* save_mean, const float* save_invstd,
                                   BnActivation act) {
  const char* fn = "batchnorm_forward_training";
  check_dims(fn, d, dtype);
  check_eps(fn, eps);
  check_activation(fn, act, residual, "residual");
  KESTREL_CHECK(momentum >= 0.f && momentum <= 1.f, fn, ": momentum must be in [0, 1], got ",
                momentum);
  KESTREL_CHECK(d.n * d.hw > 1, fn, ": Expected more than 1 value per channel when training, "
                "got n=", d.n, " hw=", d.hw);
  KESTREL_CHECK(x != nullptr && y != nullptr, fn, ": x and y are required");
  element_io::check_elements_aligned(fn, dtype, {x, residual, y});
  KESTREL_CHECK(save_mean != nullptr && save_invstd != nullptr, fn,
                ": save_mean and save_invstd are required");
  KESTREL_CHECK((running_mean == nullptr) == (running_var == nullptr), fn,
                ": running_mean and running_var must both be set or both be null");
}

inline void check_inference_forward(const void* x, const void* residual, const void* y,
                                    DType dtype, const BatchNormDims& d, const float* running_mean,
                                    const float* running_var, float eps, BnActivation act) {
  const char* fn = "batchnorm_forward_inference";
  check_dims(fn, d, dtype);
  check_eps(fn, eps);
  check_activation(fn, act, residual, "residual");
  KESTREL_CHECK(x != nullptr && y != nullptr, fn, ": x and y are required");
  element_io::check_elements_aligned(fn, dtype, {x, residual, y});
  KESTREL_CHECK(running_mean != nullptr && running_var != nullptr, fn,
                ": running_mean and running_var are required");
}

// The normalise pass alone, with statistics a training forward saved (recomputation for backward).
inline void check_apply(const void* x, const void* residual, const void* y, DType dtype,
                        const BatchNormDims& d, const float* save_mean, const float* save_invstd,
                        BnActivation act) {
  const char* fn = "batchnorm_forward_apply";
  check_dims(fn, d, dtype);
  check_activation(fn, act, residual, "residual");
  KESTREL_CHECK(x != nullptr && y != nullptr, fn, ": x and y are required");
  element_io::check_elements_aligned(fn, dtype, {x, residual, y});
  KESTREL_CHECK(save_mean != nullptr && save_invstd != nullptr, fn,
                ": save_mean and save_invstd are required");
}

inline void check_backward(const void* dy, const void* x, const void* y, DType dtype,
                           const BatchNormDims& d, const float* save_mean,
                           const float* save_invstd, const void* dx, const void* dresidual,
                           BnActivation act) {
  const char* fn = "batchnorm_backward";
  check_dims(fn, d, dtype);
  check_activation(fn, act, dresidual, "dresidual");
  KESTREL_CHECK(dy != nullptr && x != nullptr && dx != nullptr, fn, ": dy, x and dx are required");
  KESTREL_CHECK(y != nullptr || act == BnActivation::kNone, fn,
                ": y (the forward output) is required for the ReLU variants");
  element_io::check_elements_aligned(fn, dtype, {dy, x, y, dx, dresidual});
  KESTREL_CHECK(save_mean != nullptr && save_invstd != nullptr, fn,
                ": save_mean and save_invstd are required");
}

// Workspace: partial statistics [c][parts] (Welford in forward, GradSums in backward), then the
// per-channel sums of backward [c] at a 256-byte boundary.
struct WorkspaceLayout {
  std::size_t sums_offset, bytes;
};

inline WorkspaceLayout workspace_layout(const BatchNormDims& d) {
  constexpr std::size_t kPartial = sizeof(Welford) > sizeof(GradSums) ? sizeof(Welford)
                                                                       : sizeof(GradSums);
  const std::size_t partials = static_cast<std::size_t>(d.c * bn_parts(d)) * kPartial;
  const std::size_t sums_offset = (partials + 255) / 256 * 256;
  return {sums_offset, sums_offset + static_cast<std::size_t>(d.c) * sizeof(GradSums)};
}

}  // namespace kestrel::bn_detail
