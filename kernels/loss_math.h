// Row formulas of softmax, softmax cross-entropy and arg-max, shared by kernels/loss.cu and
// kernels/cpu/loss.cpp. A row is reduced to RowStats first (max, then sums relative to the max),
// so the formulas stay finite for logits of any finite magnitude.
#pragma once

#include <math.h>

#include <cstdint>
#include <initializer_list>

#include "kestrel/core/dtype.h"
#include "kestrel/core/error.h"
#include "kestrel/core/hd.h"
#include "kestrel/kernels/element_io.h"

namespace kestrel::loss_detail {

// Per-row statistics: m = max_j z_j, sum_exp = sum_j exp(z_j - m), sum_shifted = sum_j (z_j - m).
struct RowStats {
  float max;
  float sum_exp;
  float sum_shifted;
};

// -sum_j t_j log softmax(z)_j with t = (1 - eps) onehot(label) + eps / k, written as
// (1 - eps) (lse - z_label) + eps (lse - mean z), lse = m + log(sum_exp), each term relative to m.
KESTREL_HD float cross_entropy_row(const RowStats& s, float z_label, float eps, std::int64_t k) {
  const float log_s = logf(s.sum_exp);
  const float nll = (s.max - z_label) + log_s;
  if (eps == 0.f) return nll;  // a -Inf logit (a masked class) makes `smooth` +Inf, and 0 * Inf NaN
  const float smooth = log_s - s.sum_shifted / static_cast<float>(k);
  return fmaf(1.f - eps, nll, eps * smooth);  // explicit fma: no contraction differences
}

// Smoothed target of a class: (1 - eps) + eps / k for the label, eps / k elsewhere.
KESTREL_HD float smoothed_target(bool is_label, float eps, std::int64_t k) {
  const float off = eps / static_cast<float>(k);
  return is_label ? (1.f - eps) + off : off;
}

// softmax(z)_j from the row's max and sum of exponentials.
KESTREL_HD float softmax_prob(float z, float max, float sum_exp) { return expf(z - max) / sum_exp; }

// d loss / d z_j = (softmax_j - t_j) * coef, coef = dloss_scale / n.
KESTREL_HD float cross_entropy_grad(float z, const RowStats& s, float target, float coef) {
  return (softmax_prob(z, s.max, s.sum_exp) - target) * coef;
}

// Softmax backward: dx_j = y_j (dy_j - sum_i dy_i y_i).
KESTREL_HD float softmax_grad(float dy, float y, float dot) { return y * (dy - dot); }

// Arg-max candidates under a total order, so any reduction tree gives the same answer: NaN is
// greater than every number (as torch.argmax), equal values prefer the lower index.
struct ArgMax {
  float value;
  std::int32_t index;
};

KESTREL_HD ArgMax argmax_combine(const ArgMax& a, const ArgMax& b) {
  const bool a_nan = a.value != a.value, b_nan = b.value != b.value;
  if (a_nan != b_nan) return a_nan ? a : b;
  if (!a_nan && a.value != b.value) return a.value > b.value ? a : b;
  return a.index <= b.index ? a : b;
}

struct ArgMaxOp {
  KESTREL_HD ArgMax operator()(const ArgMax& a, const ArgMax& b) const { return argmax_combine(a, b); }
};

// Identity of argmax_combine for lanes that own no column.
KESTREL_HD ArgMax argmax_identity() { return ArgMax{-INFINITY, INT32_MAX}; }


// Host-side argument checks shared by both twins (raise before anything is launched or written):
// the storage dtype and sizes, then, for rows > 0, `data` (buffers of `dtype`: present and
// aligned to an element) and `others` (labels, results: present).
inline void check_rows(const char* op, DType dtype, std::int64_t rows, std::int64_t cols,
                       std::initializer_list<const void*> data, std::initializer_list<const void*> others = {}) {
  element_io::check_storage_dtype(dtype, op);
  KESTREL_CHECK(rows >= 0, op, ": negative row count ", rows);
  KESTREL_CHECK(cols >= 1 && cols <= INT32_MAX, op, ": column count must be in [1, 2^31), got ",
                cols);
  if (rows == 0) return;
  element_io::check_data(op, dtype, data);
  for (const void* p : others) KESTREL_CHECK(p != nullptr, op, ": null pointer");
}

// The arguments both softmax_cross_entropy launchers check. dlogits (optional) may not overlap
// logits at all: on the GPU a warp's lanes store gradients while one lane still reads the
// label's logit.
inline void check_cross_entropy(const void* logits, const std::int32_t* labels, const float* loss,
                                const void* dlogits, DType dtype, std::int64_t n, std::int64_t k, float eps) {
  check_rows("softmax_cross_entropy", dtype, n, k, {logits}, {labels, loss});
  KESTREL_CHECK(n >= 1, "softmax_cross_entropy: the batch mean needs n >= 1, got ", n);
  KESTREL_CHECK(eps >= 0.f && eps < 1.f, "softmax_cross_entropy: label_smoothing must be in [0, 1), got ",
                eps);
  element_io::check_element_aligned("softmax_cross_entropy", dlogits, dtype);
  const std::size_t bytes = static_cast<std::size_t>(n * k) * dtype_size(dtype);
  KESTREL_CHECK(dlogits == nullptr || !element_io::ranges_overlap(logits, bytes, dlogits, bytes),
                "softmax_cross_entropy: dlogits (at ", dlogits, ") overlaps logits (at ", logits,
                "); the gradient needs a buffer of its own");
}

}  // namespace kestrel::loss_detail
