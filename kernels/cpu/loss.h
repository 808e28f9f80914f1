// CPU twins of kernels/loss.h: same arguments, no stream; pointers are host memory. Row sums
// accumulate in double. Labels outside [0, k) raise kestrel::Error naming the row (nothing is
// written then). `workspace` is unused (may be null); softmax_cross_entropy_workspace_bytes
// returns 0.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kestrel/core/dtype.h"

namespace kestrel::cpu {
std::size_t softmax_cross_entropy_workspace_bytes(std::int64_t n, std::int64_t k);
void softmax_cross_entropy(const void* logits, DType dtype, const std::int32_t* labels,
                           std::int64_t n, std::int64_t k, float label_smoothing, float* loss,
                           void* dlogits, const float* dloss_scale, void* workspace);
void softmax_forward(const void* x, void* y, DType dtype, std::int64_t rows, std::int64_t cols);
void softmax_backward(const void* dy, const void* y, void* dx, DType dtype, std::int64_t rows,
                      std::int64_t cols);
void count_correct(const void* logits, DType dtype, const std::int32_t* labels, std::int64_t n,
                   std::int64_t k, std::int64_t* correct);
void argmax_rows(const void* x, DType dtype, std::int64_t rows, std::int64_t cols,
                 std::int32_t* out);
}  // namespace kestrel::cpu
