// The CUDA backend of the caching allocator: cudaMalloc/cudaFree on one device.
#include <cuda_runtime.h>

#include "kestrel/core/allocator.h"
#include "kestrel/core/cuda_check_internal.h"
#include "kestrel/core/device_guard_internal.h"

namespace kestrel {
namespace {
class CudaRawMemory final : public RawMemory {
 public:
  explicit CudaRawMemory(Device d) : device_(d) {}
  void* raw_allocate(std::size_t bytes) override {
    DeviceGuard guard(device_);
    void* p = nullptr;
    const cudaError_t e = cudaMalloc(&p, bytes);
    if (e == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();  // an allocation failure is not sticky: clear it
      return nullptr;
    }
    KESTREL_CUDA_CHECK(e);  // anything else (a sticky fault of an earlier launch) is no OOM
    return p;
  }
  void raw_free(void* p) noexcept override {
    DeviceGuard guard(device_);
    (void)cudaFree(p);
  }
  std::size_t free_bytes() const noexcept override {
    DeviceGuard guard(device_);
    std::size_t f = 0, t = 0;
    if (cudaMemGetInfo(&f, &t) != cudaSuccess) {
      (void)cudaGetLastError();
      return 0;
    }
    return f;
  }
  void synchronize() noexcept override {
    DeviceGuard guard(device_);
    (void)cudaDeviceSynchronize();
  }
  Device device() const noexcept override { return device_; }

 private:
  Device device_;
};
}  // namespace

std::unique_ptr<RawMemory> make_cuda_raw_memory(Device device) {
  require_device(device);
  return std::make_unique<CudaRawMemory>(device);
}

std::shared_ptr<Allocator> make_cuda_allocator(Device device) {
  return std::make_shared<CachingAllocator>(make_cuda_raw_memory(device));
}

}  // namespace kestrel
