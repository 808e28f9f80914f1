#include "kestrel/kernels/gemm_args.h"

#include <algorithm>
#include <climits>

#include "kestrel/core/error.h"
#include "kestrel/kernels/element_io.h"

namespace kestrel {
namespace {
void check_size(std::int64_t v, const char* name) {
  KESTREL_CHECK(v >= 0, "gemm: ", name, " must be >= 0, got ", v);
  KESTREL_CHECK(v <= INT_MAX, "gemm: ", name, " = ", v, " exceeds cuBLAS's 32-bit range");
}

void check_ld(std::int64_t ld, std::int64_t row_length, const char* name, const char* what) {
  const std::int64_t need = std::max<std::int64_t>(1, row_length);
  KESTREL_CHECK(ld >= need, "gemm: ", name, " = ", ld, " is smaller than ", need, " (", what, ")");
  KESTREL_CHECK(ld <= INT_MAX, "gemm: ", name, " = ", ld, " exceeds cuBLAS's 32-bit range");
}
}  // namespace

void validate_gemm(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k,
                   const void* a, std::int64_t lda, const void* b, std::int64_t ldb,
                   const void* c, std::int64_t ldc, DType dtype) {
  element_io::check_float_or_bf16(dtype, "gemm");
  check_size(m, "m");
  check_size(n, "n");
  check_size(k, "k");
  check_ld(lda, trans_a ? m : k, "lda", trans_a ? "A is k x m" : "A is m x k");
  check_ld(ldb, trans_b ? k : n, "ldb", trans_b ? "B is n x k" : "B is k x n");
  check_ld(ldc, n, "ldc", "C is m x n");
  if (m == 0 || n == 0) return;
  KESTREL_CHECK(c != nullptr, "gemm: C is a null pointer");
  if (k > 0) KESTREL_CHECK(a != nullptr && b != nullptr, "gemm: A or B is a null pointer");
  element_io::check_elements_aligned("gemm", dtype, {a, b, c});
}

}  // namespace kestrel
