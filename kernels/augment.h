// CIFAR batch augmentation on the GPU: gather the shuffled batch from a device-resident uint8
// dataset, random crop with zero padding, horizontal flip, normalise, convert to fp32/bf16 in
// NCHW or NHWC. CPU twin: kernels/cpu/augment.h; parameters and formulas: kernels/augment_math.h.
//
// dataset: [num_images, 3, 32, 32] uint8 (CIFAR's planar RGB record layout). indices: [n] int32
// positions into it. labels_in: [num_images] uint8 (may be null when labels_out is null);
// labels_out: [n] int32 (may be null), the gathered labels. out: [n, 3, 32, 32] logically, stored
// as out_dtype (fp32, bf16 or fp16) in out_layout.
// Per image: pad with zeros (in uint8 space), crop 32x32 at the drawn shift, flip horizontally,
// then value = fmaf(v, 1 / (255 std_c), -mean_c / std_c) with the two constants computed once on
// the host, so the GPU and the CPU twin agree bit for bit.
// An index outside [0, num_images) cannot raise on the GPU and is never read: that image is NaN
// and its label -1, so the loss turns NaN and the trainer's non-finite check stops. (The CPU twin
// raises kestrel::Error naming the batch position.) n, pad (0..16), std > 0 are checked here.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kestrel/core/dtype.h"
#include "kestrel/core/layout.h"
#include "kestrel/kernels/augment_math.h"

namespace kestrel::cuda {
void augment_batch(const std::uint8_t* dataset, std::int64_t num_images,
                   const std::uint8_t* labels_in, const std::int32_t* indices, std::int64_t n,
                   void* out, DType out_dtype, Layout out_layout, std::int32_t* labels_out,
                   const AugmentParams& p, cudaStream_t stream);
}  // namespace kestrel::cuda
