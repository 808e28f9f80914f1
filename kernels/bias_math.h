// Shared pieces of the bias family (kernels/bias.cu and kernels/cpu/bias.cpp).
#pragma once

#include <cstdint>
#include <limits>

#include "kestrel/core/error.h"
#include "kestrel/core/hd.h"
#include "kestrel/core/layout.h"
#include "kestrel/kernels/element_io.h"

namespace kestrel::bias_detail {

// Channel of flat element i of a tensor whose channel index changes every `inner` elements and
// wraps after c channels: NCHW has inner = H*W, NHWC and row-major [rows, cols] have inner = 1.
KESTREL_HD std::int64_t channel_of(std::int64_t i, std::int64_t c, std::int64_t inner) {
  return (i / inner) % c;
}

// y + b in fp32: the one rounding both twins perform before storing.
KESTREL_HD float add_bias(float y, float b) { return y + b; }

inline std::int64_t inner_of(Layout layout, std::int64_t hw) {
  return layout == Layout::kNCHW ? hw : 1;
}

// Host: dtype fp32 or bf16, sizes non-negative and n*c*hw representable; pointers present when
// there is data, and `data` aligned to an element of `dtype`.
inline void check_args(const char* what, DType dtype, std::int64_t n, std::int64_t c, std::int64_t hw,
                       const void* data, const void* bias) {
  element_io::check_float_or_bf16(dtype, what);
  KESTREL_CHECK(n >= 0 && c >= 0 && hw >= 0, what, ": sizes must be >= 0, got n=", n, " c=", c,
                " hw=", hw);
  const std::int64_t max = std::numeric_limits<std::int64_t>::max() / 16;
  KESTREL_CHECK(c == 0 || hw == 0 || n <= max / c / hw, what, ": n*c*hw overflows (n=", n,
                " c=", c, " hw=", hw, ")");
  if (c == 0) return;
  KESTREL_CHECK(bias != nullptr, what, ": bias is a null pointer");
  KESTREL_CHECK(n * hw == 0 || data != nullptr, what, ": data is a null pointer");
  element_io::check_element_aligned(what, data, dtype);
}

}  // namespace kestrel::bias_detail
