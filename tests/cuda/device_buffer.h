// A device allocation for CUDA tests (RAII), with byte-level upload/download and an optional
// offset so tests can hand kernels pointers that are not 16-byte aligned.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "kestrel/core/cuda_check_internal.h"

namespace kestrel::testing {

class DeviceBuffer {
 public:
  // `bytes` usable bytes starting `offset` bytes into a fresh allocation (256-byte aligned).
  explicit DeviceBuffer(std::size_t bytes, std::size_t offset = 0) : bytes_(bytes) {
    KESTREL_CUDA_CHECK(cudaMalloc(&base_, bytes + offset + 1));
    data_ = static_cast<unsigned char*>(base_) + offset;
  }
  template <typename T>
  explicit DeviceBuffer(const std::vector<T>& host, std::size_t offset = 0)
      : DeviceBuffer(host.size() * sizeof(T), offset) {
    upload(host);
  }
  ~DeviceBuffer() { cudaFree(base_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  void* get() const noexcept { return data_; }
  float* f32() const noexcept { return static_cast<float*>(data_); }
  std::size_t bytes() const noexcept { return bytes_; }

  template <typename T>
  void upload(const std::vector<T>& host) {
    if (host.empty()) return;
    KESTREL_CUDA_CHECK(cudaMemcpy(data_, host.data(), host.size() * sizeof(T),
                                  cudaMemcpyHostToDevice));
  }
  // Synchronises the device first, so every queued kernel has finished.
  template <typename T>
  std::vector<T> download() const {
    KESTREL_CUDA_CHECK(cudaDeviceSynchronize());
    std::vector<T> host(bytes_ / sizeof(T));
    KESTREL_CUDA_CHECK(cudaMemcpy(host.data(), data_, host.size() * sizeof(T),
                                  cudaMemcpyDeviceToHost));
    return host;
  }
  // Synchronous: done when it returns, whichever stream the next kernel uses.
  void fill_bytes(int value) {
    KESTREL_CUDA_CHECK(cudaMemset(data_, value, bytes_));
    KESTREL_CUDA_CHECK(cudaDeviceSynchronize());
  }

 private:
  void* base_ = nullptr;
  void* data_ = nullptr;
  std::size_t bytes_;
};

}  // namespace kestrel::testing
