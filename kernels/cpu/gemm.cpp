#include "kestrel/kernels/cpu/gemm.h"

#include <vector>

#include "kestrel/kernels/element_io.h"

namespace kestrel::cpu {
namespace {

// Register tile of the inner product: kRows x kCols outputs accumulate at once. 2 x 8 doubles
// keeps the accumulators in the 16 SSE2 registers of baseline x86-64 (no -march flag needed).
// Measured on the dev machine's CPU (one core, fp32, 128x256x3072 and the transposed shapes of a
// dense layer's backward): 10-12 GFLOP/s, against 0.5-1.6 for the previous three plain loops.
constexpr std::int64_t kRows = 2;
constexpr std::int64_t kCols = 8;

std::int64_t panels(std::int64_t extent, std::int64_t width) { return (extent + width - 1) / width; }

// op(X) read once into zero-padded panels of `width` rows (or columns) of doubles, interleaved
// along k: panel t holds, for p = 0..k-1, the `width` values of rows t*width.. at column p.
// `at(r, p)` is the logical element; rows beyond `extent` stay zero (their results are dropped).
template <typename At>
std::vector<double> pack(std::int64_t extent, std::int64_t k, std::int64_t width, At&& at) {
  std::vector<double> v(static_cast<std::size_t>(panels(extent, width) * width * k), 0.0);
  for (std::int64_t r = 0; r < extent; ++r)
    for (std::int64_t p = 0; p < k; ++p)
      v[static_cast<std::size_t>((r / width) * width * k + p * width + r % width)] = at(r, p);
  return v;
}

}  // namespace

// Every output is alpha * (sum over p = 0..k-1, in that order, of a*b in double, from 0.0),
// plus beta * C, rounded once: the three-loop definition. The tiling only changes which outputs
// are computed side by side, never an output's order of additions, so the result is bit-identical
// to the plain loops (tests/cpu/test_gemm.cpp checks it). A float product is exact in double, so
// contracting the multiply-add into an FMA cannot change it either.
void gemm(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, float alpha,
          const void* a, std::int64_t lda, const void* b, std::int64_t ldb, float beta, void* c,
          std::int64_t ldc, DType dtype, bool /*allow_tf32: the CPU is always exact*/) {
  validate_gemm(trans_a, trans_b, m, n, k, a, lda, b, ldb, c, ldc, dtype);
  if (m == 0 || n == 0) return;
  const std::vector<double> ap = pack(m, k, kRows, [&](std::int64_t i, std::int64_t p) {
    return static_cast<double>(element_io::load_float(a, dtype, trans_a ? p * lda + i : i * lda + p));
  });
  const std::vector<double> bp = pack(n, k, kCols, [&](std::int64_t j, std::int64_t p) {
    return static_cast<double>(element_io::load_float(b, dtype, trans_b ? j * ldb + p : p * ldb + j));
  });
  for (std::int64_t tj = 0; tj < panels(n, kCols); ++tj) {
    const double* bt = bp.data() + tj * kCols * k;
    for (std::int64_t ti = 0; ti < panels(m, kRows); ++ti) {
      const double* at = ap.data() + ti * kRows * k;
      double acc[kRows][kCols] = {};
      for (std::int64_t p = 0; p < k; ++p)
        for (std::int64_t r = 0; r < kRows; ++r)
          for (std::int64_t q = 0; q < kCols; ++q) acc[r][q] += at[p * kRows + r] * bt[p * kCols + q];
      for (std::int64_t r = 0; r < kRows && ti * kRows + r < m; ++r)
        for (std::int64_t q = 0; q < kCols && tj * kCols + q < n; ++q) {
          const std::int64_t at_c = (ti * kRows + r) * ldc + tj * kCols + q;
          double v = static_cast<double>(alpha) * acc[r][q];
          if (beta != 0.f) v += static_cast<double>(beta) * element_io::load_float(c, dtype, at_c);
          element_io::store_float(c, dtype, at_c, static_cast<float>(v));
        }
    }
  }
}

}  // namespace kestrel::cpu
