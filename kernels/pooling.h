// Global average pooling and 2x2/stride-2 max pooling on the GPU. CPU twins:
// kernels/cpu/pooling.h; element formulas: kernels/pooling_math.h.
//
// x/dx are [n, c, h, w] logically (global pooling: [n, c, hw], the spatial dims flattened),
// stored in `layout`, dtype fp32, bf16 or fp16; arithmetic in fp32.
// global_avg_pool: y/dy are [n, c] row-major, y = mean over the hw positions, dx = dy / hw.
// max_pool2x2: y/dy are [n, c, h/2, w/2] (floor) in `layout`. Backward recomputes each window's
// arg-max from x (first maximum in row-major window order on ties; no stored indices) and writes
// every element of dx: dy at the arg-max, 0 elsewhere, including the last row/column an odd h/w
// leaves uncovered. NaN counts as the maximum, so it propagates.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kestrel/core/dtype.h"
#include "kestrel/core/layout.h"

namespace kestrel::cuda {
void global_avg_pool_forward(const void* x, void* y, DType dtype, std::int64_t n, std::int64_t c,
                             std::int64_t hw, Layout layout, cudaStream_t stream);
void global_avg_pool_backward(const void* dy, void* dx, DType dtype, std::int64_t n,
                              std::int64_t c, std::int64_t hw, Layout layout, cudaStream_t stream);
void max_pool2x2_forward(const void* x, void* y, DType dtype, std::int64_t n, std::int64_t c,
                         std::int64_t h, std::int64_t w, Layout layout, cudaStream_t stream);
void max_pool2x2_backward(const void* dy, const void* x, void* dx, DType dtype, std::int64_t n,
                          std::int64_t c, std::int64_t h, std::int64_t w, Layout layout,
                          cudaStream_t stream);
}  // namespace kestrel::cuda
