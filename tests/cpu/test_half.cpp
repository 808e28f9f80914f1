// bf16 / fp16 conversions: hand-checked bit patterns, then exhaustive and randomised checks
// against independent references (the compiler's _Float16 and a double-precision
// nearest-value search).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>

#include "kestrel/core/half.h"

using kestrel::bf16_bits_from_float;
using kestrel::bits_float;
using kestrel::float_bits;
using kestrel::float_from_bf16_bits;
using kestrel::float_from_fp16_bits;
using kestrel::fp16_bits_from_float;

TEST(Bf16, HandCheckedBitPatterns) {
  struct Case { std::uint32_t f; std::uint16_t b; const char* why; };
  const Case cases[] = {
      {0x3F800000u, 0x3F80u, "1.0 exact"},
      {0xC0000000u, 0xC000u, "-2.0 exact"},
      {0x3F808000u, 0x3F80u, "1 + 2^-8: tie, 0x3F80 is even"},
      {0x3F818000u, 0x3F82u, "1 + 3*2^-8: tie, rounds up to even 0x3F82"},
      {0x3F808001u, 0x3F81u, "just above the tie rounds up"},
      {0x3F807FFFu, 0x3F80u, "just below the tie rounds down"},
      {0x7F7FFFFFu, 0x7F80u, "FLT_MAX overflows to +inf"},
      {0x7F800000u, 0x7F80u, "+inf stays inf"},
      {0xFF800000u, 0xFF80u, "-inf stays -inf"},
      {0x7FC00000u, 0x7FFFu, "quiet NaN becomes the canonical NaN"},
      {0x7F800001u, 0x7FFFu, "signalling NaN with low payload: the canonical NaN"},
      {0xFFC12345u, 0x7FFFu, "negative NaN with a payload: the canonical NaN (sign dropped)"},
      {0x00000001u, 0x0000u, "smallest float subnormal rounds to +0"},
      {0x00018000u, 0x0002u, "subnormal tie rounds to even"},
      {0x80000000u, 0x8000u, "-0 keeps its sign"},
  };
  for (const Case& c : cases) EXPECT_EQ(bf16_bits_from_float(bits_float(c.f)), c.b) << c.why;
}

TEST(Bf16, RoundTripOfEveryBf16IsExact) {
  for (std::uint32_t b = 0; b < 0x10000u; ++b) {
    const float f = float_from_bf16_bits(static_cast<std::uint16_t>(b));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(float_from_bf16_bits(bf16_bits_from_float(f))));
      continue;
    }
    ASSERT_EQ(bf16_bits_from_float(f), b) << std::hex << "bf16 0x" << b;
  }
}

// Independent reference: pick the nearer of the two bf16 neighbours in double precision,
// ties to the even one.
static std::uint16_t bf16_reference(float f) {
  const std::uint32_t u = float_bits(f);
  const std::uint16_t lo = static_cast<std::uint16_t>(u >> 16);
  const std::uint16_t hi = static_cast<std::uint16_t>(lo + 1);
  const double x = f, a = float_from_bf16_bits(lo);
  // The upper neighbour may be infinity; treat its value as the next binade step.
  double b = float_from_bf16_bits(hi);
  if (std::isinf(b)) b = std::ldexp(1.0, 128) * (f < 0 ? -1 : 1);
  const double da = std::fabs(x - a), db = std::fabs(b - x);
  if (da < db) return lo;
  if (db < da) return hi;
  return (lo & 1u) ? hi : lo;
}

TEST(Bf16, MatchesNearestEvenReferenceOnRandomFloats) {
  std::mt19937 rng(1234);
  int checked = 0;
  for (int i = 0; i < 2000000; ++i) {
    const float f = bits_float(rng());
    if (std::isnan(f) || std::isinf(f)) continue;
    const std::uint16_t b = bf16_reference(f);
    ASSERT_EQ(bf16_bits_from_float(f), b) << std::hex << float_bits(f);
    // The typed wrappers: to_bf16, round_to_bf16, and the way back (bf16 is a float's top half).
    ASSERT_EQ(kestrel::to_bf16(f).bits, b) << std::hex << float_bits(f);
    ASSERT_EQ(float_bits(kestrel::round_to_bf16(f)), static_cast<std::uint32_t>(b) << 16) << std::hex << float_bits(f);
    ASSERT_EQ(float_bits(kestrel::to_float(kestrel::bfloat16{b})), static_cast<std::uint32_t>(b) << 16);
    ++checked;
  }
  EXPECT_GT(checked, 1900000);
  // A value that is not a bf16 value is changed by round_to_bf16 (1 + 2^-8 + 2^-19 rounds up).
  EXPECT_EQ(kestrel::round_to_bf16(bits_float(0x3F808010u)), bits_float(0x3F810000u));
}

TEST(Fp16, HandCheckedBitPatterns) {
  struct Case { float f; std::uint16_t h; const char* why; };
  const Case cases[] = {
      {1.0f, 0x3C00u, "1.0"},
      {-2.0f, 0xC000u, "-2.0"},
      {0.1f, 0x2E66u, "0.1 (0x3DCCCCCD) rounds to 0x2E66"},
      {65504.f, 0x7BFFu, "largest finite fp16"},
      {65519.f, 0x7BFFu, "below the overflow midpoint"},
      {65520.f, 0x7C00u, "the midpoint rounds to even: +inf"},
      {std::ldexp(1.f, -14), 0x0400u, "smallest normal"},
      {std::ldexp(1.f, -24), 0x0001u, "smallest subnormal"},
      {std::ldexp(1.f, -25), 0x0000u, "half the smallest subnormal: tie to even zero"},
      {std::ldexp(1.5f, -25), 0x0001u, "above half the smallest subnormal"},
      {std::ldexp(1.5f, -24), 0x0002u, "subnormal tie 1.5 ulp rounds to even 2"},
      {bits_float(0x3F801000u), 0x3C00u, "1 + 2^-11: tie to even"},
      {bits_float(0x3F803000u), 0x3C02u, "1 + 3*2^-11: tie to even upwards"},
      {-0.0f, 0x8000u, "-0"},
      {INFINITY, 0x7C00u, "+inf"},
  };
  for (const Case& c : cases) EXPECT_EQ(fp16_bits_from_float(c.f), c.h) << c.why;
  // Every NaN becomes the canonical 0x7FFF, as NVIDIA's cvt.rn.f16.f32 gives.
  for (std::uint32_t nan : {0x7FC00000u, 0x7F800001u, 0xFFC12345u, 0xFFFFFFFFu})
    EXPECT_EQ(fp16_bits_from_float(bits_float(nan)), 0x7FFFu) << std::hex << nan;
}

// The pair conversions on hand-checked words: the first value lands in the low half (the lower
// address), each half rounded as the scalar conversion does. The device form (one cvt.rn.*x2
// instruction, whose operand order decides the halves) is compared with the host bit for bit by
// CudaElementwise.CastsMatchTheCpuTwinBitForBit, whose 16-byte stores use it.
TEST(Half, PairConversionsPutTheFirstValueInTheLowHalf) {
  EXPECT_EQ(kestrel::bf16x2_bits_from_floats(1.0f, -2.0f), 0xC0003F80u);
  EXPECT_EQ(kestrel::bf16x2_bits_from_floats(bits_float(0x3F808001u), NAN), 0x7FFF3F81u);
  EXPECT_EQ(kestrel::fp16x2_bits_from_floats(1.0f, -2.0f), 0xC0003C00u);
  EXPECT_EQ(kestrel::fp16x2_bits_from_floats(65520.f, 0.1f), 0x2E667C00u);
}

TEST(Fp16, RoundTripOfEveryFp16IsExact) {
  for (std::uint32_t h = 0; h < 0x10000u; ++h) {
    const float f = float_from_fp16_bits(static_cast<std::uint16_t>(h));
    if (std::isnan(f)) continue;
    ASSERT_EQ(fp16_bits_from_float(f), h) << std::hex << "fp16 0x" << h;
  }
}

#if defined(__FLT16_MAX__)
TEST(Fp16, MatchesCompilerFloat16OnRandomFloats) {
  std::mt19937 rng(99);
  for (int i = 0; i < 2000000; ++i) {
    // Bias towards the fp16 range so subnormals, normals and overflow are all hit.
    const float f = (i % 2) ? bits_float(rng()) : std::ldexp(static_cast<float>(rng()) / 4294967296.f, static_cast<int>(rng() % 44) - 28) * ((rng() & 1) ? 1.f : -1.f);
    if (std::isnan(f)) continue;
    const _Float16 ref = static_cast<_Float16>(f);
    std::uint16_t ref_bits;
    std::memcpy(&ref_bits, &ref, 2);
    ASSERT_EQ(fp16_bits_from_float(f), ref_bits) << "float bits 0x" << std::hex << float_bits(f);
    // The typed wrappers: to_fp16, and to_float widening as the compiler does.
    ASSERT_EQ(kestrel::to_fp16(f).bits, ref_bits) << "float bits 0x" << std::hex << float_bits(f);
    ASSERT_EQ(float_bits(kestrel::to_float(kestrel::float16{ref_bits})), float_bits(static_cast<float>(ref)))
        << std::hex << ref_bits;
  }
}
#endif

