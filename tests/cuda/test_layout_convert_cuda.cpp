// NCHW <-> NHWC on the GPU against the CPU twin (a permutation: bit-identical).
#include <gtest/gtest.h>

#include <cstring>

#include "kestrel/core/tensor.h"
#include "kestrel/kernels/cpu/layout_convert.h"
#include "kestrel/kernels/layout_convert.h"
#include "test_support.h"

using namespace kestrel;

TEST(LayoutConvertCuda, BitIdenticalToCpuTwin) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  Context gpu(Device::cuda(0));
  // The second shape (1.3M elements) is more than a resident grid's threads on a 132-SM card
  // (270,336), so the grid-stride loop takes a second trip.
  for (const Shape& s : {Shape{7, 13, 5, 3}, Shape{64, 64, 17, 19}}) {
    const std::int64_t n = s[0], c = s[1], hh = s[2], w = s[3];
    for (DType t : {DType::kFloat32, DType::kBFloat16, DType::kUInt8}) {
      Tensor x = Tensor::empty_cpu(s, DType::kFloat32);
      x.fill_uniform(3, 0.f, 100.f, gpu.stream());
      const Tensor h = Tensor::from_vector(x.to_float_vector(), s, t);
      const Tensor d = h.to(gpu, gpu.stream());
      Tensor dy = Tensor::empty(s, t, gpu, Layout::kNHWC);
      cuda::nchw_to_nhwc(d.data(), dy.data(), t, n, c, hh, w, gpu.stream().handle());
      Tensor hy = Tensor::empty_cpu(s, t, Layout::kNHWC);
      cpu::nchw_to_nhwc(h.data(), hy.data(), t, n, c, hh, w);
      Tensor back = Tensor::empty_cpu(s, t, Layout::kNHWC);
      back.copy_from(dy, gpu.stream());
      EXPECT_EQ(std::memcmp(back.data(), hy.data(), hy.nbytes()), 0) << dtype_name(t) << " " << s.to_string();
      Tensor dz = Tensor::empty(s, t, gpu);
      cuda::nhwc_to_nchw(dy.data(), dz.data(), t, n, c, hh, w, gpu.stream().handle());
      Tensor z = Tensor::empty_cpu(s, t);
      z.copy_from(dz, gpu.stream());
      EXPECT_EQ(std::memcmp(z.data(), h.data(), h.nbytes()), 0) << dtype_name(t) << " " << s.to_string();
    }
  }
}
