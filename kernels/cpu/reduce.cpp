#include "kestrel/kernels/cpu/reduce.h"

#include "kestrel/kernels/reduce_math.h"

namespace kestrel::cpu {

std::size_t reduce_workspace_bytes(std::int64_t) { return 0; }

void sum(const float* x, std::int64_t n, float* out, void*, std::size_t) {
  reduce_detail::check_reduce("sum", n, x, DType::kFloat32, out);
  double s = 0.0;
  for (std::int64_t i = 0; i < n; ++i) s += x[i];
  *out = static_cast<float>(s);
}

void sum_squares(const float* x, std::int64_t n, float* out, void*, std::size_t) {
  reduce_detail::check_reduce("sum_squares", n, x, DType::kFloat32, out);
  double s = 0.0;
  for (std::int64_t i = 0; i < n; ++i) s += static_cast<double>(x[i]) * x[i];
  *out = static_cast<float>(s);
}

void count_nonfinite(const void* x, DType dtype, std::int64_t n, std::int32_t* out, void*,
                     std::size_t) {
  reduce_detail::check_count_nonfinite(x, dtype, n, out);
  std::int32_t count = 0;
  if (dtype == DType::kFloat32) {
    for (std::int64_t i = 0; i < n; ++i) count += reduce_detail::NonFiniteF32{}(static_cast<const float*>(x)[i]);
  } else {
    const reduce_detail::NonFinite16 f = reduce_detail::nonfinite16(dtype);
    for (std::int64_t i = 0; i < n; ++i) count += f(static_cast<const std::uint16_t*>(x)[i]);
  }
  *out = count;
}

}  // namespace kestrel::cpu
