// CPU twins of the bias family (kernels/cpu/bias.h) against independent references: adds are
// bit-exact (one fp32 rounding, then the storage rounding), sums match double sums to fp32
// rounding; NCHW, NHWC and row-major, fp32 and bf16, odd and empty sizes; argument errors.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "bias_reference.h"
#include "kestrel/core/error.h"
#include "kestrel/kernels/cpu/bias.h"
#include "storage_test_util.h"
#include "test_support.h"

namespace {
using kestrel::DType;
using kestrel::Layout;
using kestrel::testing::HostBuffer;
using kestrel::testing::random_buffer;

struct Sizes {
  std::int64_t n, c, hw;
};
const Sizes kSizes[] = {{1, 1, 1}, {2, 3, 7}, {1, 16, 1}, {3, 5, 1027}, {7, 33, 4}, {1000, 10, 1},
                        {0, 4, 5}, {2, 4, 0}, {3, 0, 2}};

std::string describe(const Sizes& s, DType t, Layout l) {
  return std::string(kestrel::dtype_name(t)) + " " + kestrel::layout_name(l) + " n=" +
         std::to_string(s.n) + " c=" + std::to_string(s.c) + " hw=" + std::to_string(s.hw);
}

TEST(BiasCpu, ChannelAddIsExactInEveryLayoutAndDtype) {
  std::uint32_t seed = 1;
  for (const Sizes& s : kSizes)
    for (Layout l : {Layout::kNCHW, Layout::kNHWC})
      for (DType t : {DType::kFloat32, DType::kBFloat16}) {
        HostBuffer y = random_buffer(t, static_cast<std::size_t>(s.n * s.c * s.hw), seed++);
        const std::vector<float> bias = kestrel::testing::random_bias(s.c, seed++);
        const auto expected =
            kestrel::testing::ref_channel_bias_add(y.values(), bias, t, s.n, s.c, s.hw, l);
        kestrel::cpu::channel_bias_add(y.data(), bias.data(), t, s.n, s.c, s.hw, l);
        EXPECT_TRUE(kestrel::testing::all_close(y.values(), expected, 0.0, 0.0)) << describe(s, t, l);
      }
}

TEST(BiasCpu, RowAddIsTheNhwcCaseWithOnePixel) {
  std::uint32_t seed = 50;
  for (const Sizes& s : kSizes)
    for (DType t : {DType::kFloat32, DType::kBFloat16}) {
      const std::int64_t rows = s.n * s.hw, cols = s.c;
      HostBuffer y = random_buffer(t, static_cast<std::size_t>(rows * cols), seed++);
      const std::vector<float> bias = kestrel::testing::random_bias(cols, seed++);
      // Row-major [rows, cols]: element (i, j) gets bias[j].
      std::vector<double> expected = y.values();
      for (std::int64_t i = 0; i < rows; ++i)
        for (std::int64_t j = 0; j < cols; ++j) {
          const auto at = static_cast<std::size_t>(i * cols + j);
          const float sum = static_cast<float>(expected[at] + bias[static_cast<std::size_t>(j)]);
          expected[at] = t == DType::kFloat32 ? sum : kestrel::round_to_bf16(sum);
        }
      kestrel::cpu::bias_add_rows(y.data(), bias.data(), rows, cols, t);
      EXPECT_TRUE(kestrel::testing::all_close(y.values(), expected, 0.0, 0.0)) << describe(s, t, Layout::kNHWC);
    }
}

TEST(BiasCpu, ChannelBackwardSumsEveryElementOfTheChannel) {
  std::uint32_t seed = 100;
  for (const Sizes& s : kSizes)
    for (Layout l : {Layout::kNCHW, Layout::kNHWC})
      for (DType t : {DType::kFloat32, DType::kBFloat16}) {
        const HostBuffer dy = random_buffer(t, static_cast<std::size_t>(s.n * s.c * s.hw), seed++);
        std::vector<float> dbias(static_cast<std::size_t>(s.c), 123.f);  // overwritten
        kestrel::cpu::channel_bias_backward(dy.data(), dbias.data(), t, s.n, s.c, s.hw, l);
        const auto expected = kestrel::testing::ref_channel_sums(dy.values(), s.n, s.c, s.hw, l);
        EXPECT_TRUE(kestrel::testing::all_close(dbias, expected, 1e-12, std::ldexp(1.0, -23)))
            << describe(s, t, l);
      }
}

TEST(BiasCpu, RowBackwardSumsColumns) {
  const HostBuffer dy = random_buffer(DType::kBFloat16, 37 * 11, 7);
  std::vector<float> dbias(11, -1.f);
  kestrel::cpu::bias_backward_rows(dy.data(), dbias.data(), 37, 11, DType::kBFloat16);
  std::vector<double> expected(11, 0.0);
  for (int i = 0; i < 37; ++i)
    for (int j = 0; j < 11; ++j) expected[static_cast<std::size_t>(j)] += dy.get(static_cast<std::size_t>(i * 11 + j));
  EXPECT_TRUE(kestrel::testing::all_close(dbias, expected, 1e-12, std::ldexp(1.0, -23)));
}

TEST(BiasCpu, RejectsBadArguments) {
  std::vector<float> y(8), b(2);
  EXPECT_THROW(kestrel::cpu::bias_add_rows(y.data(), b.data(), -1, 2, DType::kFloat32), kestrel::Error);
  EXPECT_THROW(kestrel::cpu::bias_add_rows(y.data(), b.data(), 4, 2, DType::kFloat16), kestrel::Error);
  EXPECT_THROW(kestrel::cpu::bias_add_rows(y.data(), nullptr, 4, 2, DType::kFloat32), kestrel::Error);
  EXPECT_THROW(kestrel::cpu::bias_backward_rows(nullptr, b.data(), 4, 2, DType::kFloat32), kestrel::Error);
  EXPECT_THROW(kestrel::cpu::channel_bias_add(y.data(), b.data(), DType::kFloat32, 1, 2, -4, Layout::kNCHW),
               kestrel::Error);
  EXPECT_THROW(kestrel::cpu::channel_bias_backward(y.data(), b.data(), DType::kInt32, 1, 2, 4, Layout::kNHWC),
               kestrel::Error);
  EXPECT_THROW(kestrel::cpu::channel_bias_backward(y.data(), b.data(), DType::kFloat32, std::int64_t(1) << 40,
                                                   std::int64_t(1) << 20, std::int64_t(1) << 20, Layout::kNHWC),
               kestrel::Error);
  try {
    kestrel::cpu::bias_add_rows(y.data(), b.data(), 4, 2, DType::kFloat16);
  } catch (const kestrel::Error& e) {
    EXPECT_NE(std::string(e.what()).find("bias_add_rows"), std::string::npos) << e.what();
  }
}

}  // namespace
