// Bias epilogues and their gradients on the GPU. CPU twins: kernels/cpu/bias.h.
//
// bias_add_rows:         y[i, j] += bias[j] for a row-major [rows, cols] matrix (Linear).
// bias_backward_rows:    dbias[j] = sum_i dy[i, j] (overwrites dbias).
// channel_bias_add:      y[n, ch, s] += bias[ch] for an activation of n x c x hw in `layout`.
// channel_bias_backward: dbias[ch] = sum over n and s of dy[n, ch, s] (overwrites dbias).
// y / dy are fp32 or bf16 (`dtype`); bias and dbias are fp32. Adds happen in fp32 and are rounded
// once to the storage type (bit-identical to the CPU twin); sums accumulate in fp32 in a fixed
// order (deterministic) through CUB. Raises kestrel::Error for negative sizes, another dtype or
// null pointers, before anything is launched.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kestrel/core/dtype.h"
#include "kestrel/core/layout.h"

namespace kestrel::cuda {
void bias_add_rows(void* y, const float* bias, std::int64_t rows, std::int64_t cols, DType dtype,
                   cudaStream_t stream);
void bias_backward_rows(const void* dy, float* dbias, std::int64_t rows, std::int64_t cols,
                        DType dtype, cudaStream_t stream);
void channel_bias_add(void* y, const float* bias, DType dtype, std::int64_t n, std::int64_t c,
                      std::int64_t hw, Layout layout, cudaStream_t stream);
void channel_bias_backward(const void* dy, float* dbias, DType dtype, std::int64_t n,
                           std::int64_t c, std::int64_t hw, Layout layout, cudaStream_t stream);
}  // namespace kestrel::cuda
