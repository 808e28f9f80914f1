// Whole-tensor sum, sum of squares and non-finite count (CPU twins) against closed forms and
// long-double references.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "kestrel/core/error.h"
#include "kestrel/kernels/cpu/reduce.h"
#include "storage_buffer.h"

using kestrel::DType;
using kestrel::testing::random_buffer;
using kestrel::testing::StorageBuffer;

TEST(CpuReduce, SumAndSumSquaresOfIntegersMatchClosedForms) {
  for (std::int64_t n : {1, 3, 7, 100003}) {
    std::vector<float> x(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) x[static_cast<std::size_t>(i)] = static_cast<float>(i + 1);
    float s = 0.f, q = 0.f;
    kestrel::cpu::sum(x.data(), n, &s, nullptr, 0);
    kestrel::cpu::sum_squares(x.data(), n, &q, nullptr, 0);
    const double nd = static_cast<double>(n);
    EXPECT_EQ(s, static_cast<float>(nd * (nd + 1) / 2)) << n;            // exact in double, one rounding
    EXPECT_EQ(q, static_cast<float>(nd * (nd + 1) * (2 * nd + 1) / 6)) << n;
  }
}

TEST(CpuReduce, SumAndSumSquaresOfRandomValuesMatchLongDouble) {
  for (std::int64_t n : {1, 1000, 1000003}) {
    for (int shift : {0, 1}) {
      const StorageBuffer x = random_buffer(DType::kFloat32, n, 401, -1.f, 1.f, shift);
      const float* p = static_cast<const float*>(x.data(shift));
      long double s = 0, q = 0, a = 0;
      for (std::int64_t i = 0; i < n; ++i) {
        s += p[i];
        q += static_cast<long double>(p[i]) * p[i];
        a += std::fabs(p[i]);
      }
      float gs = 0.f, gq = 0.f;
      kestrel::cpu::sum(p, n, &gs, nullptr, 0);
      kestrel::cpu::sum_squares(p, n, &gq, nullptr, 0);
      // Double accumulation then one rounding: within one fp32 rounding plus n * 2^-53 * sum|x|.
      const double e32 = kestrel::dtype_eps(DType::kFloat32);
      EXPECT_NEAR(gs, static_cast<double>(s), std::fabs(static_cast<double>(s)) * e32 + n * 1.2e-16 * static_cast<double>(a)) << n;
      EXPECT_NEAR(gq, static_cast<double>(q), static_cast<double>(q) * (e32 + n * 1.2e-16)) << n;
    }
  }
}

TEST(CpuReduce, EmptyInputGivesZero) {
  float s = 5.f, q = 5.f;
  std::int32_t c = 5;
  kestrel::cpu::sum(nullptr, 0, &s, nullptr, 0);
  kestrel::cpu::sum_squares(nullptr, 0, &q, nullptr, 0);
  kestrel::cpu::count_nonfinite(nullptr, DType::kBFloat16, 0, &c, nullptr, 0);
  EXPECT_EQ(s, 0.f);
  EXPECT_EQ(q, 0.f);
  EXPECT_EQ(c, 0);
}

TEST(CpuReduce, CountsNanAndInfButNotLargeOrSubnormalValues) {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = INFINITY;
  for (DType t : {DType::kFloat32, DType::kBFloat16, DType::kFloat16}) {
    const std::int64_t n = 1001;
    StorageBuffer x = random_buffer(t, n, 411, -100.f, 100.f);
    x.set(0, nan);
    x.set(17, inf);
    x.set(500, -inf);
    x.set(1000, -nan);
    // Finite extremes of each type are not counted.
    x.set(3, t == DType::kFloat16 ? 65504.f : 3.0e38f);
    x.set(4, t == DType::kFloat16 ? -6.0e-8f : 1.0e-40f);
    x.set(5, 0.f);
    if (t == DType::kFloat32) x.set(6, std::numeric_limits<float>::max());
    std::int32_t count = -1;
    kestrel::cpu::count_nonfinite(x.data(), t, n, &count, nullptr, 0);
    EXPECT_EQ(count, 4) << kestrel::dtype_name(t);
    // fp32 -> fp16 overflow is stored as inf and then counted.
    if (t == DType::kFloat16) {
      x.set(7, 70000.f);
      kestrel::cpu::count_nonfinite(x.data(), t, n, &count, nullptr, 0);
      EXPECT_EQ(count, 5);
    }
  }
}

TEST(CpuReduce, RejectsBadArguments) {
  float out = 0.f;
  std::int32_t c = 0;
  EXPECT_THROW(kestrel::cpu::sum(nullptr, -1, &out, nullptr, 0), kestrel::Error);
  EXPECT_THROW(kestrel::cpu::sum_squares(nullptr, -3, &out, nullptr, 0), kestrel::Error);
  EXPECT_THROW(kestrel::cpu::count_nonfinite(nullptr, DType::kInt32, 0, &c, nullptr, 0), kestrel::Error);
  // A count past int32 is CountNonfiniteRefusesACountPastInt32BeforeReading's (with a valid
  // pointer: a null one was refused for itself, so a check here could not fail).
}

TEST(CpuReduce, SumSquaresKeepsSquaresThatUnderflowFp32) {
  // x = 2^-75 (a normal float): x^2 = 2^-150 is half the smallest fp32 subnormal and rounds to 0
  // in fp32, but 2^20 of them sum to exactly 2^-130, an fp32 subnormal. The squares are summed
  // in double, so the result is exactly 2^-130 (the norm of tiny gradients is not lost).
  const std::int64_t n = std::int64_t{1} << 20;
  const std::vector<float> x(static_cast<std::size_t>(n), std::ldexp(1.f, -75));
  float q = -1.f;
  kestrel::cpu::sum_squares(x.data(), n, &q, nullptr, 0);
  EXPECT_EQ(q, std::ldexp(1.f, -130));
}

TEST(CpuReduce, CountNonfiniteRefusesACountPastInt32BeforeReading) {
  // A valid, non-null pointer: only the element count is wrong, and it is refused before any
  // element is read (2^31 elements would overflow the int32 result).
  const std::vector<float> x(16, 1.f);
  std::int32_t c = -1;
  EXPECT_THROW(kestrel::cpu::count_nonfinite(x.data(), DType::kFloat32, std::int64_t{1} << 31, &c, nullptr, 0),
               kestrel::Error);
  EXPECT_EQ(c, -1);
  kestrel::cpu::count_nonfinite(x.data(), DType::kFloat32, 16, &c, nullptr, 0);
  EXPECT_EQ(c, 0);
}
