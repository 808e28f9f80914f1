// Host buffers of fp32 / bf16 / fp16 elements for kernel tests: fill from floats (rounded to the
// dtype), read back as floats or as raw bits, and place element 0 at a deliberately misaligned
// address (`lead` spare elements in front) to exercise the kernels' unaligned paths.
#pragma once

#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "kestrel/core/dtype.h"
#include "kestrel/core/half.h"

namespace kestrel::testing {

// The storage dtypes the streaming kernels support.
inline constexpr DType kFloatingDtypes[] = {DType::kFloat32, DType::kBFloat16, DType::kFloat16};

class DtypeBuffer {
 public:
  DtypeBuffer(DType dtype, std::int64_t n, std::int64_t lead = 0)
      : dtype_(dtype),
        n_(n),
        lead_(lead),
        storage_((static_cast<std::size_t>(n + lead) * dtype_size(dtype) + 15) / 16 + 1) {}

  static DtypeBuffer from(const std::vector<float>& values, DType dtype, std::int64_t lead = 0) {
    DtypeBuffer b(dtype, static_cast<std::int64_t>(values.size()), lead);
    for (std::size_t i = 0; i < values.size(); ++i) b.set(static_cast<std::int64_t>(i), values[i]);
    return b;
  }

  DType dtype() const noexcept { return dtype_; }
  std::int64_t size() const noexcept { return n_; }
  std::int64_t lead() const noexcept { return lead_; }
  std::size_t nbytes() const noexcept { return static_cast<std::size_t>(n_) * dtype_size(dtype_); }
  // Element 0; the allocation itself is 16-byte aligned, so lead = 1 misaligns it.
  void* data() noexcept { return bytes() + lead_ * dtype_size(dtype_); }
  const void* data() const noexcept { return bytes() + lead_ * dtype_size(dtype_); }

  // Every byte of the allocation (lead and padding included): 0xFF makes an element a kernel
  // failed to write show (a NaN pattern, where zeros would pass for a dropped element).
  void fill_bytes(std::uint8_t b) { std::memset(storage_.data(), b, storage_.size() * sizeof(storage_[0])); }

  void set(std::int64_t i, float v) {
    if (dtype_ == DType::kFloat32) {
      std::memcpy(static_cast<char*>(data()) + 4 * i, &v, 4);
    } else {
      const std::uint16_t b =
          dtype_ == DType::kBFloat16 ? bf16_bits_from_float(v) : fp16_bits_from_float(v);
      std::memcpy(static_cast<char*>(data()) + 2 * i, &b, 2);
    }
  }
  std::uint32_t bits(std::int64_t i) const {
    if (dtype_ == DType::kFloat32) {
      std::uint32_t u;
      std::memcpy(&u, static_cast<const char*>(data()) + 4 * i, 4);
      return u;
    }
    std::uint16_t h;
    std::memcpy(&h, static_cast<const char*>(data()) + 2 * i, 2);
    return h;
  }
  float value(std::int64_t i) const {
    const std::uint32_t b = bits(i);
    if (dtype_ == DType::kFloat32) return bits_float(b);
    const auto h = static_cast<std::uint16_t>(b);
    return dtype_ == DType::kBFloat16 ? float_from_bf16_bits(h) : float_from_fp16_bits(h);
  }
  std::vector<float> values() const {
    std::vector<float> v(static_cast<std::size_t>(n_));
    for (std::int64_t i = 0; i < n_; ++i) v[static_cast<std::size_t>(i)] = value(i);
    return v;
  }
  std::vector<std::uint32_t> all_bits() const {
    std::vector<std::uint32_t> v(static_cast<std::size_t>(n_));
    for (std::int64_t i = 0; i < n_; ++i) v[static_cast<std::size_t>(i)] = bits(i);
    return v;
  }

 private:
  char* bytes() noexcept { return reinterpret_cast<char*>(storage_.data()); }
  const char* bytes() const noexcept { return reinterpret_cast<const char*>(storage_.data()); }

  struct alignas(16) Chunk {
    unsigned char b[16];
  };
  DType dtype_;
  std::int64_t n_;
  std::int64_t lead_;
  std::vector<Chunk> storage_;
};

// n uniform values in [lo, hi) from a fixed seed.
inline std::vector<float> random_floats(std::int64_t n, std::uint32_t seed, float lo, float hi) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(static_cast<std::size_t>(n));
  for (float& x : v) x = dist(gen);
  return v;
}

}  // namespace kestrel::testing
