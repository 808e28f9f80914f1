#include "kestrel/kernels/gemm.h"

#include "kestrel/core/cublas_check_internal.h"

namespace kestrel::cuda {

void gemm(cublasContext* handle, bool trans_a, bool trans_b, std::int64_t m, std::int64_t n,
          std::int64_t k, float alpha, const void* a, std::int64_t lda, const void* b,
          std::int64_t ldb, float beta, void* c, std::int64_t ldc, DType dtype, bool allow_tf32,
          cudaStream_t stream) {
  gemm(handle, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, dtype, allow_tf32,
       nullptr, 0, stream);
}

void gemm(cublasContext* handle, bool trans_a, bool trans_b, std::int64_t m, std::int64_t n,
          std::int64_t k, float alpha, const void* a, std::int64_t lda, const void* b,
          std::int64_t ldb, float beta, void* c, std::int64_t ldc, DType dtype, bool allow_tf32,
          void* workspace, std::size_t workspace_bytes, cudaStream_t stream) {
  validate_gemm(trans_a, trans_b, m, n, k, a, lda, b, ldb, c, ldc, dtype);
  KESTREL_CHECK(handle != nullptr, "gemm: the cuBLAS handle is null");
  KESTREL_CHECK((workspace == nullptr) == (workspace_bytes == 0),
                "gemm: workspace and workspace_bytes must be both set or both empty (got ",
                workspace, ", ", workspace_bytes, " bytes)");
  KESTREL_CHECK(reinterpret_cast<std::uintptr_t>(workspace) % 256 == 0,
                "gemm: the cuBLAS workspace must be 256-byte aligned, got ", workspace);
  if (m == 0 || n == 0) return;
  // Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: swap the operands and read
  // each row-major matrix as its column-major transpose (same leading dimension).
  const cudaDataType_t type = dtype == DType::kFloat32 ? CUDA_R_32F : CUDA_R_16BF;
  const cublasComputeType_t compute = dtype == DType::kFloat32 && allow_tf32
                                          ? CUBLAS_COMPUTE_32F_FAST_TF32
                                          : CUBLAS_COMPUTE_32F;
  KESTREL_CUBLAS_CHECK(cublasSetStream(handle, stream));
  // After cublasSetStream, which resets the workspace to cuBLAS's default pool: set earlier, our
  // workspace would be dropped and cuBLAS would allocate its own (inside CUDA Graph captures too).
  if (workspace != nullptr)
    KESTREL_CUBLAS_CHECK(cublasSetWorkspace(handle, workspace, workspace_bytes));
  KESTREL_CUBLAS_CHECK(cublasSetPointerMode(handle, CUBLAS_POINTER_MODE_HOST));
  // No TF32 through the handle, and reductions (split-K) in the fp32 accumulator, never in the
  // output type: by default cuBLAS may sum bf16 partial results in bf16 (cublas_api.h), which
  // would break "fp32 accumulation, result rounded once" (gemm.h).
  KESTREL_CUBLAS_CHECK(cublasSetMathMode(
      handle, static_cast<cublasMath_t>(CUBLAS_DEFAULT_MATH | CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION)));
  KESTREL_CUBLAS_CHECK(cublasGemmEx(
      handle, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N,
      static_cast<int>(n), static_cast<int>(m), static_cast<int>(k), &alpha, b, type,
      static_cast<int>(ldb), a, type, static_cast<int>(lda), &beta, c, type, static_cast<int>(ldc),
      compute, CUBLAS_GEMM_DEFAULT));
}

}  // namespace kestrel::cuda
