// Philox4x32-10: Random123's published known-answer vectors, and the statistics of the
// (0, 1] uniform conversion.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "kestrel/kernels/philox.h"

using kestrel::philox4x32_10;
using kestrel::uniform_from_u32;

TEST(Philox, Random123KnownAnswerVectors) {
  // DEShawResearch/random123 tests/kat_vectors (philox4x32_10).
  struct Kat { std::uint32_t c[4]; std::uint32_t k[2]; std::uint32_t out[4]; };
  const Kat kats[] = {
      {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}},
      {{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}, {0xffffffffu, 0xffffffffu},
       {0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}},
      {{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}, {0xa4093822u, 0x299f31d0u},
       {0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}},
  };
  for (const Kat& k : kats) {
    const kestrel::Philox4x32 r = philox4x32_10(k.c[0], k.c[1], k.c[2], k.c[3], k.k[0], k.k[1]);
    for (int i = 0; i < 4; ++i) EXPECT_EQ(r.x[i], k.out[i]) << "word " << i;
  }
}

TEST(Philox, StreamLayoutPutsBlockInLowWordsAndOffsetInHighWords) {
  const std::uint64_t seed = 0x0123456789abcdefull, offset = 0xfedcba9876543210ull, block = 0x1111222233334444ull;
  const kestrel::Philox4x32 a = kestrel::philox_block(seed, offset, block);
  const kestrel::Philox4x32 b = philox4x32_10(0x33334444u, 0x11112222u, 0x76543210u, 0xfedcba98u,
                                              0x89abcdefu, 0x01234567u);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(a.x[i], b.x[i]);
}

TEST(Philox, UniformIsInHalfOpenUnitIntervalAtTheExtremes) {
  EXPECT_GT(uniform_from_u32(0u), 0.0f);
  EXPECT_EQ(uniform_from_u32(0u), std::ldexp(1.0f, -24));
  EXPECT_EQ(uniform_from_u32(0xffffffffu), 1.0f);
  EXPECT_LT(uniform_from_u32(0xfffffeffu), 1.0f);
}

TEST(Philox, UniformMeanAndChiSquareOn10MDraws) {
  constexpr std::int64_t kN = 10'000'000;
  constexpr int kBins = 100;
  std::vector<std::int64_t> counts(kBins, 0);
  double sum = 0.0;
  float lo = 1.f, hi = 0.f;
  for (std::int64_t i = 0; i < kN; i += 4) {
    const kestrel::Philox4x32 r = kestrel::philox_block(2026, 7, static_cast<std::uint64_t>(i / 4));
    for (int j = 0; j < 4; ++j) {
      const float u = uniform_from_u32(r.x[j]);
      lo = std::min(lo, u);
      hi = std::max(hi, u);
      sum += u;
      int bin = static_cast<int>(std::ceil(u * kBins)) - 1;  // (0,1] -> bins (k/100, (k+1)/100]
      counts[std::min(std::max(bin, 0), kBins - 1)]++;
    }
  }
  EXPECT_GT(lo, 0.f);
  EXPECT_LE(hi, 1.f);
  // Mean of U(0,1]: 1/2 (+2^-25 for the discrete grid); sd of the mean sqrt(1/12/N) ~ 9.1e-5.
  const double mean = sum / kN;
  EXPECT_NEAR(mean, 0.5, 5 * std::sqrt(1.0 / 12.0 / kN)) << "mean " << mean;
  double chi2 = 0.0;
  const double expected = static_cast<double>(kN) / kBins;
  for (std::int64_t c : counts) chi2 += (c - expected) * (c - expected) / expected;
  // 99 degrees of freedom: the 99.9th percentile of chi-square(99) is 148.2.
  EXPECT_LT(chi2, 148.2) << "chi-square " << chi2;
  EXPECT_GT(chi2, 59.0) << "chi-square " << chi2 << " is suspiciously small (0.1th percentile 62.3)";
}
