// Launch helpers shared by Kestrel's CUDA kernels.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "kestrel/core/cuda_check_internal.h"
#include "kestrel/core/error.h"
#include "kestrel/kernels/per_device_cache_internal.h"

namespace kestrel::cuda_detail {

// The current device's ordinal (cudaGetDevice).
int current_device();

// Multiprocessor count of device `dev` (a device property; cached per device).
int sm_count(int dev);
inline int sm_count() { return sm_count(current_device()); }

// Blocks for a grid-stride loop over `work_items` items with `threads` threads a block: as many
// as the work needs, at most `max_blocks`.
inline unsigned grid_within(std::int64_t work_items, int threads, std::int64_t max_blocks) {
  const std::int64_t needed = (work_items + threads - 1) / threads;
  return static_cast<unsigned>(std::max<std::int64_t>(1, std::min(needed, max_blocks)));
}

// Enough blocks to fill the current device several times over (8 a multiprocessor), never more
// than the work needs.
inline unsigned grid_for(std::int64_t work_items, int threads) {
  return grid_within(work_items, threads, static_cast<std::int64_t>(sm_count()) * 8);
}

// Host: raises unless `workspace` is a 16-byte aligned buffer; `fn` is the launcher, `size_fn`
// the function that sizes its workspace (both named in the message).
inline void check_workspace(const void* workspace, const char* fn, const char* size_fn) {
  KESTREL_CHECK(workspace != nullptr && reinterpret_cast<std::uintptr_t>(workspace) % 16 == 0, fn,
                ": workspace must be a 16-byte aligned buffer of ", size_fn, "() bytes");
}

}  // namespace kestrel::cuda_detail
