#include "kestrel/kernels/cpu/bias.h"

#include <vector>

#include "kestrel/kernels/bias_math.h"
#include "kestrel/kernels/element_io.h"

namespace kestrel::cpu {
namespace {
void add(const char* what, void* y, const float* bias, DType dtype, std::int64_t n,
         std::int64_t c, std::int64_t hw, Layout layout) {
  bias_detail::check_args(what, dtype, n, c, hw, y, bias);
  const std::int64_t total = n * c * hw, inner = bias_detail::inner_of(layout, hw);
  for (std::int64_t i = 0; i < total; ++i) {
    const float b = bias[bias_detail::channel_of(i, c, inner)];
    element_io::store_float(y, dtype, i, bias_detail::add_bias(element_io::load_float(y, dtype, i), b));
  }
}

void sums(const char* what, const void* dy, float* dbias, DType dtype, std::int64_t n,
          std::int64_t c, std::int64_t hw, Layout layout) {
  bias_detail::check_args(what, dtype, n, c, hw, dy, dbias);
  const std::int64_t total = n * c * hw, inner = bias_detail::inner_of(layout, hw);
  std::vector<double> acc(static_cast<std::size_t>(c), 0.0);
  for (std::int64_t i = 0; i < total; ++i)
    acc[static_cast<std::size_t>(bias_detail::channel_of(i, c, inner))] +=
        element_io::load_float(dy, dtype, i);
  for (std::int64_t ch = 0; ch < c; ++ch)
    dbias[ch] = static_cast<float>(acc[static_cast<std::size_t>(ch)]);
}
}  // namespace

void bias_add_rows(void* y, const float* bias, std::int64_t rows, std::int64_t cols, DType dtype) {
  add("bias_add_rows", y, bias, dtype, rows, cols, 1, Layout::kNHWC);
}

void bias_backward_rows(const void* dy, float* dbias, std::int64_t rows, std::int64_t cols,
                        DType dtype) {
  sums("bias_backward_rows", dy, dbias, dtype, rows, cols, 1, Layout::kNHWC);
}

void channel_bias_add(void* y, const float* bias, DType dtype, std::int64_t n, std::int64_t c,
                      std::int64_t hw, Layout layout) {
  add("channel_bias_add", y, bias, dtype, n, c, hw, layout);
}

void channel_bias_backward(const void* dy, float* dbias, DType dtype, std::int64_t n,
                           std::int64_t c, std::int64_t hw, Layout layout) {
  sums("channel_bias_backward", dy, dbias, dtype, n, c, hw, layout);
}

}  // namespace kestrel::cpu
