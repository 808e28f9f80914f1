#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "kestrel/core/allocator.h"
#include "kestrel/core/error.h"

namespace kestrel {

void* CpuAllocator::allocate(std::size_t bytes, StreamHandle) {
  if (bytes == 0) return nullptr;
  constexpr std::size_t kAlign = 64;
  const std::size_t rounded = (bytes + kAlign - 1) / kAlign * kAlign;
  void* p = rounded >= bytes ? std::aligned_alloc(kAlign, rounded) : nullptr;
  std::lock_guard<std::mutex> lock(mutex_);
  if (p == nullptr) {
    ++stats_.ooms;
    throw OutOfMemoryError(detail::concat("out of host memory: requested ", bytes,
                                          " bytes; this allocator holds ", stats_.current_bytes,
                                          " bytes in use"),
                           bytes, 0, detail::short_file(__FILE__), __LINE__);
  }
  try {
    sizes_.emplace(p, rounded);
  } catch (...) {  // the bookkeeping could not allocate: the block is not handed out
    std::free(p);
    throw;
  }
  ++stats_.allocations;
  ++stats_.backend_allocations;
  stats_.current_bytes += rounded;
  stats_.reserved_bytes += rounded;
  stats_.peak_bytes = std::max(stats_.peak_bytes, stats_.current_bytes);
  stats_.peak_reserved_bytes = std::max(stats_.peak_reserved_bytes, stats_.reserved_bytes);
  return p;
}

void CpuAllocator::deallocate(void* p) noexcept {
  if (p == nullptr) return;
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = sizes_.find(p);
  if (it == sizes_.end()) {
    std::fprintf(stderr, "kestrel: CPU deallocate of a pointer it does not own (%p)\n", p);
    return;
  }
  stats_.current_bytes -= it->second;
  stats_.reserved_bytes -= it->second;
  sizes_.erase(it);
  std::free(p);
}

AllocatorStats CpuAllocator::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

void CpuAllocator::reset_peak() {
  std::lock_guard<std::mutex> lock(mutex_);
  stats_.peak_bytes = stats_.current_bytes;
  stats_.peak_reserved_bytes = stats_.reserved_bytes;
}

std::shared_ptr<Allocator> cpu_allocator() {
  static const std::shared_ptr<Allocator> instance = std::make_shared<CpuAllocator>();
  return instance;
}

}  // namespace kestrel
