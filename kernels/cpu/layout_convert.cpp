#include "kestrel/kernels/cpu/layout_convert.h"

#include <cstring>

#include "kestrel/kernels/layout_convert_math.h"

namespace kestrel::cpu {
namespace {
void permute(const void* x, void* y, DType dtype, std::int64_t n, std::int64_t c, std::int64_t h,
             std::int64_t w, bool to_nhwc) {
  layout_detail::check_args(x, y, dtype, n, c, h, w);
  const std::size_t es = dtype_size(dtype);
  const std::int64_t total = n * c * h * w;
  const auto* src = static_cast<const char*>(x);
  auto* dst = static_cast<char*>(y);
  for (std::int64_t i = 0; i < total; ++i) {
    const std::int64_t j = layout_detail::nhwc_index_of_nchw(i, c, h * w);
    if (to_nhwc)
      std::memcpy(dst + j * es, src + i * es, es);
    else
      std::memcpy(dst + i * es, src + j * es, es);
  }
}
}  // namespace

void nchw_to_nhwc(const void* x, void* y, DType dtype, std::int64_t n, std::int64_t c, std::int64_t h,
                  std::int64_t w) {
  permute(x, y, dtype, n, c, h, w, true);
}

void nhwc_to_nchw(const void* x, void* y, DType dtype, std::int64_t n, std::int64_t c, std::int64_t h,
                  std::int64_t w) {
  permute(x, y, dtype, n, c, h, w, false);
}

}  // namespace kestrel::cpu
