#include "kestrel/kernels/cpu/fill.h"

#include "kestrel/core/error.h"
#include "kestrel/kernels/element_io.h"
#include "kestrel/kernels/fill_math.h"

namespace kestrel::cpu {
namespace {
void check(void* out, DType dtype, std::int64_t n) {
  KESTREL_CHECK(is_floating(dtype), "fill needs a floating dtype, got ", dtype_name(dtype));
  element_io::check_buffers("fill", n, dtype, {out});
}
}  // namespace

void fill_constant(void* out, DType dtype, std::int64_t n, float value) {
  check(out, dtype, n);
  for (std::int64_t i = 0; i < n; ++i) fill_detail::store_as(out, dtype, i, value);
}

void fill_uniform(void* out, DType dtype, std::int64_t n, std::uint64_t seed, std::uint64_t offset,
                  float lo, float hi) {
  check(out, dtype, n);
  KESTREL_CHECK(lo <= hi, "fill_uniform: lo (", lo, ") must not exceed hi (", hi, ")");
  for (std::int64_t i = 0; i < n; ++i)
    fill_detail::store_as(out, dtype, i, fill_detail::uniform_value(seed, offset, i, lo, hi));
}

void fill_normal(void* out, DType dtype, std::int64_t n, std::uint64_t seed, std::uint64_t offset,
                 float mean, float stddev) {
  check(out, dtype, n);
  KESTREL_CHECK(stddev >= 0.f, "fill_normal: stddev must be >= 0, got ", stddev);
  for (std::int64_t i = 0; i < n; ++i)
    fill_detail::store_as(out, dtype, i, fill_detail::normal_value(seed, offset, i, mean, stddev));
}

}  // namespace kestrel::cpu
