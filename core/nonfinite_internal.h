// Counting NaN/Inf values of a tensor on its context's backend: the executor's check_numerics
// debug mode and the trainer's gradient check share it (private header).
#pragma once

#include <cstdint>

#include "kestrel/core/context.h"
#include "kestrel/core/tensor.h"

namespace kestrel {

// Number of NaN/Inf values of a floating tensor on ctx's device (synchronises). `scratch` holds
// the reduction's workspace and result between calls and is grown as needed.
std::int64_t count_nonfinite(Context& ctx, const Tensor& x, Tensor& scratch);

}  // namespace kestrel
