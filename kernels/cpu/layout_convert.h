// CPU twins of kernels/layout_convert.h (the same checks and errors).
#pragma once

#include <cstdint>

#include "kestrel/core/dtype.h"

namespace kestrel::cpu {
void nchw_to_nhwc(const void* x, void* y, DType dtype, std::int64_t n, std::int64_t c,
                  std::int64_t h, std::int64_t w);
void nhwc_to_nchw(const void* x, void* y, DType dtype, std::int64_t n, std::int64_t c,
                  std::int64_t h, std::int64_t w);
}  // namespace kestrel::cpu
