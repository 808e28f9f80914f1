// Element access shared by the kernel families that take a storage DType and a Layout: loads and
// stores of fp32/bf16/fp16 as float, and the physical offset of a logical (n, c, y, x) element.
// KESTREL_HD, so the CPU twins index and round exactly as the kernels do.
#pragma once

#include <cstdint>

#include "kestrel/core/dtype.h"
#include "kestrel/core/error.h"
#include "kestrel/core/half.h"
#include "kestrel/core/layout.h"
#include "kestrel/kernels/fill_math.h"

namespace kestrel::kernel_io {

// Element i of `p` (fp32, bf16 or fp16 storage) as a float; exact.
KESTREL_HD float load_float(const void* p, DType dtype, std::int64_t i) {
  if (dtype == DType::kFloat32) return static_cast<const float*>(p)[i];
  const std::uint16_t bits = static_cast<const std::uint16_t*>(p)[i];
  return dtype == DType::kBFloat16 ? float_from_bf16_bits(bits) : float_from_fp16_bits(bits);
}

// Stores v as `dtype` (fp32, bf16 or fp16; 16-bit types round to nearest even).
KESTREL_HD void store_float(void* p, DType dtype, std::int64_t i, float v) {
  fill_detail::store_as(p, dtype, i, v);
}

// Offset of logical element (n, c, y, x) of an [N, C, H, W] tensor stored in `layout`.
KESTREL_HD std::int64_t offset4(Layout layout, std::int64_t n, std::int64_t c, std::int64_t y,
                                std::int64_t x, std::int64_t C, std::int64_t H, std::int64_t W) {
  return layout == Layout::kNCHW ? ((n * C + c) * H + y) * W + x : ((n * H + y) * W + x) * C + c;
}

struct Index4 {
  std::int64_t n, c, y, x;
};

// Inverse of offset4: the logical coordinates of physical offset i.
KESTREL_HD Index4 coords4(Layout layout, std::int64_t i, std::int64_t C, std::int64_t H,
                          std::int64_t W) {
  Index4 r;
  if (layout == Layout::kNCHW) {
    r.x = i % W;
    i /= W;
    r.y = i % H;
    i /= H;
    r.c = i % C;
    r.n = i / C;
  } else {
    r.c = i % C;
    i /= C;
    r.x = i % W;
    i /= W;
    r.y = i % H;
    r.n = i / H;
  }
  return r;
}

// Host-side argument check: activations are stored as fp32, bf16 or fp16.
inline void check_storage_dtype(DType dtype, const char* op) {
  KESTREL_CHECK(is_floating(dtype), op, ": storage dtype must be fp32, bf16 or fp16, got ",
                dtype_name(dtype));
}

}  // namespace kestrel::kernel_io
