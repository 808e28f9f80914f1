// NCHW <-> NHWC conversion against Tensor's own layout-aware reads (an independent path).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "error_text.h"
#include "kestrel/core/tensor.h"
#include "kestrel/kernels/cpu/layout_convert.h"

using namespace kestrel;

TEST(LayoutConvert, MatchesLogicalOrderBothWaysForEveryElementSize) {
  for (DType t : {DType::kFloat32, DType::kBFloat16, DType::kUInt8}) {
    const Shape s{3, 5, 2, 7};
    std::vector<float> v(static_cast<std::size_t>(s.numel()));
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>((i * 7) % 200);
    const Tensor nchw = Tensor::from_vector(v, s, t, Layout::kNCHW);
    Tensor nhwc = Tensor::empty_cpu(s, t, Layout::kNHWC);
    cpu::nchw_to_nhwc(nchw.data(), nhwc.data(), t, 3, 5, 2, 7);
    EXPECT_EQ(nhwc.to_float_vector(), v) << dtype_name(t);
    Tensor back = Tensor::empty_cpu(s, t, Layout::kNCHW);
    cpu::nhwc_to_nchw(nhwc.data(), back.data(), t, 3, 5, 2, 7);
    EXPECT_EQ(back.to_float_vector(), v) << dtype_name(t);
  }
  EXPECT_THROW(cpu::nchw_to_nhwc(nullptr, nullptr, DType::kFloat32, -1, 1, 1, 1), Error);
}

// A conversion cannot run in place or over part of its source (on the GPU a thread's write lands
// where another has still to read: nothing checked it), nor on a null pointer; an empty tensor
// needs no buffers.
TEST(LayoutConvert, OverlappingNullAndNegativeArgumentsAreRefused) {
  std::vector<float> buf(2 * 3 * 4 * 5 * 2, 1.f);
  float* x = buf.data();
  const auto refuses = [](auto&& f, const char* what) {
    EXPECT_NE(kestrel::testing::error_of(f).find(what), std::string::npos) << what;
  };
  refuses([&] { cpu::nchw_to_nhwc(x, x, DType::kFloat32, 2, 3, 4, 5); }, "overlap");
  refuses([&] { cpu::nhwc_to_nchw(x, x + 7, DType::kFloat32, 2, 3, 4, 5); }, "overlap");
  refuses([&] { cpu::nchw_to_nhwc(x, nullptr, DType::kFloat32, 2, 3, 4, 5); }, "null data pointer");
  refuses([&] { cpu::nchw_to_nhwc(x, x + 120, DType::kFloat32, 2, -3, 4, 5); }, "negative dimension");
  cpu::nchw_to_nhwc(x, x + 120, DType::kFloat32, 2, 3, 4, 5);  // adjacent buffers are apart
  cpu::nchw_to_nhwc(nullptr, nullptr, DType::kFloat32, 0, 3, 4, 5);
}
