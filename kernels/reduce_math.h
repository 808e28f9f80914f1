// Element transforms of the whole-tensor reductions, shared by kernels/reduce.cu (as CUB
// transform functors) and kernels/cpu/reduce.cpp.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kestrel/core/dtype.h"
#include "kestrel/core/error.h"
#include "kestrel/core/half.h"
#include "kestrel/core/hd.h"

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

// Host-side argument checks shared by both twins.
inline void check_reduce(const char* op, std::int64_t n) {
  KESTREL_CHECK(n >= 0, op, ": negative element count ", n);
}
inline void check_count_nonfinite(DType dtype, std::int64_t n) {
  check_reduce("count_nonfinite", n);
  KESTREL_CHECK(is_floating(dtype), "count_nonfinite: dtype must be fp32, bf16 or fp16, got ",
                dtype_name(dtype));
  KESTREL_CHECK(n <= INT32_MAX, "count_nonfinite: ", n, " elements overflow the int32 count");
}

}  // namespace kestrel::reduce_detail
