// Layer normalisation over the last axis of a [rows, cols] tensor, on the GPU. CPU twins:
// kernels/cpu/layernorm.h.
//
// The textbook (std + eps) form, per row:
//   mean = sum x / cols,  std = sqrt(sum (x - mean)^2 / cols)   (population std: divide by cols)
//   rstd = 1 / (std + eps),  y = gamma * (x - mean) * rstd + beta.
// This is NOT PyTorch's nn.LayerNorm, which uses 1 / sqrt(var + eps); eps here is added to the
// standard deviation, so a constant row (std == 0) gives y = beta and finite gradients.
// Backward (h = dy * gamma, d = x - mean, N = cols, sigma = std of the row):
//   dx = rstd * (h - sum h / N) - d * rstd^2 * (sum h*d / N) / sigma      (second term 0 if sigma == 0)
//   dgamma = sum over rows of dy * d * rstd,  dbeta = sum over rows of dy   (overwritten)
// (differentiating rstd = 1/(sigma + eps) gives the 1/sigma factor, where the sqrt(var + eps)
// form has rstd^3; at sigma == 0 the limit of the term is 0.) Backward recomputes sigma from x
// and save_mean in its reduction pass, so save_rstd need not be inverted.
//
// Storage: x, y, dy, dx are fp32 or bf16 (`dtype`), row-major; gamma, beta, dgamma, dbeta fp32
// [cols] (gamma / beta may be null: 1 and 0; dgamma / dbeta may be null: not written);
// save_mean / save_rstd fp32 [rows] (may be null in forward). y may be x and dx may be dy or x
// (same pointer); partial overlaps are not allowed. Arithmetic is fp32 (shifted sums and Chan's
// formula for the row statistics), with batch norm's limits (the CPU twin, rows of 4096 against
// long double): at |mean| / std of 1e4 the row's rstd is good to 1.5e-5 relative (1e6: 2.4e-3),
// and rows of 256 with std 1e18 overflow the fp32 sums (non-finite dx; at 1e19 rstd is NaN too).
// Workspace (backward): layernorm_workspace_bytes(rows, cols) bytes, 16-byte aligned, any
// contents (scratch for per-group column sums; results are bitwise reproducible).
// Errors (kestrel::Error, before any launch): rows or cols <= 0, a dtype other than fp32 / bf16,
// eps <= 0 or not finite, missing required pointers.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "kestrel/core/dtype.h"

namespace kestrel::cuda {

void layernorm_forward(const void* x, void* y, DType dtype, std::int64_t rows, std::int64_t cols,
                       const float* gamma, const float* beta, float eps, float* save_mean,
                       float* save_rstd, cudaStream_t stream);

std::size_t layernorm_workspace_bytes(std::int64_t rows, std::int64_t cols);

void layernorm_backward(const void* dy, const void* x, DType dtype, std::int64_t rows,
                        std::int64_t cols, const float* gamma, const float* save_mean,
                        const float* save_rstd, void* dx, float* dgamma, float* dbeta,
                        void* workspace, cudaStream_t stream);

}  // namespace kestrel::cuda
