// The CPU twins of the fills against their documented conventions, element by element: which
// Philox word feeds which element (kernels/fill_math.h) and the Box-Muller formula, written out in
// double. The moments tests (test_tensor.cpp) cannot see a swapped or shared lane: found by
// mutation testing. Philox itself is checked against Random123's known-answer vectors
// (test_philox.cpp).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "kestrel/core/error.h"
#include "kestrel/kernels/cpu/fill.h"
#include "kestrel/kernels/philox.h"
#include "test_support.h"

using kestrel::DType;

namespace {
// The documented uniform of a Philox word, in double: ((w >> 8) + 1) * 2^-24, in (0, 1].
double u_of(std::uint32_t w) { return (static_cast<double>(w >> 8) + 1.0) * 0x1p-24; }
}  // namespace

// fill_normal, element by element, against the documented convention written out in double:
// element i uses words 2 (i % 2), 2 (i % 2) + 1 of block i / 2, z = sqrt(-2 ln u1) cos(2 pi u2).
TEST(CpuFill, NormalFollowsTheDocumentedBoxMullerLanes) {
  const std::int64_t n = 1001;
  const std::uint64_t seed = 3, offset = 5;
  const float mean = 0.5f, stddev = 2.f;
  std::vector<float> y(n);
  kestrel::cpu::fill_normal(y.data(), DType::kFloat32, n, seed, offset, mean, stddev);
  std::vector<double> ref(n);
  for (std::int64_t i = 0; i < n; ++i) {
    const kestrel::Philox4x32 b = kestrel::philox_block(seed, offset, static_cast<std::uint64_t>(i / 2));
    const int lane = static_cast<int>(i % 2) * 2;
    const double u1 = u_of(b.x[lane]), u2 = u_of(b.x[lane + 1]);
    ref[i] = mean + stddev * std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * 3.14159265358979323846 * u2);
  }
  // fp32 logf/cosf and the fp32 angle: a few 1e-6 absolute at |z| <= 6.
  EXPECT_TRUE(kestrel::testing::all_close(y, ref, 2e-5, 2e-6));
}

// fill_uniform against its documented convention: element i is word i % 4 of block i / 4.
TEST(CpuFill, UniformFollowsTheDocumentedLanes) {
  const std::int64_t n = 1003;
  const std::uint64_t seed = 9, offset = 2;
  std::vector<float> y(n);
  kestrel::cpu::fill_uniform(y.data(), DType::kFloat32, n, seed, offset, -1.5f, 2.5f);
  std::vector<double> ref(n);
  for (std::int64_t i = 0; i < n; ++i) {
    const kestrel::Philox4x32 b = kestrel::philox_block(seed, offset, static_cast<std::uint64_t>(i / 4));
    ref[i] = -1.5 + 4.0 * u_of(b.x[i % 4]);
  }
  EXPECT_TRUE(kestrel::testing::all_close(y, ref, 1e-6, 1e-6));
}

// The degenerate parameters are valid: uniform on [lo, lo] and normal with stddev 0 both give the
// constant (fma(0, u, lo) = lo and mean + 0 * z = mean: z is finite, u > 0) for every element.
TEST(CpuFill, AOnePointUniformRangeAndAZeroStddevGiveTheConstant) {
  const std::int64_t n = 37;
  std::vector<float> y(n, -9.f);
  kestrel::cpu::fill_uniform(y.data(), DType::kFloat32, n, 5, 1, 0.75f, 0.75f);
  EXPECT_EQ(y, std::vector<float>(n, 0.75f));
  std::fill(y.begin(), y.end(), -9.f);
  kestrel::cpu::fill_normal(y.data(), DType::kFloat32, n, 5, 1, -0.25f, 0.f);
  EXPECT_EQ(y, std::vector<float>(n, -0.25f));
  // The strict bounds stay refused.
  EXPECT_THROW(kestrel::cpu::fill_uniform(y.data(), DType::kFloat32, n, 5, 1, 0.75f, 0.5f), kestrel::Error);
  EXPECT_THROW(kestrel::cpu::fill_normal(y.data(), DType::kFloat32, n, 5, 1, 0.f, -1e-6f), kestrel::Error);
}
