// Host test buffers of a storage dtype (fp32, bf16, fp16) with float access, filled with random
// values from a fixed seed. The values a kernel reads are the stored (rounded) ones: references
// are computed from at(i), never from the unrounded draws.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "kestrel/core/dtype.h"
#include "kestrel/kernels/element_io.h"

namespace kestrel::testing {

class StorageBuffer {
 public:
  StorageBuffer(DType dtype, std::int64_t n)
      : dtype_(dtype), n_(n), bytes_(static_cast<std::size_t>(n + 1) * dtype_size(dtype)) {}
  DType dtype() const { return dtype_; }
  std::int64_t size() const { return n_; }
  // `shift` elements in, for testing unaligned pointers (the buffer has one spare element).
  void* data(int shift = 0) { return bytes_.data() + shift * dtype_size(dtype_); }
  const void* data(int shift = 0) const { return bytes_.data() + shift * dtype_size(dtype_); }
  float at(std::int64_t i, int shift = 0) const { return element_io::load_float(data(shift), dtype_, i); }
  void set(std::int64_t i, float v, int shift = 0) { element_io::store_float(data(shift), dtype_, i, v); }
  std::vector<double> values(int shift = 0) const {
    std::vector<double> v(static_cast<std::size_t>(n_));
    for (std::int64_t i = 0; i < n_; ++i) v[static_cast<std::size_t>(i)] = at(i, shift);
    return v;
  }
  std::size_t nbytes() const { return bytes_.size(); }
  std::vector<std::uint8_t>& bytes() { return bytes_; }
  const std::vector<std::uint8_t>& bytes() const { return bytes_; }

 private:
  DType dtype_;
  std::int64_t n_;
  std::vector<std::uint8_t> bytes_;
};

// n values uniform in [lo, hi) from seed, stored as dtype (starting `shift` elements in).
inline StorageBuffer random_buffer(DType dtype, std::int64_t n, std::uint32_t seed, float lo,
                                   float hi, int shift = 0) {
  StorageBuffer b(dtype, n);
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  for (std::int64_t i = 0; i < n; ++i) b.set(i, dist(gen), shift);
  return b;
}

// n integers uniform in [lo, hi] from seed.
inline std::vector<std::int32_t> random_ints(std::int64_t n, std::uint32_t seed, std::int32_t lo,
                                             std::int32_t hi) {
  std::vector<std::int32_t> v(static_cast<std::size_t>(n));
  std::mt19937 gen(seed);
  std::uniform_int_distribution<std::int32_t> dist(lo, hi);
  for (auto& x : v) x = dist(gen);
  return v;
}

// n bytes uniform in 0..255 from seed.
inline std::vector<std::uint8_t> random_bytes(std::int64_t n, std::uint32_t seed) {
  const std::vector<std::int32_t> r = random_ints(n, seed, 0, 255);
  return std::vector<std::uint8_t>(r.begin(), r.end());
}

}  // namespace kestrel::testing
