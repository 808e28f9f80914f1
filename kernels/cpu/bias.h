// CPU twins of kernels/bias.h: the same contracts; adds in fp32 exactly as the GPU does, sums in
// double (rounded once to fp32).
#pragma once

#include <cstdint>

#include "kestrel/core/dtype.h"
#include "kestrel/core/layout.h"

namespace kestrel::cpu {
void bias_add_rows(void* y, const float* bias, std::int64_t rows, std::int64_t cols, DType dtype);
void bias_backward_rows(const void* dy, float* dbias, std::int64_t rows, std::int64_t cols,
                        DType dtype);
void channel_bias_add(void* y, const float* bias, DType dtype, std::int64_t n, std::int64_t c,
                      std::int64_t hw, Layout layout);
void channel_bias_backward(const void* dy, float* dbias, DType dtype, std::int64_t n,
                           std::int64_t c, std::int64_t hw, Layout layout);
}  // namespace kestrel::cpu
