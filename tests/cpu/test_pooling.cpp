// Global average pooling and 2x2 max pooling (CPU twins) against references written here with
// explicit loops over logical coordinates, in both layouts.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "kestrel/core/error.h"
#include "kestrel/kernels/cpu/pooling.h"
#include "storage_buffer.h"
#include "test_support.h"

using kestrel::DType;
using kestrel::Layout;
using kestrel::testing::all_close;
using kestrel::testing::random_buffer;
using kestrel::testing::random_ints;
using kestrel::testing::StorageBuffer;

namespace {
// Physical index of logical (b, ch, y, x), written out independently of the library's helper.
std::int64_t at(Layout l, std::int64_t b, std::int64_t ch, std::int64_t y, std::int64_t x,
                std::int64_t C, std::int64_t H, std::int64_t W) {
  if (l == Layout::kNCHW) return b * C * H * W + ch * H * W + y * W + x;
  return b * H * W * C + y * W * C + x * C + ch;
}

// Small integers, so that windows often hold ties.
StorageBuffer tie_heavy(DType t, std::int64_t count, std::uint32_t seed) {
  StorageBuffer b(t, count);
  const auto v = random_ints(count, seed, -3, 3);
  for (std::int64_t i = 0; i < count; ++i) b.set(i, 0.5f * static_cast<float>(v[static_cast<std::size_t>(i)]));
  return b;
}

struct Dims { std::int64_t n, c, h, w; };
std::string name(DType t, Layout l, const Dims& d) {
  return std::string(kestrel::dtype_name(t)) + " " + kestrel::layout_name(l) + " [" +
         std::to_string(d.n) + "," + std::to_string(d.c) + "," + std::to_string(d.h) + "," +
         std::to_string(d.w) + "]";
}
}  // namespace

TEST(CpuGlobalAvgPool, ForwardAndBackwardMatchReference) {
  for (DType t : {DType::kFloat32, DType::kBFloat16, DType::kFloat16}) {
    for (Layout l : {Layout::kNCHW, Layout::kNHWC}) {
      for (Dims d : {Dims{1, 1, 1, 1}, Dims{2, 3, 7, 1}, Dims{3, 64, 8, 8}, Dims{5, 7, 7, 7}}) {
        const std::int64_t hw = d.h * d.w;
        const StorageBuffer x = random_buffer(t, d.n * d.c * hw, 201, -2.f, 3.f);
        const StorageBuffer dy = random_buffer(t, d.n * d.c, 202, -1.f, 1.f);
        StorageBuffer y(t, d.n * d.c), dx(t, d.n * d.c * hw);
        kestrel::cpu::global_avg_pool_forward(x.data(), y.data(), t, d.n, d.c, hw, l);
        kestrel::cpu::global_avg_pool_backward(dy.data(), dx.data(), t, d.n, d.c, hw, l);
        std::vector<double> y_ref(static_cast<std::size_t>(d.n * d.c));
        std::vector<double> dx_ref(static_cast<std::size_t>(d.n * d.c * hw));
        for (std::int64_t b = 0; b < d.n; ++b) {
          for (std::int64_t ch = 0; ch < d.c; ++ch) {
            double s = 0.0;
            for (std::int64_t yy = 0; yy < d.h; ++yy)
              for (std::int64_t xx = 0; xx < d.w; ++xx) {
                s += x.at(at(l, b, ch, yy, xx, d.c, d.h, d.w));
                dx_ref[static_cast<std::size_t>(at(l, b, ch, yy, xx, d.c, d.h, d.w))] =
                    dy.at(b * d.c + ch) / static_cast<double>(hw);
              }
            y_ref[static_cast<std::size_t>(b * d.c + ch)] = s / hw;
          }
        }
        const double rel = 2 * kestrel::dtype_eps(t);
        EXPECT_TRUE(all_close(y.values(), y_ref, 1e-7, rel)) << name(t, l, d);
        EXPECT_TRUE(all_close(dx.values(), dx_ref, 0.0, rel)) << name(t, l, d);
      }
    }
  }
}

TEST(CpuGlobalAvgPool, Fp32ResultsAreTheExactMeanAndQuotientRoundedOnce) {
  // fp32, hw = 49. Inputs in [1, 2) share one exponent, so the sum of 49 of them is exact in
  // double (24 + 6 bits); the forward mean is that sum / 49 rounded once to fp32 (rounding the
  // sum to fp32 first would round twice). The backward dy / 49 is an fp32 quotient rounded once,
  // which float(double(dy) / 49) gives exactly (53 >= 2 * 24 + 2 bits); dy * (1 / 49) would not.
  const std::int64_t n = 8, c = 16, hw = 49;
  for (Layout l : {Layout::kNCHW, Layout::kNHWC}) {
    const StorageBuffer x = random_buffer(DType::kFloat32, n * c * hw, 211, 1.f, 2.f);
    const StorageBuffer dy = random_buffer(DType::kFloat32, n * c, 212, -1.f, 1.f);
    StorageBuffer y(DType::kFloat32, n * c), dx(DType::kFloat32, n * c * hw);
    kestrel::cpu::global_avg_pool_forward(x.data(), y.data(), DType::kFloat32, n, c, hw, l);
    kestrel::cpu::global_avg_pool_backward(dy.data(), dx.data(), DType::kFloat32, n, c, hw, l);
    for (std::int64_t b = 0; b < n; ++b) {
      for (std::int64_t ch = 0; ch < c; ++ch) {
        double s = 0.0;
        for (std::int64_t p = 0; p < hw; ++p) s += x.at(at(l, b, ch, p, 0, c, hw, 1));
        EXPECT_EQ(y.at(b * c + ch), static_cast<float>(s / 49.0)) << b << " " << ch;
        const float want_dx = static_cast<float>(static_cast<double>(dy.at(b * c + ch)) / 49.0);
        for (std::int64_t p = 0; p < hw; ++p) ASSERT_EQ(dx.at(at(l, b, ch, p, 0, c, hw, 1)), want_dx) << b << " " << ch;
      }
    }
  }
}

TEST(CpuMaxPool2x2, ForwardAndBackwardMatchReferenceWithTiesAndOddSizes) {
  for (DType t : {DType::kFloat32, DType::kBFloat16, DType::kFloat16}) {
    for (Layout l : {Layout::kNCHW, Layout::kNHWC}) {
      for (Dims d : {Dims{1, 1, 1, 1}, Dims{1, 1, 2, 2}, Dims{2, 3, 5, 7}, Dims{3, 4, 8, 8}, Dims{1, 5, 3, 2}}) {
        const std::int64_t oh = d.h / 2, ow = d.w / 2;
        const StorageBuffer x = tie_heavy(t, d.n * d.c * d.h * d.w, 211);
        const StorageBuffer dy = random_buffer(t, d.n * d.c * oh * ow, 212, 0.5f, 2.f);
        StorageBuffer y(t, d.n * d.c * oh * ow), dx(t, d.n * d.c * d.h * d.w);
        for (std::int64_t i = 0; i < dx.size(); ++i) dx.set(i, 99.f);  // must all be overwritten
        kestrel::cpu::max_pool2x2_forward(x.data(), y.data(), t, d.n, d.c, d.h, d.w, l);
        kestrel::cpu::max_pool2x2_backward(dy.data(), x.data(), dx.data(), t, d.n, d.c, d.h, d.w, l);
        std::vector<double> y_ref(static_cast<std::size_t>(y.size()));
        std::vector<double> dx_ref(static_cast<std::size_t>(dx.size()), 0.0);
        for (std::int64_t b = 0; b < d.n; ++b)
          for (std::int64_t ch = 0; ch < d.c; ++ch)
            for (std::int64_t oy = 0; oy < oh; ++oy)
              for (std::int64_t ox = 0; ox < ow; ++ox) {
                std::int64_t best = at(l, b, ch, 2 * oy, 2 * ox, d.c, d.h, d.w);
                for (int wy = 0; wy < 2; ++wy)
                  for (int wx = 0; wx < 2; ++wx) {
                    const std::int64_t i = at(l, b, ch, 2 * oy + wy, 2 * ox + wx, d.c, d.h, d.w);
                    if (x.at(i) > x.at(best)) best = i;
                  }
                const std::int64_t o = at(l, b, ch, oy, ox, d.c, oh, ow);
                y_ref[static_cast<std::size_t>(o)] = x.at(best);
                dx_ref[static_cast<std::size_t>(best)] = dy.at(o);
              }
        EXPECT_TRUE(all_close(y.values(), y_ref, 0.0, 0.0)) << name(t, l, d);
        EXPECT_TRUE(all_close(dx.values(), dx_ref, 0.0, 0.0)) << name(t, l, d);
      }
    }
  }
}

TEST(CpuMaxPool2x2, NanPropagatesAndWinsTheGradient) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> x = {1.f, 5.f, nan, 2.f};  // one 2x2 window
  const std::vector<float> dy = {3.f};
  std::vector<float> y(1), dx(4);
  kestrel::cpu::max_pool2x2_forward(x.data(), y.data(), DType::kFloat32, 1, 1, 2, 2, Layout::kNCHW);
  kestrel::cpu::max_pool2x2_backward(dy.data(), x.data(), dx.data(), DType::kFloat32, 1, 1, 2, 2,
                                     Layout::kNCHW);
  EXPECT_TRUE(std::isnan(y[0]));
  EXPECT_EQ(dx, (std::vector<float>{0.f, 0.f, 3.f, 0.f}));
  // Two NaNs: PyTorch's kernels replace the maximum on every NaN (`val > max || isnan(val)`), so
  // the last NaN in scan order takes the gradient.
  const std::vector<float> two = {nan, 0.f, nan, 1.f};
  kestrel::cpu::max_pool2x2_backward(dy.data(), two.data(), dx.data(), DType::kFloat32, 1, 1, 2, 2,
                                     Layout::kNCHW);
  EXPECT_EQ(dx, (std::vector<float>{0.f, 0.f, 3.f, 0.f}));
}

TEST(CpuPooling, RejectsBadArguments) {
  std::vector<float> buf(64);
  EXPECT_THROW(kestrel::cpu::global_avg_pool_forward(buf.data(), buf.data(), DType::kInt32, 1, 1, 4,
                                                     Layout::kNCHW), kestrel::Error);
  EXPECT_THROW(kestrel::cpu::global_avg_pool_forward(buf.data(), buf.data(), DType::kFloat32, 1, 1, 0,
                                                     Layout::kNCHW), kestrel::Error);
  EXPECT_THROW(kestrel::cpu::global_avg_pool_backward(buf.data(), buf.data(), DType::kFloat32, -1, 1,
                                                      4, Layout::kNHWC), kestrel::Error);
  EXPECT_THROW(kestrel::cpu::max_pool2x2_forward(buf.data(), buf.data(), DType::kFloat32, 1, 1, -2, 2,
                                                 Layout::kNCHW), kestrel::Error);
  EXPECT_THROW(kestrel::cpu::max_pool2x2_backward(buf.data(), buf.data(), buf.data(), DType::kUInt8, 1,
                                                  1, 2, 2, Layout::kNCHW), kestrel::Error);
}
