// CPU twins of kernels/dropout.h: same arguments, no stream, bit-identical results.
// p.offset_ptr, when set, points to host memory.
#pragma once

#include <cstdint>

#include "kestrel/core/dtype.h"
#include "kestrel/kernels/dropout_math.h"

namespace kestrel::cpu {
void dropout_forward(const void* x, void* y, std::int64_t n, DType dtype, const DropoutParams& p);
void dropout_backward(const void* dy, void* dx, std::int64_t n, DType dtype,
                      const DropoutParams& p);
void advance_offset(std::uint64_t* offset_ptr, std::uint64_t increment);
}  // namespace kestrel::cpu
