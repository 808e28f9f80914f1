// Whole-tensor reductions on the GPU through cub::DeviceReduce (run-to-run deterministic on one
// device; fp32 accumulation in CUB's tree order). CPU twins: kernels/cpu/reduce.h.
//
// `workspace` is device scratch of `workspace_bytes` >= reduce_workspace_bytes(n) (one size
// serves all three reductions). Results are written to device memory on `stream`; n = 0 gives 0.
//   sum:             *out = sum_i x_i
//   sum_squares:     *out = sum_i x_i^2 (the squared L2 norm, e.g. of all gradients)
//   count_nonfinite: *out = number of NaN/+-Inf elements of x (fp32, bf16 or fp16; n < 2^31)
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "kestrel/core/dtype.h"

namespace kestrel::cuda {
// Asks CUB for its scratch sizes, so it needs a CUDA device.
std::size_t reduce_workspace_bytes(std::int64_t n);
void sum(const float* x, std::int64_t n, float* out, void* workspace, std::size_t workspace_bytes,
         cudaStream_t stream);
void sum_squares(const float* x, std::int64_t n, float* out, void* workspace,
                 std::size_t workspace_bytes, cudaStream_t stream);
void count_nonfinite(const void* x, DType dtype, std::int64_t n, std::int32_t* out,
                     void* workspace, std::size_t workspace_bytes, cudaStream_t stream);
}  // namespace kestrel::cuda
