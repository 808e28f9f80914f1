// Layout conversion of [n, c, h, w] tensors between NCHW and NHWC memory order (any dtype:
// a pure permutation of elements). CPU twins: kernels/cpu/layout_convert.h. Raises kestrel::Error
// (before any launch) for a negative dimension, and for a non-empty tensor for a null pointer or
// source and destination bytes that overlap at all (a permutation cannot run in place).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kestrel/core/dtype.h"

namespace kestrel::cuda {
void nchw_to_nhwc(const void* x, void* y, DType dtype, std::int64_t n, std::int64_t c,
                  std::int64_t h, std::int64_t w, cudaStream_t stream);
void nhwc_to_nchw(const void* x, void* y, DType dtype, std::int64_t n, std::int64_t c,
                  std::int64_t h, std::int64_t w, cudaStream_t stream);
}  // namespace kestrel::cuda
