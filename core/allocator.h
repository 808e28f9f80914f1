// Allocators: an interface, an aligned CPU allocator, and a caching, stream-ordered device
// allocator whose bookkeeping is independent of CUDA (RawMemory is the only part that talks to
// the driver), so CPU tests exercise the same caching logic the GPU uses.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "kestrel/core/device.h"

struct CUstream_st;

namespace kestrel {

using StreamHandle = CUstream_st*;  // == cudaStream_t, without including the CUDA headers

struct AllocatorStats {
  std::size_t current_bytes = 0;        // handed out to users (size-class rounded)
  std::size_t peak_bytes = 0;           // maximum of current_bytes since the last reset_peak()
  std::size_t reserved_bytes = 0;       // obtained from the backend (in use + cached)
  std::size_t peak_reserved_bytes = 0;  // maximum of reserved_bytes since the last reset_peak()
  std::uint64_t allocations = 0;        // allocate() calls that succeeded
  std::uint64_t cache_hits = 0;         // ... of which were served from the cache
  std::uint64_t backend_allocations = 0;
  std::uint64_t ooms = 0;               // OutOfMemoryError raised
};

// Contract: allocate() returns memory for `bytes` (aligned to at least 256 bytes on CUDA and 64
// on the CPU) usable in stream order on `stream`, or raises OutOfMemoryError stating the
// requested and free bytes (or, on CUDA, the CudaError of a failure that is not one of memory;
// or std::bad_alloc when its own bookkeeping cannot grow, the block then given back); the
// allocator stays usable after the error. deallocate() never throws. A zero-byte request
// returns nullptr.
class Allocator {
 public:
  virtual ~Allocator() = default;
  virtual void* allocate(std::size_t bytes, StreamHandle stream) = 0;
  virtual void deallocate(void* p) noexcept = 0;
  virtual Device device() const noexcept = 0;
  virtual AllocatorStats stats() const = 0;
  virtual void reset_peak() = 0;
  // Returns unused cached memory to the backend (no-op for uncached allocators).
  virtual void release_cached() = 0;
};

// The driver-facing part of a caching allocator.
class RawMemory {
 public:
  virtual ~RawMemory() = default;
  // nullptr when the device is out of memory; raises for any other failure (e.g. a sticky error
  // of an earlier kernel), which must not be reported as out of memory.
  virtual void* raw_allocate(std::size_t bytes) = 0;
  virtual void raw_free(void* p) noexcept = 0;
  virtual std::size_t free_bytes() const noexcept = 0;  // as reported by the device
  virtual void synchronize() noexcept = 0;              // wait until all streams are idle
  virtual Device device() const noexcept = 0;
};

// Rounds a request up to its size class: multiples of 512 bytes below 1 MiB; above, four steps
// per power of two, each at most 2 MiB (waste below 25% and below 2 MiB a block).
std::size_t allocation_size_class(std::size_t bytes) noexcept;

// Caching allocator: freed blocks go to a free list keyed by (stream, size class) and are
// reused by later requests of the same class on the same stream without synchronisation
// (stream order makes that safe). Blocks used on another stream than the one they were
// allocated on must be synchronised by the caller before being freed. When the backend is out of
// memory, the cache is released (after synchronising) and the request retried once before
// OutOfMemoryError is raised; any other backend failure propagates as itself.
class CachingAllocator final : public Allocator {
 public:
  explicit CachingAllocator(std::unique_ptr<RawMemory> raw);
  ~CachingAllocator() override;
  CachingAllocator(const CachingAllocator&) = delete;
  CachingAllocator& operator=(const CachingAllocator&) = delete;

  void* allocate(std::size_t bytes, StreamHandle stream) override;
  void deallocate(void* p) noexcept override;
  Device device() const noexcept override { return raw_->device(); }
  AllocatorStats stats() const override;
  void reset_peak() override;
  void release_cached() override;

 private:
  struct Block {
    std::size_t size;
    StreamHandle stream;
  };
  using FreeKey = std::pair<StreamHandle, std::size_t>;
  struct FreeKeyHash {
    std::size_t operator()(const FreeKey& k) const noexcept {
      return std::hash<const void*>()(k.first) ^ (std::hash<std::size_t>()(k.second) * 31u);
    }
  };
  void release_cached_locked() noexcept;

  std::unique_ptr<RawMemory> raw_;
  mutable std::mutex mutex_;
  std::unordered_map<void*, Block> in_use_;
  std::unordered_map<FreeKey, std::vector<void*>, FreeKeyHash> free_;
  AllocatorStats stats_;
};

// Device memory through cudaMalloc/cudaFree on one device.
std::unique_ptr<RawMemory> make_cuda_raw_memory(Device device);
// A caching allocator for a CUDA device (raises kestrel::Error when the device does not exist).
std::shared_ptr<Allocator> make_cuda_allocator(Device device);

// 64-byte aligned host memory; not cached. Thread-safe.
class CpuAllocator final : public Allocator {
 public:
  void* allocate(std::size_t bytes, StreamHandle stream) override;
  void deallocate(void* p) noexcept override;
  Device device() const noexcept override { return Device::cpu(); }
  AllocatorStats stats() const override;
  void reset_peak() override;
  void release_cached() override {}

 private:
  mutable std::mutex mutex_;
  std::unordered_map<void*, std::size_t> sizes_;
  AllocatorStats stats_;
};

// The process-wide CPU allocator (stateless apart from its statistics, like malloc).
std::shared_ptr<Allocator> cpu_allocator();

}  // namespace kestrel
