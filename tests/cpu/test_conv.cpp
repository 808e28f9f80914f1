// CPU twin of the convolutions (kernels/cpu/conv.h) against independent double references:
// forward against im2col + matrix product, backward-data and backward-filter against central
// finite differences of <conv(x, w), dy> (exact up to rounding: the loss is linear), the adjoint
// identity on larger shapes, and validate()'s errors.
#include <gtest/gtest.h>

#include <climits>
#include <cmath>
#include <string>
#include <vector>

#include "conv_reference.h"
#include "kestrel/core/error.h"
#include "kestrel/kernels/cpu/conv.h"
#include "storage_test_util.h"
#include "test_support.h"

namespace {
using kestrel::Conv2dDesc;
using kestrel::DType;
using kestrel::Layout;
using kestrel::testing::HostBuffer;
using kestrel::testing::random_buffer;
using kestrel::testing::ref_conv_forward;
using kestrel::testing::ref_w_dims;
using kestrel::testing::ref_x_dims;
using kestrel::testing::ref_y_dims;
using kestrel::testing::to_logical;
using kestrel::testing::to_stored;

Conv2dDesc make(std::int64_t n, std::int64_t c, std::int64_t h, std::int64_t w, std::int64_t k,
                std::int64_t r, std::int64_t s, int ph, int pw, int sh, int sw, int dh, int dw) {
  Conv2dDesc d;
  d.n = n; d.c = c; d.h = h; d.w = w; d.k = k; d.r = r; d.s = s;
  d.pad_h = ph; d.pad_w = pw; d.stride_h = sh; d.stride_w = sw; d.dil_h = dh; d.dil_w = dw;
  return d;
}

// Stride / padding / dilation / size combinations, small enough for finite differences.
std::vector<Conv2dDesc> small_shapes() {
  return {
      make(2, 3, 6, 5, 4, 3, 3, 1, 1, 1, 1, 1, 1),  // 3x3 pad 1, C=3
      make(2, 4, 7, 7, 6, 1, 1, 0, 0, 2, 2, 1, 1),  // 1x1 stride-2 projection
      make(1, 2, 9, 8, 3, 3, 3, 2, 2, 1, 1, 2, 2),  // dilation 2
      make(2, 3, 7, 10, 2, 3, 2, 1, 0, 2, 1, 1, 2), // non-square everything
      make(1, 2, 2, 2, 3, 3, 3, 1, 1, 1, 1, 1, 1),  // window larger than the input
      make(2, 1, 7, 6, 2, 2, 3, 0, 1, 3, 2, 1, 1),  // stride larger than the window, C=1
      make(3, 2, 1, 1, 5, 1, 1, 0, 0, 1, 1, 1, 1),  // 1x1 images (a dense layer)
      make(1, 3, 8, 8, 2, 3, 3, 1, 1, 2, 2, 1, 1),  // 3x3 stride 2 pad 1 (ResNet downsample)
  };
}

std::string name_of(const Conv2dDesc& d) { return kestrel::to_string(d); }

// Rounding of one stored result: half an ulp of fp32 (once from double), or of bf16 (after the
// fp32 rounding, hence a hair more than 2^-8 relative).
double rel_tol(DType t) { return t == DType::kFloat32 ? std::ldexp(1.0, -23) : std::ldexp(1.0, -8) * 1.001; }

std::vector<double> logical_x(const Conv2dDesc& d, const HostBuffer& b) {
  return to_logical(b.values(), d.layout, ref_x_dims(d));
}
std::vector<double> logical_w(const Conv2dDesc& d, const HostBuffer& b) {
  return to_logical(b.values(), d.layout, ref_w_dims(d));
}
std::vector<double> logical_y(const Conv2dDesc& d, const HostBuffer& b) {
  return to_logical(b.values(), d.layout, ref_y_dims(d));
}

TEST(ConvCpu, OutputSizeMatchesTheDefinition) {
  for (Conv2dDesc d : small_shapes()) {
    const auto yd = ref_y_dims(d);
    EXPECT_EQ(d.out_h(), yd[2]) << name_of(d);
    EXPECT_EQ(d.out_w(), yd[3]) << name_of(d);
  }
  Conv2dDesc d = make(1, 1, 32, 32, 1, 3, 3, 1, 1, 2, 2, 1, 1);
  EXPECT_EQ(d.out_h(), 16);
  d = make(1, 1, 2, 2, 1, 5, 5, 0, 0, 2, 2, 1, 1);
  EXPECT_EQ(d.out_h(), 0);  // the window does not fit: empty, not 1
}

TEST(ConvCpu, ForwardMatchesIm2colReference) {
  std::vector<Conv2dDesc> shapes = small_shapes();
  shapes.push_back(make(8, 16, 32, 32, 16, 3, 3, 1, 1, 1, 1, 1, 1));  // ResNet 3x3 C16
  shapes.push_back(make(4, 16, 32, 32, 32, 3, 3, 1, 1, 2, 2, 1, 1));  // 3x3 stride 2 16->32
  shapes.push_back(make(4, 16, 32, 32, 32, 1, 1, 0, 0, 2, 2, 1, 1));  // 1x1 stride 2 16->32
  std::uint32_t seed = 1;
  for (Conv2dDesc d : shapes) {
    for (Layout layout : {Layout::kNCHW, Layout::kNHWC}) {
      for (DType t : {DType::kFloat32, DType::kBFloat16}) {
        d.layout = layout;
        d.dtype = t;
        const HostBuffer x = random_buffer(t, d.x_elements(), seed++);
        const HostBuffer w = random_buffer(t, d.w_elements(), seed++);
        HostBuffer y(t, d.y_elements());
        y.fill(99.f);  // outputs are overwritten, not accumulated into
        kestrel::cpu::conv2d_forward(d, x.data(), w.data(), y.data());
        const auto expected = to_stored(ref_conv_forward(d, logical_x(d, x), logical_w(d, w)),
                                        layout, ref_y_dims(d));
        EXPECT_TRUE(kestrel::testing::all_close(y.values(), expected, 1e-10, rel_tol(t)))
            << name_of(d);
      }
    }
  }
}

// <conv(x, w), dy> on logical values.
double loss(const Conv2dDesc& d, const std::vector<double>& x, const std::vector<double>& w,
            const std::vector<double>& dy) {
  return kestrel::testing::dot(ref_conv_forward(d, x, w), dy);
}

// Central differences of the loss in x (wrt_filter false) or w; checks the CPU twin's
// backward-data or backward-filter against them on every small shape, layout and dtype.
void check_against_finite_differences(bool wrt_filter, std::uint32_t seed) {
  for (Conv2dDesc d : small_shapes()) {
    for (Layout layout : {Layout::kNCHW, Layout::kNHWC}) {
      for (DType t : {DType::kFloat32, DType::kBFloat16}) {
        d.layout = layout;
        d.dtype = t;
        const HostBuffer x = random_buffer(t, d.x_elements(), seed++);
        const HostBuffer w = random_buffer(t, d.w_elements(), seed++);
        const HostBuffer dy = random_buffer(t, d.y_elements(), seed++);
        HostBuffer grad(t, wrt_filter ? d.w_elements() : d.x_elements());
        grad.fill(99.f);  // overwritten, including the input positions no output reads (stride 2)
        if (wrt_filter) {
          kestrel::cpu::conv2d_backward_filter(d, x.data(), dy.data(), grad.data());
        } else {
          kestrel::cpu::conv2d_backward_data(d, dy.data(), w.data(), grad.data());
        }
        std::vector<double> xl = logical_x(d, x), wl = logical_w(d, w);
        const std::vector<double> dyl = logical_y(d, dy);
        std::vector<double>& var = wrt_filter ? wl : xl;
        std::vector<double> fd(var.size());
        const double h = 0.25;
        for (std::size_t j = 0; j < var.size(); ++j) {
          const double keep = var[j];
          var[j] = keep + h;
          const double up = loss(d, xl, wl, dyl);
          var[j] = keep - h;
          const double down = loss(d, xl, wl, dyl);
          var[j] = keep;
          fd[j] = (up - down) / (2 * h);
        }
        const std::vector<double> got = wrt_filter ? logical_w(d, grad) : logical_x(d, grad);
        EXPECT_TRUE(kestrel::testing::all_close(got, fd, 1e-9, rel_tol(t))) << name_of(d);
      }
    }
  }
}

TEST(ConvCpu, BackwardDataMatchesFiniteDifferences) { check_against_finite_differences(false, 100); }

TEST(ConvCpu, BackwardFilterMatchesFiniteDifferences) { check_against_finite_differences(true, 200); }

// <conv(x, w), dy> == <x, backward_data(dy, w)> == <w, backward_filter(x, dy)>, on stored values
// (the inner products do not depend on the layout as long as both sides share it).
TEST(ConvCpu, AdjointIdentityHoldsOnLargerShapes) {
  const std::vector<Conv2dDesc> shapes = {
      make(8, 16, 32, 32, 16, 3, 3, 1, 1, 1, 1, 1, 1), make(4, 16, 32, 32, 32, 3, 3, 1, 1, 2, 2, 1, 1),
      make(4, 16, 32, 32, 32, 1, 1, 0, 0, 2, 2, 1, 1), make(2, 32, 16, 16, 32, 3, 3, 2, 2, 1, 1, 2, 2),
      make(2, 3, 33, 31, 16, 3, 3, 1, 1, 1, 1, 1, 1)};
  std::uint32_t seed = 300;
  for (Conv2dDesc d : shapes) {
    for (Layout layout : {Layout::kNCHW, Layout::kNHWC}) {
      d.layout = layout;
      const HostBuffer x = random_buffer(DType::kFloat32, d.x_elements(), seed++);
      const HostBuffer w = random_buffer(DType::kFloat32, d.w_elements(), seed++);
      const HostBuffer dy = random_buffer(DType::kFloat32, d.y_elements(), seed++);
      HostBuffer y(DType::kFloat32, d.y_elements()), dx(DType::kFloat32, d.x_elements()),
          dw(DType::kFloat32, d.w_elements());
      y.fill(99.f);
      dx.fill(99.f);
      dw.fill(99.f);
      kestrel::cpu::conv2d_forward(d, x.data(), w.data(), y.data());
      kestrel::cpu::conv2d_backward_data(d, dy.data(), w.data(), dx.data());
      kestrel::cpu::conv2d_backward_filter(d, x.data(), dy.data(), dw.data());
      const double a = kestrel::testing::dot(y.values(), dy.values());
      const double b = kestrel::testing::dot(x.values(), dx.values());
      const double c = kestrel::testing::dot(w.values(), dw.values());
      // Each stored output carries at most 2^-24 relative error; bound by the absolute sums.
      double scale = 0.0;
      for (std::size_t i = 0; i < y.size(); ++i) scale += std::fabs(y.get(i) * dy.get(i));
      const double tol = 1e-6 * scale + 1e-9;
      EXPECT_NEAR(a, b, tol) << name_of(d);
      EXPECT_NEAR(a, c, tol) << name_of(d);
    }
  }
}

TEST(ConvCpu, LayoutsAgreeOnTheSameLogicalTensors) {
  Conv2dDesc d = make(2, 5, 9, 7, 3, 3, 2, 1, 1, 2, 1, 1, 2);
  const HostBuffer x = random_buffer(DType::kFloat32, d.x_elements(), 7);
  const HostBuffer w = random_buffer(DType::kFloat32, d.w_elements(), 8);
  // Same logical x and w stored as NCHW / KCRS and as NHWC / KRSC.
  HostBuffer x2(DType::kFloat32, x.size()), w2(DType::kFloat32, w.size());
  const auto xs = to_stored(to_logical(x.values(), Layout::kNCHW, ref_x_dims(d)), Layout::kNHWC, ref_x_dims(d));
  const auto ws = to_stored(to_logical(w.values(), Layout::kNCHW, ref_w_dims(d)), Layout::kNHWC, ref_w_dims(d));
  for (std::size_t i = 0; i < xs.size(); ++i) x2.set(i, static_cast<float>(xs[i]));
  for (std::size_t i = 0; i < ws.size(); ++i) w2.set(i, static_cast<float>(ws[i]));
  HostBuffer y1(DType::kFloat32, d.y_elements()), y2(DType::kFloat32, d.y_elements());
  kestrel::cpu::conv2d_forward(d, x.data(), w.data(), y1.data());
  d.layout = Layout::kNHWC;
  kestrel::cpu::conv2d_forward(d, x2.data(), w2.data(), y2.data());
  EXPECT_TRUE(kestrel::testing::all_close(to_logical(y2.values(), Layout::kNHWC, ref_y_dims(d)),
                                          to_logical(y1.values(), Layout::kNCHW, ref_y_dims(d)),
                                          0.0, 0.0));
}

void expect_invalid(const Conv2dDesc& d, const std::string& field) {
  try {
    kestrel::validate(d);
    ADD_FAILURE() << "validate accepted " << name_of(d);
  } catch (const kestrel::Error& e) {
    EXPECT_NE(std::string(e.what()).find(field), std::string::npos)
        << "message does not name " << field << ": " << e.what();
  }
}

TEST(ConvCpu, ValidateNamesTheBadField) {
  const Conv2dDesc ok = make(2, 3, 8, 8, 4, 3, 3, 1, 1, 1, 1, 1, 1);
  EXPECT_NO_THROW(kestrel::validate(ok));
  Conv2dDesc d = ok; d.n = 0; expect_invalid(d, "n (batch)");
  d = ok; d.c = -1; expect_invalid(d, "c (input channels)");
  d = ok; d.h = 0; expect_invalid(d, "h (input height)");
  d = ok; d.w = 0; expect_invalid(d, "w (input width)");
  d = ok; d.k = 0; expect_invalid(d, "k (output channels)");
  d = ok; d.r = 0; expect_invalid(d, "r (filter height)");
  d = ok; d.s = -2; expect_invalid(d, "s (filter width)");
  d = ok; d.pad_w = -1; expect_invalid(d, "padding");
  d = ok; d.stride_h = 0; expect_invalid(d, "stride_h");
  d = ok; d.dil_w = 0; expect_invalid(d, "dil_w");
  d = ok; d.r = 11; expect_invalid(d, "output height");
  d = ok; d.s = 5; d.dil_w = 3; expect_invalid(d, "output width");
  // Paddings and dilations near INT_MAX: the message's sizes are computed in 64 bits (an int
  // product overflowed there, undefined behaviour the asan preset's UBSan reports).
  d = ok; d.pad_h = (1 << 30) + 1; d.dil_h = INT_MAX; expect_invalid(d, "exceeds the padded input height 2147483658");
  d = ok; d.pad_w = (1 << 30) + 1; d.dil_w = INT_MAX; expect_invalid(d, "the dilated filter width 4294967295");
  d = ok; d.dtype = DType::kFloat16; expect_invalid(d, "fp32 or bf16");
  d = ok; d.dtype = DType::kInt32; expect_invalid(d, "fp32 or bf16");
  d = ok; d.h = std::int64_t(1) << 40; expect_invalid(d, "too large");
  d = ok; d.n = 1 << 30; d.c = 1 << 30; expect_invalid(d, "too many elements");
}

TEST(ConvCpu, TwinsRejectInvalidDescsAndNullPointers) {
  Conv2dDesc d = make(1, 2, 4, 4, 2, 3, 3, 1, 1, 1, 1, 1, 1);
  std::vector<float> x(32), w(36), y(32);
  EXPECT_NO_THROW(kestrel::cpu::conv2d_forward(d, x.data(), w.data(), y.data()));
  EXPECT_THROW(kestrel::cpu::conv2d_forward(d, nullptr, w.data(), y.data()), kestrel::Error);
  EXPECT_THROW(kestrel::cpu::conv2d_backward_data(d, y.data(), w.data(), nullptr), kestrel::Error);
  EXPECT_THROW(kestrel::cpu::conv2d_backward_filter(d, x.data(), nullptr, w.data()), kestrel::Error);
  d.stride_w = 0;
  EXPECT_THROW(kestrel::cpu::conv2d_forward(d, x.data(), w.data(), y.data()), kestrel::Error);
}

}  // namespace
