// Dense matrix products on the GPU through cuBLAS (cublasGemmEx), row-major interface; the
// rules are in kernels/gemm_args.h. CPU twin: kernels/cpu/gemm.h.
//
// fp32: CUBLAS_COMPUTE_32F, exact fp32 (no TF32) unless allow_tf32 (then COMPUTE_32F_FAST_TF32).
// bf16: CUBLAS_COMPUTE_32F, fp32 accumulation, result rounded to bf16. alpha and beta are host
// floats. The handle's stream is set to `stream`, its math mode to CUBLAS_DEFAULT_MATH |
// CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION and its pointer mode to host. Raises kestrel::Error before any launch for invalid arguments.
//
// Workspace: the first form lets cuBLAS use its default workspace pool (cuBLAS may allocate for it,
// also while a CUDA Graph is being captured). The second form hands cuBLAS `workspace`
// (`workspace_bytes`, 256-byte aligned, 4 MiB or more recommended; may be null with 0 bytes for
// the default pool), bound after cublasSetStream because cublasSetStream resets the handle's
// workspace to the default pool; it must stay alive until the stream passes the call.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "kestrel/core/dtype.h"
#include "kestrel/kernels/gemm_args.h"

struct cublasContext;

namespace kestrel::cuda {
void gemm(cublasContext* handle, bool trans_a, bool trans_b, std::int64_t m, std::int64_t n,
          std::int64_t k, float alpha, const void* a, std::int64_t lda, const void* b,
          std::int64_t ldb, float beta, void* c, std::int64_t ldc, DType dtype, bool allow_tf32,
          cudaStream_t stream);
void gemm(cublasContext* handle, bool trans_a, bool trans_b, std::int64_t m, std::int64_t n,
          std::int64_t k, float alpha, const void* a, std::int64_t lda, const void* b,
          std::int64_t ldb, float beta, void* c, std::int64_t ldc, DType dtype, bool allow_tf32,
          void* workspace, std::size_t workspace_bytes, cudaStream_t stream);
}  // namespace kestrel::cuda
