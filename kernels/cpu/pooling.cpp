#include "kestrel/kernels/cpu/pooling.h"

#include "kestrel/core/error.h"
#include "kestrel/kernels/element_io.h"
#include "kestrel/kernels/pooling_math.h"

namespace kestrel::cpu {
void global_avg_pool_forward(const void* x, void* y, DType dtype, std::int64_t n, std::int64_t c,
                             std::int64_t hw, Layout layout) {
  pooling_detail::check_global_pool("global_avg_pool_forward", dtype, n, c, hw, {x, y});
  for (std::int64_t b = 0; b < n; ++b) {
    for (std::int64_t ch = 0; ch < c; ++ch) {
      double sum = 0.0;
      for (std::int64_t p = 0; p < hw; ++p)
        sum += element_io::load_float(x, dtype, element_io::offset4(layout, b, ch, p, 0, c, hw, 1));
      element_io::store_float(y, dtype, b * c + ch, static_cast<float>(sum / static_cast<double>(hw)));
    }
  }
}

void global_avg_pool_backward(const void* dy, void* dx, DType dtype, std::int64_t n,
                              std::int64_t c, std::int64_t hw, Layout layout) {
  pooling_detail::check_global_pool("global_avg_pool_backward", dtype, n, c, hw, {dy, dx});
  for (std::int64_t i = 0; i < n * c * hw; ++i)
    element_io::store_float(dx, dtype, i, pooling_detail::avg_pool_dx(dy, dtype, layout, i, c, hw));
}

void max_pool2x2_forward(const void* x, void* y, DType dtype, std::int64_t n, std::int64_t c,
                         std::int64_t h, std::int64_t w, Layout layout) {
  pooling_detail::check_pool("max_pool2x2_forward", dtype, n, c, h, w, {x, y});
  for (std::int64_t o = 0; o < n * c * (h / 2) * (w / 2); ++o)
    element_io::store_float(y, dtype, o, pooling_detail::max_pool_y(x, dtype, layout, o, c, h, w));
}

void max_pool2x2_backward(const void* dy, const void* x, void* dx, DType dtype, std::int64_t n,
                          std::int64_t c, std::int64_t h, std::int64_t w, Layout layout) {
  pooling_detail::check_pool("max_pool2x2_backward", dtype, n, c, h, w, {dy, x, dx});
  for (std::int64_t i = 0; i < n * c * h * w; ++i)
    element_io::store_float(dx, dtype, i, pooling_detail::max_pool_dx(dy, x, dtype, layout, i, c, h, w));
}

}  // namespace kestrel::cpu
