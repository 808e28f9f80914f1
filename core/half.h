// 16-bit floating-point storage types and their conversions, shared by host and device code.
//
// bfloat16: 1 sign, 8 exponent, 7 mantissa bits (the top half of an IEEE float).
// float16:  1 sign, 5 exponent, 10 mantissa bits (IEEE binary16).
// float -> 16-bit conversions round to nearest, ties to even; overflow becomes infinity, fp16
// subnormals are produced exactly; every NaN becomes the canonical NaN 0x7FFF (sign and payload
// dropped), which is what NVIDIA's conversion instruction (cvt.rn) gives: NVIDIA's own host
// emulation of __float2bfloat16_rn / __float2half_rn in cuda_bf16.hpp / cuda_fp16.hpp returns
// 0x7FFF for NaN. 16-bit -> float is exact.
// Host code (the CPU reference) runs the bit manipulation below; device code for sm_80 and later
// runs the one hardware instruction, which defines the same function on every input (the CUDA
// suite compares the two bit for bit on random 32-bit patterns: every exponent, subnormals,
// infinities and NaNs).
// Leaf header: kernels/ may include it.
#pragma once

#include <cstdint>
#include <cstring>

#include "kestrel/core/hd.h"

namespace kestrel {

struct bfloat16 {
  std::uint16_t bits;
};
struct float16 {
  std::uint16_t bits;
};
static_assert(sizeof(bfloat16) == 2 && sizeof(float16) == 2, "16-bit storage types");

KESTREL_HD std::uint32_t float_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  std::uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
#endif
}

KESTREL_HD float bits_float(std::uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
#endif
}

// The canonical NaN of both 16-bit formats here.
constexpr std::uint16_t kCanonicalNan16 = 0x7fffu;

KESTREL_HD std::uint16_t bf16_bits_from_float(float f) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  std::uint16_t r;
  asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(r) : "f"(f));
  return r;
#else
  std::uint32_t u = float_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return kCanonicalNan16;
  u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest even; carries into the exponent on overflow
  return static_cast<std::uint16_t>(u >> 16);
#endif
}

// Two conversions in one 32-bit word, `lo` in the low half (the lower address): on the device
// one instruction for both.
KESTREL_HD std::uint32_t bf16x2_bits_from_floats(float lo, float hi) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  std::uint32_t r;
  asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));  // first source -> high half
  return r;
#else
  return static_cast<std::uint32_t>(bf16_bits_from_float(lo)) |
         (static_cast<std::uint32_t>(bf16_bits_from_float(hi)) << 16);
#endif
}

KESTREL_HD float float_from_bf16_bits(std::uint16_t b) {
  return bits_float(static_cast<std::uint32_t>(b) << 16);
}

KESTREL_HD bfloat16 to_bf16(float f) { return bfloat16{bf16_bits_from_float(f)}; }
KESTREL_HD float to_float(bfloat16 b) { return float_from_bf16_bits(b.bits); }

KESTREL_HD std::uint16_t fp16_bits_from_float(float f) {
#if defined(__CUDA_ARCH__)
  std::uint16_t r;
  asm("cvt.rn.f16.f32 %0, %1;" : "=h"(r) : "f"(f));
  return r;
#else
  const std::uint32_t u = float_bits(f);
  const std::uint32_t sign = (u >> 16) & 0x8000u;
  const std::uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return kCanonicalNan16;
  if (a >= 0x477ff000u) return static_cast<std::uint16_t>(sign | 0x7c00u);  // rounds to >= 65520
  if (a < 0x38800000u) {
    // Result is subnormal (or zero) in fp16: value = m * 2^-24 with m an integer below 1024.
    if (a < 0x33000000u) return static_cast<std::uint16_t>(sign);  // below half the smallest
    const std::uint32_t e = a >> 23;
    const std::uint32_t mant = (a & 0x7fffffu) | 0x800000u;
    const std::uint32_t shift = 126u - e;  // bits to drop so that the unit is 2^-24
    std::uint32_t m = mant >> shift;
    const std::uint32_t rem = mant & ((1u << shift) - 1u);
    const std::uint32_t half = 1u << (shift - 1u);
    if (rem > half || (rem == half && (m & 1u))) ++m;
    return static_cast<std::uint16_t>(sign | m);
  }
  // Normal: rebias the exponent (127 -> 15) and round 23 mantissa bits to 10.
  std::uint32_t h = ((a >> 13) - (112u << 10));
  const std::uint32_t rem = a & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;  // may carry into the exponent: fine
  return static_cast<std::uint16_t>(sign | h);
#endif
}

KESTREL_HD std::uint32_t fp16x2_bits_from_floats(float lo, float hi) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  std::uint32_t r;
  asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));  // first source -> high half
  return r;
#else
  return static_cast<std::uint32_t>(fp16_bits_from_float(lo)) |
         (static_cast<std::uint32_t>(fp16_bits_from_float(hi)) << 16);
#endif
}

KESTREL_HD float float_from_fp16_bits(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t exp = (h >> 10) & 0x1fu;
  const std::uint32_t mant = h & 0x3ffu;
  if (exp == 0x1fu) return bits_float(sign | 0x7f800000u | (mant << 13));
  if (exp != 0) return bits_float(sign | ((exp + 112u) << 23) | (mant << 13));
  if (mant == 0) return bits_float(sign);
  // Subnormal: mant * 2^-24, exact in float.
  const float v = static_cast<float>(mant) * 5.9604644775390625e-8f;
  return sign ? -v : v;
}

KESTREL_HD float16 to_fp16(float f) { return float16{fp16_bits_from_float(f)}; }
KESTREL_HD float to_float(float16 h) { return float_from_fp16_bits(h.bits); }

// Rounds a float to the nearest bf16 value and back: what storing to bf16 does to a value.
KESTREL_HD float round_to_bf16(float f) { return float_from_bf16_bits(bf16_bits_from_float(f)); }

}  // namespace kestrel
