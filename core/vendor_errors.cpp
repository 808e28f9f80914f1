// Turns CUDA runtime, cuDNN and cuBLAS statuses into Kestrel's typed errors.
#include <string>

#include "kestrel/core/cublas_check_internal.h"
#include "kestrel/core/cuda_check_internal.h"
#include "kestrel/core/cudnn_check_internal.h"

namespace kestrel::detail {

void throw_cuda_error(cudaError_t code, const char* call, const char* file, int line) {
  std::string msg = std::string("CUDA error ") + cudaGetErrorName(code) + " (" +
                    std::to_string(static_cast<int>(code)) + "): " + cudaGetErrorString(code);
  // Clear a sticky-free error so the next call does not report it again.
  (void)cudaGetLastError();
  if (code == cudaErrorMemoryAllocation) {
    std::size_t free_b = 0, total_b = 0;
    if (cudaMemGetInfo(&free_b, &total_b) == cudaSuccess)
      msg += " (device has " + std::to_string(free_b) + " of " + std::to_string(total_b) +
             " bytes free)";
    (void)cudaGetLastError();
  }
  throw CudaError(static_cast<int>(code), std::move(msg), call, file, line);
}

void throw_cudnn_error(cudnnStatus_t status, const char* call, const char* file, int line) {
  std::string msg = std::string("cuDNN error ") + cudnnGetErrorString(status) + " (" +
                    std::to_string(static_cast<int>(status)) + ")";
  char detail[512] = {0};
  cudnnGetLastErrorString(detail, sizeof detail);
  if (detail[0] != '\0') msg += ": " + std::string(detail);
  throw CudnnError(static_cast<int>(status), std::move(msg), call, file, line);
}

void throw_cublas_error(cublasStatus_t status, const char* call, const char* file, int line) {
  std::string msg = std::string("cuBLAS error ") + cublasGetStatusName(status) + " (" +
                    std::to_string(static_cast<int>(status)) + "): " + cublasGetStatusString(status);
  throw CublasError(static_cast<int>(status), std::move(msg), call, file, line);
}

}  // namespace kestrel::detail
