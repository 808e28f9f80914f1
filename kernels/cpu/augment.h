// CPU twin of kernels/augment.h: same arguments, no stream; host pointers (p.offset_ptr too).
// Raises kestrel::Error naming the batch position for an index outside [0, num_images), before
// writing anything.
#pragma once

#include <cstdint>

#include "kestrel/core/dtype.h"
#include "kestrel/core/layout.h"
#include "kestrel/kernels/augment_math.h"

namespace kestrel::cpu {
void augment_batch(const std::uint8_t* dataset, std::int64_t num_images,
                   const std::uint8_t* labels_in, const std::int32_t* indices, std::int64_t n,
                   void* out, DType out_dtype, Layout out_layout, std::int32_t* labels_out,
                   const AugmentParams& p);
}  // namespace kestrel::cpu
