// Index maps of the layout conversions, shared by both twins.
#pragma once

#include <cstdint>

#include "kestrel/core/dtype.h"
#include "kestrel/core/error.h"
#include "kestrel/core/hd.h"
#include "kestrel/kernels/element_io.h"

namespace kestrel::layout_detail {
// Physical NHWC index of the element whose NCHW index is i.
KESTREL_HD std::int64_t nhwc_index_of_nchw(std::int64_t i, std::int64_t c, std::int64_t hw) {
  const std::int64_t s = i % hw;
  const std::int64_t ch = (i / hw) % c;
  const std::int64_t b = i / (hw * c);
  return (b * hw + s) * c + ch;
}

// The arguments of a conversion: no negative dimension, and for a non-empty tensor both
// pointers set and the two buffers apart (a permutation cannot run in place: on the GPU one
// thread's write lands where another has still to read).
inline void check_args(const void* x, const void* y, DType dtype, std::int64_t n, std::int64_t c, std::int64_t h,
                       std::int64_t w) {
  KESTREL_CHECK(n >= 0 && c >= 0 && h >= 0 && w >= 0, "layout conversion: negative dimension in [",
                n, ", ", c, ", ", h, ", ", w, "]");
  const std::int64_t total = n * c * h * w;
  if (total == 0) return;
  KESTREL_CHECK(x != nullptr && y != nullptr, "layout conversion: null data pointer");
  element_io::check_elements_aligned("layout conversion", dtype, {x, y});
  const auto bytes = static_cast<std::size_t>(total) * dtype_size(dtype);
  KESTREL_CHECK(!element_io::ranges_overlap(x, bytes, y, bytes), "layout conversion: source (", x,
                ") and destination (", y, ") overlap; it cannot run in place");
}
}  // namespace kestrel::layout_detail
