// Fused Philox dropout on the GPU: mask generation and scaling in one pass, 16-byte vector
// loads/stores, no stored mask (backward regenerates it from seed, offset and index). Semantics,
// parameters and modes: kernels/dropout_math.h. CPU twins: kernels/cpu/dropout.h, bit-identical.
//
// x, y (dy, dx): n elements of `dtype` (fp32, bf16 or fp16); in place (x == y) is allowed,
// partial overlap is not. p.offset_ptr, when set, points to device memory and is read when the
// kernel runs, so a captured CUDA Graph replayed after advance_offset draws a fresh mask.
// Raises kestrel::Error (before launching) for invalid parameters, n < 0, null data.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kestrel/core/dtype.h"
#include "kestrel/kernels/dropout_math.h"

namespace kestrel::cuda {
void dropout_forward(const void* x, void* y, std::int64_t n, DType dtype, const DropoutParams& p,
                     cudaStream_t stream);
// dx = dy * (the factor and mask forward applied with the same parameters).
void dropout_backward(const void* dy, void* dx, std::int64_t n, DType dtype, const DropoutParams& p,
                      cudaStream_t stream);
// *offset_ptr += increment, in order on `stream` (offset_ptr in device memory).
void advance_offset(std::uint64_t* offset_ptr, std::uint64_t increment, cudaStream_t stream);
}  // namespace kestrel::cuda
