// Types shared by the batch-normalisation launchers (kernels/batchnorm.h) and their CPU twins
// (kernels/cpu/batchnorm.h).
#pragma once

#include <cstdint>

#include "kestrel/core/layout.h"

namespace kestrel {

// The activation fused after the normalisation: y = act(bn(x) [+ residual]).
//   kNone     y = bn(x)
//   kRelu     y = relu(bn(x))
//   kAddRelu  y = relu(bn(x) + residual)
// relu keeps NaN (as PyTorch does); backward takes the ReLU mask from the output: the gradient is
// 0 where y <= 0 and passes elsewhere (a NaN y included, as PyTorch's threshold_backward).
enum class BnActivation : std::uint8_t { kNone, kRelu, kAddRelu };

// x is logically [n, c, h, w] with hw = h * w, stored densely in `layout` (kNCHW or kNHWC).
struct BatchNormDims {
  std::int64_t n, c, hw;
  Layout layout;
};

}  // namespace kestrel
