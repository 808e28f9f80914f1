// Tensor fills on the GPU: constant, Philox uniform and normal. CPU twins: kernels/cpu/fill.h.
//
// uniform: out[i] = fma(hi - lo, u_i, lo), u_i = uniform_from_u32(word i % 4 of block i / 4 of
//          stream (seed, offset)); bit-identical on CPU and GPU (fma is correctly rounded).
// normal:  out[i] = mean + std * z_i, z_i = Box-Muller of words 2*(i%2), 2*(i%2)+1 of block
//          i / 2; host and device libm may differ in the last bit.
// `dtype` must be fp32, bf16 or fp16 (results are rounded to nearest even); raises
// kestrel::Error otherwise.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kestrel/core/dtype.h"

namespace kestrel::cuda {
void fill_constant(void* out, DType dtype, std::int64_t n, float value, cudaStream_t stream);
void fill_uniform(void* out, DType dtype, std::int64_t n, std::uint64_t seed, std::uint64_t offset,
                  float lo, float hi, cudaStream_t stream);
void fill_normal(void* out, DType dtype, std::int64_t n, std::uint64_t seed, std::uint64_t offset,
                 float mean, float stddev, cudaStream_t stream);
}  // namespace kestrel::cuda
