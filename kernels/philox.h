// Philox4x32-10 counter-based RNG (Salmon et al., SC'11; constants from Random123's philox.h),
// one __host__ __device__ implementation for the CPU reference and the CUDA kernels, so both
// draw bit-identical numbers.
//
// Kestrel's stream convention: a random stream is (seed, offset). Element i of a call draws
// 32-bit word `i % 4` of philox4x32_10(counter, key) with
//   counter = {lo32(i / 4), hi32(i / 4), lo32(offset), hi32(offset)},  key = {lo32(seed), hi32(seed)}.
// One offset therefore addresses 2^66 words; a call consumes one offset value.
#pragma once

#include <math.h>

#include <cstdint>

#include "kestrel/core/hd.h"

namespace kestrel {

struct Philox4x32 {
  std::uint32_t x[4];
};

namespace philox_detail {
constexpr std::uint32_t kM0 = 0xD2511F53u;
constexpr std::uint32_t kM1 = 0xCD9E8D57u;
constexpr std::uint32_t kW0 = 0x9E3779B9u;  // golden ratio
constexpr std::uint32_t kW1 = 0xBB67AE85u;  // sqrt(3) - 1

KESTREL_HD void mulhilo(std::uint32_t a, std::uint32_t b, std::uint32_t& hi, std::uint32_t& lo) {
#if defined(__CUDA_ARCH__)
  lo = a * b;
  hi = __umulhi(a, b);
#else
  const std::uint64_t p = static_cast<std::uint64_t>(a) * b;
  lo = static_cast<std::uint32_t>(p);
  hi = static_cast<std::uint32_t>(p >> 32);
#endif
}

KESTREL_HD void round(std::uint32_t (&c)[4], std::uint32_t k0, std::uint32_t k1) {
  std::uint32_t hi0, lo0, hi1, lo1;
  mulhilo(kM0, c[0], hi0, lo0);
  mulhilo(kM1, c[2], hi1, lo1);
  const std::uint32_t n0 = hi1 ^ c[1] ^ k0;
  const std::uint32_t n2 = hi0 ^ c[3] ^ k1;
  c[0] = n0;
  c[1] = lo1;
  c[2] = n2;
  c[3] = lo0;
}
}  // namespace philox_detail

// The raw block function: 10 rounds, key bumped by the Weyl constants between rounds.
KESTREL_HD Philox4x32 philox4x32_10(std::uint32_t c0, std::uint32_t c1, std::uint32_t c2,
                                    std::uint32_t c3, std::uint32_t k0, std::uint32_t k1) {
  std::uint32_t c[4] = {c0, c1, c2, c3};
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
  for (int r = 0; r < 10; ++r) {
    if (r > 0) {
      k0 += philox_detail::kW0;
      k1 += philox_detail::kW1;
    }
    philox_detail::round(c, k0, k1);
  }
  return Philox4x32{{c[0], c[1], c[2], c[3]}};
}

// The offset a call draws from: *offset_ptr (device memory on CUDA, host memory on the CPU, read
// when the kernel runs, so a replayed CUDA Graph sees the step's value; null for none) + offset.
KESTREL_HD std::uint64_t stream_offset(std::uint64_t offset, const std::uint64_t* offset_ptr) {
  return (offset_ptr != nullptr ? *offset_ptr : 0) + offset;
}

// The four words of block `block` of stream (seed, offset); each caller maps its elements to
// blocks (uniform fill: 4 a block, normal fill: 2, dropout: 8).
KESTREL_HD Philox4x32 philox_block(std::uint64_t seed, std::uint64_t offset, std::uint64_t block) {
  return philox4x32_10(static_cast<std::uint32_t>(block), static_cast<std::uint32_t>(block >> 32),
                       static_cast<std::uint32_t>(offset), static_cast<std::uint32_t>(offset >> 32),
                       static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32));
}

// A 32-bit word mapped to a float in (0, 1]: the top 24 bits plus one, times 2^-24. Every
// value is exactly representable, 0 never occurs and 1 does, so "keep if u > p" keeps nothing
// at p = 1 and everything at p = 0.
KESTREL_HD float uniform_from_u32(std::uint32_t x) {
  return static_cast<float>((x >> 8) + 1u) * 5.9604644775390625e-8f;  // 2^-24
}

// Standard normal from two words (Box-Muller; uses the (0, 1] uniforms so log() is finite).
// Accurate to float rounding of logf/sinf/cosf, which may differ in the last bit between host
// and device libm: use it for initialisation, never where bit-identity matters.
KESTREL_HD float normal_from_u32(std::uint32_t a, std::uint32_t b) {
  const float u1 = uniform_from_u32(a);
  const float u2 = uniform_from_u32(b);
  const float r = sqrtf(-2.0f * logf(u1));
  return r * cosf(6.2831853071795864769f * u2);
}

}  // namespace kestrel
