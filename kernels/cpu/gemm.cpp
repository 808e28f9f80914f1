#include "kestrel/kernels/cpu/gemm.h"

#include "kestrel/kernels/element_io.h"

namespace kestrel::cpu {

void gemm(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, float alpha,
          const void* a, std::int64_t lda, const void* b, std::int64_t ldb, float beta, void* c,
          std::int64_t ldc, DType dtype, bool /*allow_tf32: the CPU is always exact*/) {
  validate_gemm(trans_a, trans_b, m, n, k, a, lda, b, ldb, c, ldc, dtype);
  for (std::int64_t i = 0; i < m; ++i) {
    for (std::int64_t j = 0; j < n; ++j) {
      double acc = 0.0;
      for (std::int64_t p = 0; p < k; ++p) {
        const double av = element_io::load_float(a, dtype, trans_a ? p * lda + i : i * lda + p);
        const double bv = element_io::load_float(b, dtype, trans_b ? j * ldb + p : p * ldb + j);
        acc += av * bv;
      }
      double v = static_cast<double>(alpha) * acc;
      if (beta != 0.f) v += static_cast<double>(beta) * element_io::load_float(c, dtype, i * ldc + j);
      element_io::store_float(c, dtype, i * ldc + j, static_cast<float>(v));
    }
  }
}

}  // namespace kestrel::cpu
