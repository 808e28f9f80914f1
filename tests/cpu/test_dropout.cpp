// Dropout's CPU twin against the formula of kernels/dropout_math.h written out independently
// (per-element 16-bit half of a Philox word, float compare u > p), its statistics on 10M draws, the backward
// mask, offsets, eval modes, edge values of p and the error paths.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "dtype_buffer.h"
#include "kestrel/kernels/cpu/dropout.h"
#include "kestrel/kernels/dropout.h"
#include "kestrel/kernels/philox.h"
#include "test_support.h"

using kestrel::DropoutMode;
using kestrel::DropoutParams;
using kestrel::DType;
using kestrel::testing::DtypeBuffer;
using kestrel::testing::random_floats;

namespace {

// The contract, element by element: h_i = 16-bit half i % 2 (low first) of word (i % 8) / 2 of
// block i / 8, u_i = (h_i + 1) / 2^16 in (0, 1], keep = u > p (compared in double: exact);
// the realised keep probability k = 1 - floor(p * 2^16) / 2^16 sets the inverted scale 1 / k and
// the vanilla eval factor k.
std::vector<float> reference_forward(const DtypeBuffer& x, const DropoutParams& p) {
  const std::uint64_t offset = (p.offset_ptr ? *p.offset_ptr : 0) + p.offset;
  const bool inverted = p.mode == DropoutMode::kInverted;
  const double kept_steps = 65536.0 - std::floor(static_cast<double>(p.p) * 65536.0);
  const auto keep_probability = static_cast<float>(kept_steps / 65536.0);
  std::vector<float> y(static_cast<std::size_t>(x.size()));
  DtypeBuffer out(x.dtype(), 1);
  for (std::int64_t i = 0; i < x.size(); ++i) {
    float v;
    if (!p.training) {
      v = inverted ? x.value(i) : x.value(i) * keep_probability;
    } else {
      const auto block = kestrel::philox_block(p.seed, offset, static_cast<std::uint64_t>(i) / 8);
      const std::uint32_t word = block.x[(i % 8) / 2];
      const std::uint32_t h = i % 2 == 0 ? word & 0xffffu : word >> 16;
      const double u = (static_cast<double>(h) + 1.0) / 65536.0;
      const float scale = inverted ? static_cast<float>(65536.0 / kept_steps) : 1.0f;
      v = u > static_cast<double>(p.p) ? x.value(i) * scale : 0.0f;
    }
    out.set(0, v);  // round to the dtype as a store does
    y[static_cast<std::size_t>(i)] = out.value(0);
  }
  return y;
}

DtypeBuffer forward(const DtypeBuffer& x, const DropoutParams& p, std::int64_t lead = 0) {
  DtypeBuffer y(x.dtype(), x.size(), lead);
  y.fill_bytes(0xFF);  // an element the kernel does not write cannot pass for a dropped one
  kestrel::cpu::dropout_forward(x.data(), y.data(), x.size(), x.dtype(), p);
  return y;
}

// 4-sigma bound for a count of Bernoulli(q) successes out of n, as a fraction.
double four_sigma(double q, double n) { return 4.0 * std::sqrt(q * (1.0 - q) / n); }
}  // namespace

TEST(Dropout, ForwardFollowsTheContractForEveryDtypeSizeModeAndAlignment) {
  for (DType t : kestrel::testing::kFloatingDtypes) {
    for (std::int64_t n : {1, 3, 4, 7, 9, 1001}) {
      for (std::int64_t lead : {0, 1}) {
        for (float p : {0.1f, 0.5f, 0.9f}) {
          for (DropoutMode mode : {DropoutMode::kInverted, DropoutMode::kVanilla}) {
            const DtypeBuffer x = DtypeBuffer::from(random_floats(n, 7, -2.f, 2.f), t, lead);
            const DropoutParams d{p, mode, true, 99, 5};
            EXPECT_TRUE(
                kestrel::testing::bit_equal(forward(x, d, lead).values(), reference_forward(x, d)))
                << kestrel::dtype_name(t) << " n=" << n << " lead=" << lead << " p=" << p;
          }
        }
      }
    }
    const DtypeBuffer big = DtypeBuffer::from(random_floats(1000003, 8, -3.f, 3.f), t, 1);
    const DropoutParams d{0.3f, DropoutMode::kInverted, true, 0xfeedbeefcafe, 1ull << 40};
    EXPECT_TRUE(kestrel::testing::bit_equal(forward(big, d).values(), reference_forward(big, d)))
        << kestrel::dtype_name(t);
  }
}

TEST(Dropout, IntegerThresholdEqualsTheUniformComparisonForEveryHalfWord) {
  // keep(h) must equal (h + 1) / 2^16 > p for all 2^16 values of h.
  std::vector<float> ps = {0.f, 5.9604645e-8f, 1e-7f, 0.1f, 0.25f, 0.5f, 0.9f, 0.99999994f, 1.f};
  std::mt19937 gen(3);
  std::uniform_real_distribution<float> dist(0.f, 1.f);
  for (int k = 0; k < 200; ++k) ps.push_back(dist(gen));
  for (std::size_t pi = 0; pi < ps.size(); ++pi) {
    const float p = ps[pi];
    const std::uint32_t thr = kestrel::dropout_detail::keep_threshold(p);
    std::int64_t bad = 0;
    for (std::uint32_t h = 0; h < (1u << 16); ++h)
      bad += kestrel::dropout_detail::keep(h, thr) != ((h + 1.0) / 65536.0 > static_cast<double>(p));
    EXPECT_EQ(bad, 0) << "p=" << p;
    // The keep probability is 1 - p to within one step of 2^-16.
    EXPECT_NEAR(1.0 - thr / 65536.0, 1.0 - p, 1.0 / 65536.0) << "p=" << p;
  }
}

TEST(Dropout, KeptFractionOn10MIsWithin4SigmaOfOneMinusP) {
  constexpr std::int64_t kN = 10'000'000;
  DtypeBuffer x(DType::kFloat32, kN);
  for (std::int64_t i = 0; i < kN; ++i) x.set(i, 1.0f + static_cast<float>(i % 7));  // never 0
  DtypeBuffer y(DType::kFloat32, kN);
  for (float p : {0.1f, 0.5f, 0.9f}) {
    y.fill_bytes(0xFF);  // NaN: an unwritten element would count as kept
    kestrel::cpu::dropout_forward(x.data(), y.data(), kN, DType::kFloat32,
                                  DropoutParams{p, DropoutMode::kInverted, true, 42, 0});
    std::int64_t kept = 0;
    const float* v = static_cast<const float*>(y.data());
    for (std::int64_t i = 0; i < kN; ++i) kept += v[i] != 0.f;
    const double frac = static_cast<double>(kept) / kN;
    EXPECT_NEAR(frac, 1.0 - p, four_sigma(1.0 - p, kN)) << "p=" << p;
  }
}

TEST(Dropout, InvertedTrainingPreservesTheMeanAndVanillaScalesItByOneMinusP) {
  // E[y | x] = x (inverted) or (1 - p) x (vanilla); the sum's variance given x is
  // c^2 p (1 - p) sum x_i^2 with c = 1/(1-p) or 1. Bound: 4 standard deviations of the mean.
  constexpr std::int64_t kN = 1'000'000;
  const DtypeBuffer x = DtypeBuffer::from(random_floats(kN, 11, 0.5f, 1.5f), DType::kFloat32);
  double sum_x = 0, sum_x2 = 0;
  for (float v : x.values()) {
    sum_x += v;
    sum_x2 += static_cast<double>(v) * v;
  }
  for (float p : {0.1f, 0.5f, 0.9f}) {
    for (DropoutMode mode : {DropoutMode::kInverted, DropoutMode::kVanilla}) {
      const bool inv = mode == DropoutMode::kInverted;
      double sum_train = 0, sum_eval = 0;
      for (float v : forward(x, DropoutParams{p, mode, true, 5, 1}).values()) sum_train += v;
      for (float v : forward(x, DropoutParams{p, mode, false}).values()) sum_eval += v;
      const double c = inv ? 1.0 / (1.0 - p) : 1.0;
      const double expected = inv ? sum_x : (1.0 - p) * sum_x;
      const double bound = 4.0 * c * std::sqrt(p * (1.0 - p) * sum_x2) + 1e-5 * sum_x;
      EXPECT_NEAR(sum_train, expected, bound) << "p=" << p << " inverted=" << inv;
      // Eval output is the training expectation (to float rounding).
      EXPECT_NEAR(sum_eval, expected, 1e-5 * sum_x) << "p=" << p << " inverted=" << inv;
    }
  }
}

TEST(Dropout, InvertedIsVanillaTimesTheScaleWithTheSameMask) {
  const DtypeBuffer x = DtypeBuffer::from(random_floats(100003, 12, -4.f, 4.f), DType::kFloat32);
  for (float p : {0.2f, 0.7f}) {
    const auto inv = forward(x, DropoutParams{p, DropoutMode::kInverted, true, 77, 3}).values();
    const auto van = forward(x, DropoutParams{p, DropoutMode::kVanilla, true, 77, 3}).values();
    // 1 / (1 - q), q = floor(p * 2^16) / 2^16 the drop probability the 16-bit draws realise.
    const float scale = 65536.0f / (65536.0f - std::floor(p * 65536.0f));
    std::vector<float> expected(van.size());
    for (std::size_t i = 0; i < van.size(); ++i) expected[i] = van[i] * scale;
    EXPECT_TRUE(kestrel::testing::bit_equal(inv, expected)) << "p=" << p;
  }
}

TEST(Dropout, BackwardAppliesExactlyTheForwardMask) {
  constexpr std::int64_t kN = 200003;
  for (DType t : kestrel::testing::kFloatingDtypes) {
    for (DropoutMode mode : {DropoutMode::kInverted, DropoutMode::kVanilla}) {
      // Inputs bounded away from 0 so y == 0 means "dropped".
      std::vector<float> xs = random_floats(kN, 13, 0.25f, 2.f);
      std::vector<float> dys = random_floats(kN, 14, 0.25f, 2.f);
      for (std::int64_t i = 0; i < kN; i += 2) xs[i] = -xs[i];
      for (std::int64_t i = 0; i < kN; i += 3) dys[i] = -dys[i];
      const DtypeBuffer x = DtypeBuffer::from(xs, t), dy = DtypeBuffer::from(dys, t);
      const DropoutParams d{0.4f, mode, true, 2024, 9};
      const DtypeBuffer y = forward(x, d);
      DtypeBuffer dx(t, kN);
      dx.fill_bytes(0xFF);  // unwritten elements are NaN, not +0
      kestrel::cpu::dropout_backward(dy.data(), dx.data(), kN, t, d);
      std::vector<double> got, want;
      std::int64_t mask_mismatch = 0, dropped = 0;
      for (std::int64_t i = 0; i < kN; ++i) {
        if (y.value(i) == 0.f) {
          ++dropped;
          mask_mismatch += dx.value(i) != 0.f;
        } else {
          mask_mismatch += dx.value(i) == 0.f;
          got.push_back(dx.value(i));
          want.push_back(static_cast<double>(dy.value(i)) * y.value(i) / x.value(i));
        }
      }
      EXPECT_EQ(mask_mismatch, 0) << kestrel::dtype_name(t);
      EXPECT_GT(dropped, kN / 4) << "the test needs dropped elements";
      // dx = round(dy * s), y = round(x * s): y / x = s to 1 rounding of the dtype, so 3 eps.
      EXPECT_TRUE(kestrel::testing::all_close(got, want, 0.0, 3 * kestrel::dtype_eps(t)))
          << kestrel::dtype_name(t);
    }
  }
}

TEST(Dropout, ANewOffsetOrSeedDrawsAnIndependentMask) {
  constexpr std::int64_t kN = 1'000'000;
  const float p = 0.5f;
  const DtypeBuffer x = DtypeBuffer::from(random_floats(kN, 15, 1.f, 2.f), DType::kFloat32);
  const auto base = forward(x, DropoutParams{p, DropoutMode::kInverted, true, 10, 0}).values();
  for (const DropoutParams& other : {DropoutParams{p, DropoutMode::kInverted, true, 10, 1},
                                     DropoutParams{p, DropoutMode::kInverted, true, 11, 0}}) {
    const auto y = forward(x, other).values();
    std::int64_t differ = 0;
    for (std::int64_t i = 0; i < kN; ++i) differ += (base[i] == 0.f) != (y[i] == 0.f);
    // Independent masks disagree with probability 2 p (1 - p).
    const double q = 2.0 * p * (1.0 - p);
    EXPECT_NEAR(static_cast<double>(differ) / kN, q, four_sigma(q, kN));
  }
}

TEST(Dropout, OffsetPointerAddsToTheOffsetValue) {
  const DtypeBuffer x = DtypeBuffer::from(random_floats(4099, 16, -1.f, 1.f), DType::kBFloat16);
  std::uint64_t counter = 5;
  DropoutParams via_ptr{0.5f, DropoutMode::kInverted, true, 8, 3};
  via_ptr.offset_ptr = &counter;
  const auto a = forward(x, via_ptr).all_bits();
  EXPECT_EQ(a, forward(x, DropoutParams{0.5f, DropoutMode::kInverted, true, 8, 8}).all_bits());
  EXPECT_NE(a, forward(x, DropoutParams{0.5f, DropoutMode::kInverted, true, 8, 3}).all_bits());
  // The pointer is read at call time: advancing it changes the next mask.
  kestrel::cpu::advance_offset(&counter, 7);
  EXPECT_EQ(counter, 12u);
  EXPECT_EQ(forward(x, via_ptr).all_bits(),
            forward(x, DropoutParams{0.5f, DropoutMode::kInverted, true, 8, 15}).all_bits());
  EXPECT_THROW(kestrel::cpu::advance_offset(nullptr, 1), kestrel::Error);
}

TEST(Dropout, EvalModesAndTheEdgeValuesOfP) {
  for (DType t : kestrel::testing::kFloatingDtypes) {
    const DtypeBuffer x = DtypeBuffer::from(random_floats(1003, 17, -3.f, 3.f), t);
    const auto xb = x.all_bits();
    for (float p : {0.f, 0.3f, 1.f}) {
      EXPECT_EQ(forward(x, DropoutParams{p, DropoutMode::kInverted, false}).all_bits(), xb)
          << "eval identity";
    }
    for (float p : {0.f, 0.3f, 1.f}) {
      std::vector<double> want;
      // The realised keep probability 1 - floor(p * 2^16) / 2^16: the training expectation.
      const double keep = 1.0 - std::floor(static_cast<double>(p) * 65536.0) / 65536.0;
      for (float v : x.values()) want.push_back(static_cast<double>(v) * keep);
      EXPECT_TRUE(kestrel::testing::all_close(
          forward(x, DropoutParams{p, DropoutMode::kVanilla, false}).values(), want, 0.0,
          2 * kestrel::dtype_eps(t)))
          << kestrel::dtype_name(t) << " vanilla eval p=" << p;
    }
    for (DropoutMode mode : {DropoutMode::kInverted, DropoutMode::kVanilla}) {
      EXPECT_EQ(forward(x, DropoutParams{0.f, mode}).all_bits(), xb) << "p = 0 is the identity";
      const auto zeros = forward(x, DropoutParams{1.f, mode}).values();
      EXPECT_EQ(zeros, std::vector<float>(zeros.size(), 0.f)) << "p = 1 gives zeros";
      for (std::uint32_t b : forward(x, DropoutParams{1.f, mode}).all_bits())
        ASSERT_EQ(b, 0u) << "+0";
    }
  }
}

// A dropped element is +0 whatever x held (NaN, +-Inf, -0); a kept one is x times the scale
// (NaN stays NaN, Inf stays Inf with its sign), in every dtype, forward and backward.
TEST(Dropout, DroppedNaNsAndInfinitiesBecomePlusZeroAndKeptOnesStay) {
  const float specials[] = {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                            -std::numeric_limits<float>::infinity(), -0.f};
  const std::int64_t n = 4001;
  for (DType t : kestrel::testing::kFloatingDtypes) {
    DtypeBuffer x(t, n), ones(t, n);
    for (std::int64_t i = 0; i < n; ++i) {
      x.set(i, specials[i % 4]);
      ones.set(i, 1.f);
    }
    const DropoutParams d{0.5f, DropoutMode::kInverted, true, 12, 3};
    for (bool backward : {false, true}) {
      DtypeBuffer y(t, n), mask(t, n);
      y.fill_bytes(0xFF);  // a dropped element must be written as +0, not left alone
      mask.fill_bytes(0xFF);
      if (backward) {
        kestrel::cpu::dropout_backward(x.data(), y.data(), n, t, d);
      } else {
        kestrel::cpu::dropout_forward(x.data(), y.data(), n, t, d);
      }
      kestrel::cpu::dropout_forward(ones.data(), mask.data(), n, t, d);  // 2 kept, +0 dropped
      std::int64_t dropped = 0, wrong = 0;
      for (std::int64_t i = 0; i < n; ++i) {
        const float in = x.value(i), out = y.value(i);
        if (mask.value(i) == 0.f) {
          ++dropped;
          wrong += y.bits(i) != 0u;
        } else {
          wrong += std::isnan(in) ? !std::isnan(out) : out != in * 2.f || std::signbit(out) != std::signbit(in);
        }
      }
      EXPECT_EQ(wrong, 0) << kestrel::dtype_name(t) << " backward=" << backward;
      EXPECT_GT(dropped, n / 3);
      EXPECT_LT(dropped, 2 * n / 3);
    }
  }
}

TEST(Dropout, APartialLastBlockWritesNoElementPastTheEnd) {
  // n not a multiple of the 8 elements one Philox block covers: the last block is partial.
  // x and y hold 8 spare elements past n; the spare ys keep the 0xFF fill (never written) and
  // the first n match the reference. Forward and backward (the same map), every dtype.
  for (DType t : kestrel::testing::kFloatingDtypes) {
    for (std::int64_t n : {1, 7, 9, 13, 23}) {
      const DtypeBuffer x = DtypeBuffer::from(random_floats(n + 8, 31, 0.5f, 1.f), t);
      const DropoutParams d{0.5f, DropoutMode::kInverted, true, 77, 2};
      const std::vector<float> xs = x.values();
      const DtypeBuffer head = DtypeBuffer::from(std::vector<float>(xs.begin(), xs.begin() + n), t);
      const std::vector<float> want = reference_forward(head, d);
      for (bool backward : {false, true}) {
        DtypeBuffer y(t, n + 8);
        y.fill_bytes(0xFF);
        const std::uint32_t untouched = y.bits(n);
        if (backward) {
          kestrel::cpu::dropout_backward(x.data(), y.data(), n, t, d);
        } else {
          kestrel::cpu::dropout_forward(x.data(), y.data(), n, t, d);
        }
        for (std::int64_t i = 0; i < n; ++i) EXPECT_EQ(y.value(i), want[static_cast<std::size_t>(i)]) << i;
        for (std::int64_t i = n; i < n + 8; ++i)
          EXPECT_EQ(y.bits(i), untouched) << kestrel::dtype_name(t) << " n=" << n << " i=" << i;
      }
    }
  }
}

TEST(Dropout, InPlaceEqualsOutOfPlace) {
  for (DType t : kestrel::testing::kFloatingDtypes) {
    const DtypeBuffer x = DtypeBuffer::from(random_floats(777, 18, -1.f, 1.f), t);
    for (const DropoutParams& d : {DropoutParams{0.3f, DropoutMode::kInverted},
                                   DropoutParams{0.3f, DropoutMode::kVanilla, false}}) {
      DtypeBuffer inplace = x;
      kestrel::cpu::dropout_forward(inplace.data(), inplace.data(), x.size(), t, d);
      EXPECT_EQ(inplace.all_bits(), forward(x, d).all_bits()) << kestrel::dtype_name(t);
    }
  }
}

TEST(Dropout, InvalidArgumentsRaiseBeforeTouchingData) {
  const float bad_ps[] = {-0.01f, 1.01f, std::numeric_limits<float>::quiet_NaN(),
                          std::numeric_limits<float>::infinity(),
                          -std::numeric_limits<float>::infinity()};
  DtypeBuffer x(DType::kFloat32, 8), y(DType::kFloat32, 8);
  for (float p : bad_ps) {
    for (bool training : {true, false}) {
      const DropoutParams d{p, DropoutMode::kInverted, training};
      EXPECT_THROW(kestrel::validate_dropout(d), kestrel::Error) << p;
      EXPECT_THROW(kestrel::cpu::dropout_forward(x.data(), y.data(), 8, DType::kFloat32, d),
                   kestrel::Error)
          << p;
      EXPECT_THROW(kestrel::cpu::dropout_backward(x.data(), y.data(), 8, DType::kFloat32, d),
                   kestrel::Error)
          << p;
      // The CUDA launchers validate on the host before any CUDA call (runs without a GPU).
      EXPECT_THROW(
          kestrel::cuda::dropout_forward(x.data(), y.data(), 8, DType::kFloat32, d, nullptr),
          kestrel::Error)
          << p;
    }
  }
  const DropoutParams ok{0.5f, DropoutMode::kInverted};
  EXPECT_NO_THROW(kestrel::validate_dropout(ok));
  DropoutParams bad_mode = ok;
  bad_mode.mode = static_cast<DropoutMode>(7);
  EXPECT_THROW(kestrel::validate_dropout(bad_mode), kestrel::Error);
  EXPECT_THROW(kestrel::cpu::dropout_forward(x.data(), y.data(), 8, DType::kInt32, ok),
               kestrel::Error);
  EXPECT_THROW(kestrel::cpu::dropout_forward(x.data(), y.data(), -1, DType::kFloat32, ok),
               kestrel::Error);
  EXPECT_THROW(kestrel::cpu::dropout_forward(nullptr, y.data(), 8, DType::kFloat32, ok),
               kestrel::Error);
  EXPECT_THROW(kestrel::cuda::dropout_forward(x.data(), y.data(), 8, DType::kUInt8, ok, nullptr),
               kestrel::Error);
  EXPECT_THROW(kestrel::cuda::dropout_backward(x.data(), nullptr, 8, DType::kFloat32, ok, nullptr),
               kestrel::Error);
  EXPECT_THROW(kestrel::cuda::advance_offset(nullptr, 1, nullptr), kestrel::Error);
  EXPECT_NO_THROW(kestrel::cpu::dropout_forward(nullptr, nullptr, 0, DType::kFloat32, ok))
      << "n = 0";
}
