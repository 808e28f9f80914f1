// CPU twins of kernels/fill.h: same arguments, no stream.
#pragma once

#include <cstdint>

#include "kestrel/core/dtype.h"

namespace kestrel::cpu {
void fill_constant(void* out, DType dtype, std::int64_t n, float value);
void fill_uniform(void* out, DType dtype, std::int64_t n, std::uint64_t seed, std::uint64_t offset,
                  float lo, float hi);
void fill_normal(void* out, DType dtype, std::int64_t n, std::uint64_t seed, std::uint64_t offset,
                 float mean, float stddev);
}  // namespace kestrel::cpu
