// NCHW <-> NHWC conversion against Tensor's own layout-aware reads (an independent path).
#include <gtest/gtest.h>

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
