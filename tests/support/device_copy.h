// Host <-> device copies of plain vectors for the CUDA kernel tests, through core's Tensor so
// memory comes from the context's allocator and every transfer names its stream.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "kestrel/core/context.h"
#include "kestrel/core/tensor.h"
#include "storage_buffer.h"

namespace kestrel::testing {

// A device buffer holding the bytes of `v` (at least one byte, so empty vectors work too).
template <typename T>
Tensor to_device(const std::vector<T>& v, Context& gpu) {
  std::vector<T> copy = v;
  if (copy.empty()) copy.resize(1);
  const Tensor host = Tensor::wrap(copy.data(), Shape{static_cast<std::int64_t>(copy.size() * sizeof(T))},
                                   DType::kUInt8, Device::cpu());
  Tensor d = host.to(gpu, gpu.stream());
  gpu.stream().synchronize();  // `copy` dies on return
  return d;
}

// Uninitialised device memory for `count` elements of T.
template <typename T>
Tensor device_buffer(std::int64_t count, Context& gpu) {
  return Tensor::empty(Shape{std::max<std::int64_t>(1, count * static_cast<std::int64_t>(sizeof(T)))},
                       DType::kUInt8, gpu);
}

// The first `count` elements of T held by device tensor `d` (waits for the stream).
template <typename T>
std::vector<T> to_host(const Tensor& d, std::int64_t count, Context& gpu) {
  std::vector<T> out(static_cast<std::size_t>(count));
  if (count == 0) return out;
  Tensor host = Tensor::wrap(out.data(), Shape{count * static_cast<std::int64_t>(sizeof(T))},
                             DType::kUInt8, Device::cpu());
  host.copy_from(d.narrow(0, 0, count * static_cast<std::int64_t>(sizeof(T))), gpu.stream());
  return out;
}

// The values of any floating tensor (host or device) as floats, copied on ctx's stream.
inline std::vector<float> host_floats(const Tensor& t, Context& ctx) {
  if (t.device().is_cpu()) return t.to_float_vector();
  Tensor h = Tensor::empty_cpu(t.shape(), t.dtype(), t.layout());
  h.copy_from(t, ctx.stream());
  return h.to_float_vector();
}

// Overwrites the start of device tensor `d` with `v` (in stream order on gpu.stream()).
template <typename T>
void copy_into(Tensor& d, const std::vector<T>& v, Context& gpu) {
  std::vector<T> copy = v;
  const std::int64_t bytes = static_cast<std::int64_t>(copy.size() * sizeof(T));
  const Tensor host = Tensor::wrap(copy.data(), Shape{bytes}, DType::kUInt8, Device::cpu());
  d.narrow(0, 0, bytes).copy_from(host, gpu.stream());
  gpu.stream().synchronize();  // `copy` dies on return
}

// Typed device pointer `shift` elements into d.
template <typename T>
T* device_ptr(const Tensor& d, std::int64_t shift = 0) {
  return static_cast<T*>(d.data()) + shift;
}

// A device copy of a StorageBuffer (including its spare element, for shifted pointers).
struct DeviceStorage {
  Tensor t;
  DType dtype;
  std::int64_t n;
  void* at(int shift = 0) const { return static_cast<char*>(t.data()) + shift * dtype_size(dtype); }
};
inline DeviceStorage upload(const StorageBuffer& b, Context& gpu) {
  return DeviceStorage{to_device(b.bytes(), gpu), b.dtype(), b.size()};
}
// The device contents back as a StorageBuffer (read it with the same shift as on the device).
inline StorageBuffer download(const DeviceStorage& d, Context& gpu) {
  StorageBuffer b(d.dtype, d.n);
  b.bytes() = to_host<std::uint8_t>(d.t, static_cast<std::int64_t>(b.nbytes()), gpu);
  return b;
}

}  // namespace kestrel::testing
