// CPU twins of kernels/elementwise.h: same arguments and contracts, no stream. Bit-identical to
// the GPU except sigmoid and tanh (host and device libm may differ in the last bits).
#pragma once

#include <cstdint>

#include "kestrel/core/dtype.h"

namespace kestrel::cpu {
void add(const void* a, const void* b, void* y, std::int64_t n, DType dtype);
void accumulate(void* y, const void* x, std::int64_t n, DType dtype);
void add_relu(const void* a, const void* b, void* y, std::int64_t n, DType dtype);
void add_relu_backward(const void* dy, const void* y, void* dx, std::int64_t n, DType dtype);
void relu(const void* x, void* y, std::int64_t n, DType dtype);
void relu_backward(const void* dy, const void* y, void* dx, std::int64_t n, DType dtype);
void scale(const void* x, void* y, std::int64_t n, DType dtype, float alpha);
void mul(const void* a, const void* b, void* y, std::int64_t n, DType dtype);
void mul_backward(const void* dy, const void* a, const void* b, void* da, void* db, std::int64_t n,
                  DType dtype);
void sigmoid(const void* x, void* y, std::int64_t n, DType dtype);
void sigmoid_backward(const void* dy, const void* y, void* dx, std::int64_t n, DType dtype);
void tanh_forward(const void* x, void* y, std::int64_t n, DType dtype);
void tanh_backward(const void* dy, const void* y, void* dx, std::int64_t n, DType dtype);
void cast(const void* x, DType from, void* y, DType to, std::int64_t n);
}  // namespace kestrel::cpu
