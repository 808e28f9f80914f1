// KESTREL_CUBLAS_CHECK: a failing cublasStatus_t becomes kestrel::CublasError with cuBLAS's own
// status name and description.
#pragma once

#include <cublas_v2.h>

#include "kestrel/core/error.h"

namespace kestrel::detail {
[[noreturn]] void throw_cublas_error(cublasStatus_t status, const char* call, const char* file,
                                     int line);
}  // namespace kestrel::detail

#define KESTREL_CUBLAS_CHECK(expr)                                                             \
  do {                                                                                         \
    const cublasStatus_t kestrel_status_ = (expr);                                             \
    if (kestrel_status_ != CUBLAS_STATUS_SUCCESS)                                              \
      ::kestrel::detail::throw_cublas_error(kestrel_status_, #expr,                            \
                                            ::kestrel::detail::short_file(__FILE__), __LINE__); \
  } while (0)
