// CPU twin of kernels/gemm.h: the same row-major GEMM (rules in kernels/gemm_args.h) with double
// accumulation; each result is rounded once to float, then to bf16 for bf16 storage.
#pragma once

#include <cstdint>

#include "kestrel/core/dtype.h"
#include "kestrel/kernels/gemm_args.h"

namespace kestrel::cpu {
void gemm(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, float alpha,
          const void* a, std::int64_t lda, const void* b, std::int64_t ldb, float beta, void* c,
          std::int64_t ldc, DType dtype, bool allow_tf32);
}  // namespace kestrel::cpu
