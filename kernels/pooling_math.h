// Element formulas of global average pooling and 2x2 max pooling, shared by kernels/pooling.cu
// and kernels/cpu/pooling.cpp. Tensors are [N, C, H, W] logically, stored in `layout`; global
// average pooling sees the spatial dims as one of size hw (H = hw, W = 1 in offset4).
#pragma once

#include <cstdint>
#include <initializer_list>

#include "kestrel/core/dtype.h"
#include "kestrel/core/error.h"
#include "kestrel/core/hd.h"
#include "kestrel/core/layout.h"
#include "kestrel/kernels/element_io.h"

namespace kestrel::pooling_detail {

// dx at input element i (physical order) of global average pooling: dy[n, c] / hw.
KESTREL_HD float avg_pool_dx(const void* dy, DType dtype, Layout layout, std::int64_t i,
                             std::int64_t c, std::int64_t hw) {
  const element_io::Index4 at = element_io::coords4(layout, i, c, hw, 1);
  return element_io::load_float(dy, dtype, at.n * c + at.c) / static_cast<float>(hw);
}

// The 2x2 window of output (oy, ox): window position q = 2 * dy + dx (row-major) of its maximum
// (first one on ties; a NaN beats every number, so it propagates, and each later NaN replaces an
// earlier one: PyTorch's `val > max || isnan(val)`, so the gradient goes to the last NaN) and the
// value there.
struct WindowMax {
  int q;
  float value;
};

KESTREL_HD WindowMax window_max(const void* x, DType dtype, Layout layout, std::int64_t n,
                                std::int64_t c, std::int64_t oy, std::int64_t ox, std::int64_t C,
                                std::int64_t H, std::int64_t W) {
  WindowMax best{0, element_io::load_float(x, dtype, element_io::offset4(layout, n, c, 2 * oy, 2 * ox, C, H, W))};
  for (int q = 1; q < 4; ++q) {
    const float v = element_io::load_float(
        x, dtype, element_io::offset4(layout, n, c, 2 * oy + q / 2, 2 * ox + q % 2, C, H, W));
    if (v > best.value || v != v) best = WindowMax{q, v};
  }
  return best;
}

// y at output element o (physical order of the [N, C, H/2, W/2] output).
KESTREL_HD float max_pool_y(const void* x, DType dtype, Layout layout, std::int64_t o,
                            std::int64_t C, std::int64_t H, std::int64_t W) {
  const element_io::Index4 at = element_io::coords4(layout, o, C, H / 2, W / 2);
  return window_max(x, dtype, layout, at.n, at.c, at.y, at.x, C, H, W).value;
}

// dx at input element i (physical order): dy of its window if it is the window's maximum, else 0
// (also 0 in the last row/column that an odd H/W leaves outside every window).
KESTREL_HD float max_pool_dx(const void* dy, const void* x, DType dtype, Layout layout,
                             std::int64_t i, std::int64_t C, std::int64_t H, std::int64_t W) {
  const element_io::Index4 at = element_io::coords4(layout, i, C, H, W);
  const std::int64_t oy = at.y / 2, ox = at.x / 2, OH = H / 2, OW = W / 2;
  if (oy >= OH || ox >= OW) return 0.f;
  const int q = window_max(x, dtype, layout, at.n, at.c, oy, ox, C, H, W).q;
  if (q != static_cast<int>((at.y % 2) * 2 + at.x % 2)) return 0.f;
  return element_io::load_float(dy, dtype, element_io::offset4(layout, at.n, at.c, oy, ox, C, OH, OW));
}

// Host-side argument checks shared by both twins: the dtype and sizes, then the data pointers
// (present and aligned to an element of `dtype`) when the call touches any element.
inline void check_pool(const char* op, DType dtype, std::int64_t n, std::int64_t c, std::int64_t h,
                       std::int64_t w, std::initializer_list<const void*> data) {
  element_io::check_storage_dtype(dtype, op);
  KESTREL_CHECK(n >= 0 && c >= 0 && h >= 0 && w >= 0, op, ": negative size in [", n, ", ", c, ", ",
                h, ", ", w, "]");
  element_io::check_buffers(op, n * c * h * w, dtype, data);
}

inline void check_global_pool(const char* op, DType dtype, std::int64_t n, std::int64_t c,
                              std::int64_t hw, std::initializer_list<const void*> data) {
  check_pool(op, dtype, n, c, hw, 1, data);
  KESTREL_CHECK(hw >= 1, op, ": the spatial size hw must be >= 1, got ", hw);
}

}  // namespace kestrel::pooling_detail
