// Elementwise kernels on the GPU: sums (residual adds, gradient accumulation), fused add+ReLU,
// activations and their backward passes, scaling, products, and dtype casts.
// CPU twins: kernels/cpu/elementwise.h. Formulas: kernels/elementwise_math.h.
//
// Every buffer holds n elements of `dtype` (fp32, bf16 or fp16); arithmetic is fp32 and results
// are rounded to the storage type (nearest even). An output may be the same buffer as an input
// (in place), except for a cast between dtypes of different sizes, which raises when its source
// and destination overlap at all; partial overlap is not allowed. Any alignment works (16-byte vector accesses where
// all pointers are 16-byte aligned). GPU and CPU results are bit-identical except sigmoid and
// tanh, where device and host libm may differ in the last bits, and NaN payloads (both NaN: the
// GPU's arithmetic returns the canonical NaN). Raises kestrel::Error (before
// launching) for other dtypes, n < 0 or null data.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kestrel/core/dtype.h"

namespace kestrel::cuda {
// y = a + b
void add(const void* a, const void* b, void* y, std::int64_t n, DType dtype, cudaStream_t stream);
// y += x (summing the gradients of a value's uses)
void accumulate(void* y, const void* x, std::int64_t n, DType dtype, cudaStream_t stream);
// y = max(a + b, 0) in one pass (residual add + ReLU); NaN propagates
void add_relu(const void* a, const void* b, void* y, std::int64_t n, DType dtype,
              cudaStream_t stream);
// dx = y <= 0 ? 0 : dy (the gradient for both a and b of add_relu; y is its output; a NaN y
// passes dy, as PyTorch's threshold_backward)
void add_relu_backward(const void* dy, const void* y, void* dx, std::int64_t n, DType dtype,
                       cudaStream_t stream);
// y = max(x, 0); NaN propagates
void relu(const void* x, void* y, std::int64_t n, DType dtype, cudaStream_t stream);
// dx = y <= 0 ? 0 : dy (y is relu's output; a NaN y passes dy)
void relu_backward(const void* dy, const void* y, void* dx, std::int64_t n, DType dtype,
                   cudaStream_t stream);
// y = alpha * x
void scale(const void* x, void* y, std::int64_t n, DType dtype, float alpha, cudaStream_t stream);
// y = a * b
void mul(const void* a, const void* b, void* y, std::int64_t n, DType dtype, cudaStream_t stream);
// da = dy * b, db = dy * a (da and db distinct buffers)
void mul_backward(const void* dy, const void* a, const void* b, void* da, void* db, std::int64_t n,
                  DType dtype, cudaStream_t stream);
// y = 1 / (1 + exp(-x)), without overflow for any x
void sigmoid(const void* x, void* y, std::int64_t n, DType dtype, cudaStream_t stream);
// dx = dy * y * (1 - y) (y is sigmoid's output)
void sigmoid_backward(const void* dy, const void* y, void* dx, std::int64_t n, DType dtype,
                      cudaStream_t stream);
// y = tanh(x) (named so as not to clash with ::tanh)
void tanh_forward(const void* x, void* y, std::int64_t n, DType dtype, cudaStream_t stream);
// dx = dy * (1 - y * y) (y is tanh's output)
void tanh_backward(const void* dy, const void* y, void* dx, std::int64_t n, DType dtype,
                   cudaStream_t stream);
// y = x converted from `from` to `to` (fp32, bf16, fp16; round to nearest even; same dtype is a
// copy of the bits)
void cast(const void* x, DType from, void* y, DType to, std::int64_t n, cudaStream_t stream);
}  // namespace kestrel::cuda
