// Test buffers in fp32 / bf16 storage: host buffers filled with fixed-seed random values (what a
// bf16 buffer holds is the bf16-rounded value, and values() returns exactly that), and a
// move-only device buffer for the CUDA suites. Header-only.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "kestrel/core/dtype.h"
#include "kestrel/core/half.h"

namespace kestrel::testing {

class HostBuffer {
 public:
  HostBuffer(DType dtype, std::size_t n) : dtype_(dtype), n_(n) {
    if (dtype == DType::kFloat32) f32_.assign(n, 0.f); else b16_.assign(n, 0);
  }
  DType dtype() const { return dtype_; }
  std::size_t size() const { return n_; }
  std::size_t bytes() const { return n_ * dtype_size(dtype_); }
  void* data() { return dtype_ == DType::kFloat32 ? static_cast<void*>(f32_.data()) : b16_.data(); }
  const void* data() const {
    return dtype_ == DType::kFloat32 ? static_cast<const void*>(f32_.data()) : b16_.data();
  }
  double get(std::size_t i) const {
    return dtype_ == DType::kFloat32 ? f32_[i] : float_from_bf16_bits(b16_[i]);
  }
  void set(std::size_t i, float v) {
    if (dtype_ == DType::kFloat32) f32_[i] = v; else b16_[i] = bf16_bits_from_float(v);
  }
  // Every element v: a kernel's output buffer pre-filled with a value it must overwrite.
  void fill(float v) {
    for (std::size_t i = 0; i < n_; ++i) set(i, v);
  }
  std::vector<double> values() const {
    std::vector<double> v(n_);
    for (std::size_t i = 0; i < n_; ++i) v[i] = get(i);
    return v;
  }

 private:
  DType dtype_;
  std::size_t n_;
  std::vector<float> f32_;
  std::vector<std::uint16_t> b16_;
};

inline HostBuffer random_buffer(DType dtype, std::size_t n, std::uint32_t seed, float lo = -1.f,
                                float hi = 1.f) {
  HostBuffer b(dtype, n);
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  for (std::size_t i = 0; i < n; ++i) b.set(i, dist(gen));
  return b;
}

// Device memory of `bytes`, `offset` bytes into a fresh 256-byte aligned allocation (so tests
// can hand kernels pointers that are not 16-byte aligned), freed on destruction. Copies are
// synchronous with the whole device on both sides, so kernels on any stream (also non-blocking
// ones, which do not wait for the legacy stream that cudaMemcpy uses) see uploads and are seen
// by downloads. The one device buffer of the CUDA suites.
class DeviceBuffer {
 public:
  explicit DeviceBuffer(std::size_t bytes, std::size_t offset = 0) : bytes_(bytes) {
    if (cudaMalloc(&base_, bytes + offset + 1) != cudaSuccess)
      throw std::runtime_error("cudaMalloc of " + std::to_string(bytes) + " bytes failed");
    p_ = static_cast<unsigned char*>(base_) + offset;
  }
  explicit DeviceBuffer(const HostBuffer& h) : DeviceBuffer(h.bytes()) { upload(h); }
  template <typename T>
  explicit DeviceBuffer(const std::vector<T>& host, std::size_t offset = 0)
      : DeviceBuffer(host.size() * sizeof(T), offset) {
    upload(host.data(), host.size() * sizeof(T));
  }
  ~DeviceBuffer() {
    if (base_ != nullptr) (void)cudaFree(base_);
  }
  DeviceBuffer(DeviceBuffer&& o) noexcept
      : base_(std::exchange(o.base_, nullptr)), p_(std::exchange(o.p_, nullptr)), bytes_(o.bytes_) {}
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(DeviceBuffer&&) = delete;

  void* get() const { return p_; }
  float* f32() const { return static_cast<float*>(p_); }
  std::size_t bytes() const { return bytes_; }
  template <typename T>
  T* as() const { return static_cast<T*>(p_); }
  void upload(const HostBuffer& h) { copy(p_, h.data(), h.bytes(), cudaMemcpyHostToDevice); }
  void upload(const void* src, std::size_t bytes) { copy(p_, src, bytes, cudaMemcpyHostToDevice); }
  template <typename T>
  void upload(const std::vector<T>& host) { upload(host.data(), host.size() * sizeof(T)); }
  void download(HostBuffer& h) const { copy(h.data(), p_, h.bytes(), cudaMemcpyDeviceToHost); }
  void download(void* dst, std::size_t bytes) const {
    copy(dst, p_, bytes, cudaMemcpyDeviceToHost);
  }
  // The whole buffer as elements of T.
  template <typename T>
  std::vector<T> download() const {
    std::vector<T> host(bytes_ / sizeof(T));
    download(host.data(), host.size() * sizeof(T));
    return host;
  }
  void fill_bytes(int value) {
    if (cudaDeviceSynchronize() != cudaSuccess || cudaMemset(p_, value, bytes_) != cudaSuccess ||
        cudaDeviceSynchronize() != cudaSuccess)
      throw std::runtime_error(std::string("cudaMemset failed: ") + cudaGetErrorString(cudaGetLastError()));
  }

 private:
  // The second synchronisation matters for uploads: a pageable host -> device cudaMemcpy may
  // return once the data is staged, before its DMA lands, and only the legacy stream is ordered
  // after that DMA; a kernel on a Context's non-blocking stream could read the old bytes.
  static void copy(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind kind) {
    if (bytes == 0) return;
    if (cudaDeviceSynchronize() != cudaSuccess || cudaMemcpy(dst, src, bytes, kind) != cudaSuccess ||
        cudaDeviceSynchronize() != cudaSuccess)
      throw std::runtime_error(std::string("cudaMemcpy failed: ") +
                               cudaGetErrorString(cudaGetLastError()));
  }
  void* base_ = nullptr;
  void* p_ = nullptr;
  std::size_t bytes_;
};

}  // namespace kestrel::testing
