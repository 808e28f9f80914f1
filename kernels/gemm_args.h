// Argument rules of the row-major GEMM shared by kernels/gemm.h and kernels/cpu/gemm.h:
//   C[m, n] = alpha * op(A)[m, k] * op(B)[k, n] + beta * C
// A is stored row-major as m x k (k x m when trans_a) with leading dimension lda (>= its column
// count and >= 1); likewise B as k x n (n x k when trans_b) with ldb, and C as m x n with ldc.
// beta == 0 means C is not read (it may hold NaN). m or n of 0 does nothing; k of 0 gives
// C = beta * C. Storage fp32 or bf16 for A, B and C alike; accumulation fp32 on the GPU.
#pragma once

#include <cstdint>

#include "kestrel/core/dtype.h"

namespace kestrel {

// Raises kestrel::Error naming the bad argument: negative sizes, a leading dimension smaller
// than its row length, sizes beyond cuBLAS's 32-bit range, a dtype other than fp32/bf16, a null
// pointer where data is needed, a pointer not aligned to an element.
void validate_gemm(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k,
                   const void* a, std::int64_t lda, const void* b, std::int64_t ldb,
                   const void* c, std::int64_t ldc, DType dtype);

}  // namespace kestrel
