// Memory planning: places buffers with known lifetimes in one arena so that buffers alive at
// the same time never share bytes, and buffers that are not alive together reuse memory.
//
// Contract: every request gets an offset aligned to `alignment`; for any two requests whose
// [first, last] step intervals intersect, their byte ranges [offset, offset + bytes) are
// disjoint; arena_bytes is the end of the highest placed buffer. Greedy by decreasing size,
// lowest fitting offset (the classic offline "greedy by size" placement). A zero-byte request is
// placed as if it held one byte: its offset lies inside the arena (a real address, never the
// arena's end), apart from the other requests live with it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace kestrel {

struct BufferRequest {
  std::size_t bytes = 0;
  int first_step = 0;  // step that writes it first
  int last_step = 0;   // last step that reads it (inclusive)
};

struct MemoryPlan {
  std::vector<std::size_t> offsets;  // one per request, in request order
  std::size_t arena_bytes = 0;
  std::size_t total_bytes = 0;       // sum of all requests (what no reuse would need)
  std::size_t live_peak_bytes = 0;   // most bytes alive at any one step: a lower bound for arena_bytes
};

// Raises kestrel::Error for a request with first_step < 0 or last_step < first_step, or a
// zero/non-power-of-two alignment.
MemoryPlan plan_memory(const std::vector<BufferRequest>& requests, std::size_t alignment = 256);

// True when no two simultaneously live requests overlap in the plan (used by tests, and by the
// executor after planning while CompileOptions::validate_plan is on, the default).
bool plan_is_valid(const std::vector<BufferRequest>& requests, const MemoryPlan& plan);

}  // namespace kestrel
