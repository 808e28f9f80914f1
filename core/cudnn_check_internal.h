// KESTREL_CUDNN_CHECK: a failing cudnnStatus_t becomes kestrel::CudnnError with cuDNN's own
// message (cudnnGetErrorString and, when set, cudnnGetLastErrorString).
#pragma once

#include <cudnn.h>

#include "kestrel/core/error.h"

namespace kestrel::detail {
[[noreturn]] void throw_cudnn_error(cudnnStatus_t status, const char* call, const char* file,
                                    int line);
}  // namespace kestrel::detail

#define KESTREL_CUDNN_CHECK(expr)                                                             \
  do {                                                                                        \
    const cudnnStatus_t kestrel_status_ = (expr);                                             \
    if (kestrel_status_ != CUDNN_STATUS_SUCCESS)                                              \
      ::kestrel::detail::throw_cudnn_error(kestrel_status_, #expr,                            \
                                           ::kestrel::detail::short_file(__FILE__), __LINE__); \
  } while (0)
