// CPU twins of kernels/layernorm.h: same arguments and contract, no stream. The workspace is
// accepted for symmetry and ignored (it may be null).
#pragma once

#include <cstddef>
#include <cstdint>

#include "kestrel/core/dtype.h"

namespace kestrel::cpu {

void layernorm_forward(const void* x, void* y, DType dtype, std::int64_t rows, std::int64_t cols,
                       const float* gamma, const float* beta, float eps, float* save_mean,
                       float* save_rstd);

std::size_t layernorm_workspace_bytes(std::int64_t rows, std::int64_t cols);

void layernorm_backward(const void* dy, const void* x, DType dtype, std::int64_t rows,
                        std::int64_t cols, const float* gamma, const float* save_mean,
                        const float* save_rstd, void* dx, float* dgamma, float* dbeta,
                        void* workspace);

}  // namespace kestrel::cpu
