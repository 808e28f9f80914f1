// Element formulas of the fills, shared by kernels/fill.cu and kernels/cpu/fill.cpp.
#pragma once

#include <math.h>

#include <cstdint>

#include "kestrel/core/dtype.h"
#include "kestrel/core/half.h"
#include "kestrel/kernels/philox.h"

namespace kestrel::fill_detail {

KESTREL_HD float uniform_value(std::uint64_t seed, std::uint64_t offset, std::int64_t i, float lo,
                               float hi) {
  const Philox4x32 r = philox_block(seed, offset, static_cast<std::uint64_t>(i) / 4);
  return fmaf(hi - lo, uniform_from_u32(r.x[i % 4]), lo);
}

KESTREL_HD float normal_value(std::uint64_t seed, std::uint64_t offset, std::int64_t i, float mean,
                              float stddev) {
  const Philox4x32 r = philox_block(seed, offset, static_cast<std::uint64_t>(i) / 2);
  const int lane = static_cast<int>(i % 2) * 2;
  return fmaf(stddev, normal_from_u32(r.x[lane], r.x[lane + 1]), mean);
}

// Stores a float as `dtype` (fp32, bf16 or fp16) at element i of `out`.
KESTREL_HD void store_as(void* out, DType dtype, std::int64_t i, float v) {
  if (dtype == DType::kFloat32) {
    static_cast<float*>(out)[i] = v;
  } else if (dtype == DType::kBFloat16) {
    static_cast<std::uint16_t*>(out)[i] = bf16_bits_from_float(v);
  } else {
    static_cast<std::uint16_t*>(out)[i] = fp16_bits_from_float(v);
  }
}

}  // namespace kestrel::fill_detail
