// DeviceGuard: makes `device` current for its lifetime and restores the previous device.
// A CPU device leaves the current CUDA device alone. Never throws.
#pragma once

#include <cuda_runtime.h>

#include "kestrel/core/device.h"

namespace kestrel {
class DeviceGuard {
 public:
  explicit DeviceGuard(const Device& d) noexcept {
    if (!d.is_cuda()) return;
    if (cudaGetDevice(&previous_) != cudaSuccess) {
      (void)cudaGetLastError();
      return;
    }
    if (previous_ != d.index) {
      changed_ = cudaSetDevice(d.index) == cudaSuccess;
      if (!changed_) (void)cudaGetLastError();
    }
  }
  ~DeviceGuard() {
    if (changed_) (void)cudaSetDevice(previous_);
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = -1;
  bool changed_ = false;
};
}  // namespace kestrel
