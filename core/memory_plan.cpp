#include "kestrel/core/memory_plan.h"

#include <algorithm>
#include <numeric>
#include <utility>

#include "kestrel/core/error.h"

namespace kestrel {
namespace {
bool lifetimes_overlap(const BufferRequest& a, const BufferRequest& b) {
  return a.first_step <= b.last_step && b.first_step <= a.last_step;
}
std::size_t align_up(std::size_t v, std::size_t a) { return (v + a - 1) / a * a; }
}  // namespace

MemoryPlan plan_memory(const std::vector<BufferRequest>& requests, std::size_t alignment) {
  KESTREL_CHECK(alignment > 0 && (alignment & (alignment - 1)) == 0,
                "plan_memory: alignment must be a power of two, got ", alignment);
  for (std::size_t i = 0; i < requests.size(); ++i) {
    KESTREL_CHECK(requests[i].first_step >= 0, "plan_memory: request ", i, " starts at step ",
                  requests[i].first_step, "; steps are numbered from 0");
    KESTREL_CHECK(requests[i].last_step >= requests[i].first_step, "plan_memory: request ", i,
                  " ends (step ", requests[i].last_step, ") before it starts (step ",
                  requests[i].first_step, ")");
  }
  MemoryPlan plan;
  plan.offsets.assign(requests.size(), 0);
  std::vector<std::size_t> order(requests.size());
  std::iota(order.begin(), order.end(), 0);
  // Largest first; ties by earlier start so the result does not depend on sort stability.
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    if (requests[a].bytes != requests[b].bytes) return requests[a].bytes > requests[b].bytes;
    if (requests[a].first_step != requests[b].first_step)
      return requests[a].first_step < requests[b].first_step;
    return a < b;
  });
  struct Placed {
    std::size_t begin, end;
    std::size_t index;
  };
  std::vector<Placed> placed;
  std::vector<Placed> conflicts;
  for (std::size_t idx : order) {
    const BufferRequest& r = requests[idx];
    plan.total_bytes += r.bytes;
    const std::size_t size = align_up(std::max<std::size_t>(r.bytes, 1), alignment);
    conflicts.clear();
    for (const Placed& p : placed)
      if (lifetimes_overlap(r, requests[p.index])) conflicts.push_back(p);
    std::sort(conflicts.begin(), conflicts.end(),
              [](const Placed& a, const Placed& b) { return a.begin < b.begin; });
    // Lowest gap between conflicting buffers that fits.
    std::size_t offset = 0;
    for (const Placed& p : conflicts) {
      if (offset + size <= p.begin) break;
      offset = std::max(offset, align_up(p.end, alignment));
    }
    plan.offsets[idx] = offset;
    placed.push_back({offset, offset + size, idx});
    plan.arena_bytes = std::max(plan.arena_bytes, offset + size);
  }
  // The most bytes alive at once: a sweep over the starts and ends (each end one past the last
  // step), ends before starts at the same step. Its cost depends on the number of requests only,
  // not on how large the step numbers are.
  std::vector<std::pair<std::int64_t, std::int64_t>> events;  // (step, +bytes or -bytes)
  events.reserve(2 * requests.size());
  for (const BufferRequest& r : requests) {
    events.emplace_back(r.first_step, static_cast<std::int64_t>(r.bytes));
    events.emplace_back(static_cast<std::int64_t>(r.last_step) + 1, -static_cast<std::int64_t>(r.bytes));
  }
  std::sort(events.begin(), events.end());
  std::int64_t running = 0;
  for (const auto& e : events) {
    running += e.second;
    plan.live_peak_bytes = std::max(plan.live_peak_bytes, static_cast<std::size_t>(running));
  }
  return plan;
}

bool plan_is_valid(const std::vector<BufferRequest>& requests, const MemoryPlan& plan) {
  if (plan.offsets.size() != requests.size()) return false;
  for (std::size_t i = 0; i < requests.size(); ++i) {
    if (plan.offsets[i] + requests[i].bytes > plan.arena_bytes) return false;
    for (std::size_t j = i + 1; j < requests.size(); ++j) {
      if (!lifetimes_overlap(requests[i], requests[j])) continue;
      if (requests[i].bytes == 0 || requests[j].bytes == 0) continue;
      const std::size_t a0 = plan.offsets[i], a1 = a0 + requests[i].bytes;
      const std::size_t b0 = plan.offsets[j], b1 = b0 + requests[j].bytes;
      if (a0 < b1 && b0 < a1) return false;
    }
  }
  return true;
}

}  // namespace kestrel
