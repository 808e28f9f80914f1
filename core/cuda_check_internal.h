// Checked-call macros for the CUDA runtime, cuDNN and cuBLAS. Each turns a failing status into a
// typed kestrel::Error (CudaError, CudnnError, CublasError) carrying the call's text, file:line
// and the library's own message. Internal: includes the vendor headers.
#pragma once

#include <cuda_runtime.h>

#include "kestrel/core/error.h"

namespace kestrel::detail {
[[noreturn]] void throw_cuda_error(cudaError_t code, const char* call, const char* file, int line);
}  // namespace kestrel::detail

#define KESTREL_CUDA_CHECK(expr)                                                            \
  do {                                                                                      \
    const cudaError_t kestrel_status_ = (expr);                                             \
    if (kestrel_status_ != cudaSuccess)                                                     \
      ::kestrel::detail::throw_cuda_error(kestrel_status_, #expr,                           \
                                          ::kestrel::detail::short_file(__FILE__), __LINE__); \
  } while (0)

// After a kernel launch: raises on launch-configuration errors (not on asynchronous faults).
#define KESTREL_CUDA_CHECK_LAUNCH() KESTREL_CUDA_CHECK(cudaGetLastError())
