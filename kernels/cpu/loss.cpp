#include "kestrel/kernels/cpu/loss.h"

#include <cmath>
#include <vector>

#include "kestrel/core/error.h"
#include "kestrel/kernels/element_io.h"
#include "kestrel/kernels/loss_math.h"

namespace kestrel::cpu {
namespace {
using element_io::load_float;
using element_io::store_float;
using loss_detail::RowStats;

// Max first, then the sums relative to it, accumulated in double.
RowStats row_stats(const void* x, DType dtype, std::int64_t row, std::int64_t cols) {
  const std::int64_t base = row * cols;
  float m = -INFINITY;
  for (std::int64_t j = 0; j < cols; ++j) m = std::fmax(m, load_float(x, dtype, base + j));
  double sum_exp = 0.0, sum_shifted = 0.0;
  for (std::int64_t j = 0; j < cols; ++j) {
    const float d = load_float(x, dtype, base + j) - m;
    sum_exp += std::exp(static_cast<double>(d));
    sum_shifted += d;
  }
  return RowStats{m, static_cast<float>(sum_exp), static_cast<float>(sum_shifted)};
}

void check_labels(const char* op, const std::int32_t* labels, std::int64_t n, std::int64_t k) {
  for (std::int64_t i = 0; i < n; ++i)
    KESTREL_CHECK(labels[i] >= 0 && labels[i] < k, op, ": label ", labels[i], " of row ", i,
                  " is outside [0, ", k, ")");
}

std::int32_t row_argmax(const void* x, DType dtype, std::int64_t row, std::int64_t cols) {
  loss_detail::ArgMax best = loss_detail::argmax_identity();
  for (std::int64_t j = 0; j < cols; ++j)
    best = loss_detail::argmax_combine(
        best, loss_detail::ArgMax{load_float(x, dtype, row * cols + j), static_cast<std::int32_t>(j)});
  return best.index;
}
}  // namespace

std::size_t softmax_cross_entropy_workspace_bytes(std::int64_t, std::int64_t) { return 0; }

void softmax_cross_entropy(const void* logits, DType dtype, const std::int32_t* labels,
                           std::int64_t n, std::int64_t k, float label_smoothing, float* loss,
                           void* dlogits, const float* dloss_scale, void*) {
  loss_detail::check_cross_entropy(logits, labels, loss, dlogits, dtype, n, k, label_smoothing);
  check_labels("softmax_cross_entropy", labels, n, k);
  const float coef = (dloss_scale ? *dloss_scale : 1.f) / static_cast<float>(n);
  double total = 0.0;
  for (std::int64_t i = 0; i < n; ++i) {
    const RowStats s = row_stats(logits, dtype, i, k);
    const float z_label = load_float(logits, dtype, i * k + labels[i]);
    total += loss_detail::cross_entropy_row(s, z_label, label_smoothing, k);
    if (dlogits == nullptr) continue;
    for (std::int64_t j = 0; j < k; ++j) {
      const float t = loss_detail::smoothed_target(j == labels[i], label_smoothing, k);
      store_float(dlogits, dtype, i * k + j,
                  loss_detail::cross_entropy_grad(load_float(logits, dtype, i * k + j), s, t, coef));
    }
  }
  *loss = static_cast<float>(total / static_cast<double>(n));
}

void softmax_forward(const void* x, void* y, DType dtype, std::int64_t rows, std::int64_t cols) {
  loss_detail::check_rows("softmax_forward", dtype, rows, cols, {x, y});
  for (std::int64_t i = 0; i < rows; ++i) {
    const RowStats s = row_stats(x, dtype, i, cols);
    for (std::int64_t j = 0; j < cols; ++j)
      store_float(y, dtype, i * cols + j,
                  loss_detail::softmax_prob(load_float(x, dtype, i * cols + j), s.max, s.sum_exp));
  }
}

void softmax_backward(const void* dy, const void* y, void* dx, DType dtype, std::int64_t rows,
                      std::int64_t cols) {
  loss_detail::check_rows("softmax_backward", dtype, rows, cols, {dy, y, dx});
  for (std::int64_t i = 0; i < rows; ++i) {
    double dot = 0.0;
    for (std::int64_t j = 0; j < cols; ++j)
      dot += static_cast<double>(load_float(dy, dtype, i * cols + j)) * load_float(y, dtype, i * cols + j);
    for (std::int64_t j = 0; j < cols; ++j) {
      const std::int64_t e = i * cols + j;
      store_float(dx, dtype, e,
                  loss_detail::softmax_grad(load_float(dy, dtype, e), load_float(y, dtype, e),
                                            static_cast<float>(dot)));
    }
  }
}

void count_correct(const void* logits, DType dtype, const std::int32_t* labels, std::int64_t n,
                   std::int64_t k, std::int64_t* correct) {
  loss_detail::check_rows("count_correct", dtype, n, k, {logits}, {labels, correct});
  check_labels("count_correct", labels, n, k);
  std::int64_t hits = 0;
  for (std::int64_t i = 0; i < n; ++i) hits += row_argmax(logits, dtype, i, k) == labels[i];
  *correct += hits;
}

void argmax_rows(const void* x, DType dtype, std::int64_t rows, std::int64_t cols,
                 std::int32_t* out) {
  loss_detail::check_rows("argmax_rows", dtype, rows, cols, {x}, {out});
  for (std::int64_t i = 0; i < rows; ++i) out[i] = row_argmax(x, dtype, i, cols);
}

}  // namespace kestrel::cpu
