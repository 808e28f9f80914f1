// Index maps of the layout conversions, shared by both twins.
#pragma once

#include <cstdint>

#include "kestrel/core/error.h"
#include "kestrel/core/hd.h"

namespace kestrel::layout_detail {
// Physical NHWC index of the element whose NCHW index is i.
KESTREL_HD std::int64_t nhwc_index_of_nchw(std::int64_t i, std::int64_t c, std::int64_t hw) {
  const std::int64_t s = i % hw;
  const std::int64_t ch = (i / hw) % c;
  const std::int64_t b = i / (hw * c);
  return (b * hw + s) * c + ch;
}

inline void check_dims(std::int64_t n, std::int64_t c, std::int64_t h, std::int64_t w) {
  KESTREL_CHECK(n >= 0 && c >= 0 && h >= 0 && w >= 0, "layout conversion: negative dimension in [",
                n, ", ", c, ", ", h, ", ", w, "]");
}
}  // namespace kestrel::layout_detail
