// CPU twins of kernels/pooling.h: same arguments, no stream; host pointers. Global average
// pooling sums in double.
#pragma once

#include <cstdint>

#include "kestrel/core/dtype.h"
#include "kestrel/core/layout.h"

namespace kestrel::cpu {
void global_avg_pool_forward(const void* x, void* y, DType dtype, std::int64_t n, std::int64_t c,
                             std::int64_t hw, Layout layout);
void global_avg_pool_backward(const void* dy, void* dx, DType dtype, std::int64_t n,
                              std::int64_t c, std::int64_t hw, Layout layout);
void max_pool2x2_forward(const void* x, void* y, DType dtype, std::int64_t n, std::int64_t c,
                         std::int64_t h, std::int64_t w, Layout layout);
void max_pool2x2_backward(const void* dy, const void* x, void* dx, DType dtype, std::int64_t n,
                          std::int64_t c, std::int64_t h, std::int64_t w, Layout layout);
}  // namespace kestrel::cpu
