// CPU twins of kernels/reduce.h: same arguments, no stream; host pointers. Sums accumulate in
// double and round once to float. The workspace is unused (may be null; reduce_workspace_bytes
// returns 0).
#pragma once

#include <cstddef>
#include <cstdint>

#include "kestrel/core/dtype.h"

namespace kestrel::cpu {
std::size_t reduce_workspace_bytes(std::int64_t n);
void sum(const float* x, std::int64_t n, float* out, void* workspace, std::size_t workspace_bytes);
void sum_squares(const float* x, std::int64_t n, float* out, void* workspace,
                 std::size_t workspace_bytes);
void count_nonfinite(const void* x, DType dtype, std::int64_t n, std::int32_t* out,
                     void* workspace, std::size_t workspace_bytes);
}  // namespace kestrel::cpu
