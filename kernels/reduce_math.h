// Element transforms of the whole-tensor reductions, shared by kernels/reduce.cu (as CUB
// transform functors) and kernels/cpu/reduce.cpp.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kestrel/core/dtype.h"
#include "kestrel/core/error.h"
#include "kestrel/core/half.h"
#include "kestrel/core/hd.h"
#include "kestrel/kernels/element_io.h"

namespace kestrel::reduce_detail {

struct Square {
  KESTREL_HD float operator()(float v) const { return v * v; }
};

// 1 for NaN or +-Inf (exponent bits all ones), else 0; read from the bits, so it holds under
// any floating-point compiler mode.
struct NonFiniteF32 {
  KESTREL_HD int operator()(float v) const { return (float_bits(v) & 0x7f800000u) == 0x7f800000u; }
};
struct NonFinite16 {
  std::uint16_t exponent_mask;  // 0x7f80 for bf16, 0x7c00 for fp16
  KESTREL_HD int operator()(std::uint16_t b) const { return (b & exponent_mask) == exponent_mask; }
};
inline NonFinite16 nonfinite16(DType dtype) {
  return NonFinite16{static_cast<std::uint16_t>(dtype == DType::kBFloat16 ? 0x7f80u : 0x7c00u)};
}

// Host-side argument checks shared by both twins: the count, the result pointer (written even
// for n == 0), and for n > 0 the data (present, aligned to an element of `dtype`).
inline void check_reduce(const char* op, std::int64_t n, const void* x, DType dtype, const void* out) {
  element_io::check_buffers(op, n, dtype, {x});
  KESTREL_CHECK(out != nullptr, op, ": null result pointer");
}
inline void check_count_nonfinite(const void* x, DType dtype, std::int64_t n, const void* out) {
  KESTREL_CHECK(is_floating(dtype), "count_nonfinite: dtype must be fp32, bf16 or fp16, got ",
                dtype_name(dtype));
  check_reduce("count_nonfinite", n, x, dtype, out);
  KESTREL_CHECK(n <= INT32_MAX, "count_nonfinite: ", n, " elements overflow the int32 count");
}

}  // namespace kestrel::reduce_detail
