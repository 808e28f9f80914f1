// Global average pooling and 2x2 max pooling on the GPU against the CPU twins.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "device_copy.h"
#include "kestrel/core/context.h"
#include "kestrel/kernels/cpu/pooling.h"
#include "kestrel/kernels/pooling.h"
#include "storage_buffer.h"
#include "test_support.h"

using kestrel::DType;
using kestrel::Layout;
using kestrel::Tensor;
using kestrel::testing::all_close;
using kestrel::testing::bit_equal;
using kestrel::testing::DeviceStorage;
using kestrel::testing::upload;
using kestrel::testing::random_buffer;
using kestrel::testing::StorageBuffer;

namespace {
struct Dims { std::int64_t n, c, h, w; };

std::string name(DType t, Layout l, const Dims& d, int shift) {
  return std::string(kestrel::dtype_name(t)) + " " + kestrel::layout_name(l) + " [" +
         std::to_string(d.n) + "," + std::to_string(d.c) + "," + std::to_string(d.h) + "," +
         std::to_string(d.w) + "] shift " + std::to_string(shift);
}

// The device buffer's values starting `shift` elements in.
std::vector<double> values_of(const DeviceStorage& d, int shift, kestrel::Context& gpu) {
  return download(d, gpu).values(shift);
}
}  // namespace

TEST(CudaGlobalAvgPool, MatchesTheCpuTwin) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  kestrel::Context gpu(kestrel::Device::cuda(0));
  for (DType t : {DType::kFloat32, DType::kBFloat16}) {
    for (Layout l : {Layout::kNCHW, Layout::kNHWC}) {
      for (Dims d : {Dims{1, 1, 1, 1}, Dims{2, 3, 7, 1}, Dims{128, 64, 8, 8}, Dims{5, 7, 33, 33}}) {
        for (int shift : {0, 1}) {
          const std::int64_t hw = d.h * d.w, nx = d.n * d.c * hw, ny = d.n * d.c;
          StorageBuffer x = random_buffer(t, nx, 301, -2.f, 3.f, shift);
          StorageBuffer dy = random_buffer(t, ny, 302, -1.f, 1.f, shift);
          StorageBuffer y(t, ny), dx(t, nx);
          const DeviceStorage gx = upload(x, gpu), gdy = upload(dy, gpu), gy = upload(y, gpu), gdx = upload(dx, gpu);
          kestrel::cuda::global_avg_pool_forward(gx.at(shift), gy.at(shift), t, d.n, d.c, hw, l, gpu.stream().handle());
          kestrel::cuda::global_avg_pool_backward(gdy.at(shift), gdx.at(shift), t, d.n, d.c, hw, l, gpu.stream().handle());
          kestrel::cpu::global_avg_pool_forward(x.data(shift), y.data(), t, d.n, d.c, hw, l);
          kestrel::cpu::global_avg_pool_backward(dy.data(shift), dx.data(), t, d.n, d.c, hw, l);
          // The GPU sums hw fp32 terms (|x| <= 3) in fp32, the CPU in double: the worst-case fp32
          // summation error of the mean is hw * eps * max|x|.
          EXPECT_TRUE(all_close(values_of(gy, shift, gpu), y.values(), 3.0 * hw * kestrel::dtype_eps(DType::kFloat32),
                                2 * kestrel::dtype_eps(t))) << name(t, l, d, shift);
          EXPECT_TRUE(all_close(values_of(gdx, shift, gpu), dx.values(), 0.0, 0.0)) << name(t, l, d, shift);
        }
      }
    }
  }
}

TEST(CudaMaxPool2x2, IsBitIdenticalToTheCpuTwin) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  kestrel::Context gpu(kestrel::Device::cuda(0));
  for (DType t : {DType::kFloat32, DType::kBFloat16}) {
    for (Layout l : {Layout::kNCHW, Layout::kNHWC}) {
      for (Dims d : {Dims{1, 1, 1, 1}, Dims{2, 3, 5, 7}, Dims{128, 16, 32, 32}, Dims{3, 5, 9, 2}}) {
        for (int shift : {0, 1}) {
          const std::int64_t nx = d.n * d.c * d.h * d.w, ny = d.n * d.c * (d.h / 2) * (d.w / 2);
          // Values on a coarse grid so that windows hold ties.
          StorageBuffer x(t, nx);
          const StorageBuffer r = random_buffer(DType::kFloat32, nx, 311, -4.f, 4.f);
          for (std::int64_t i = 0; i < nx; ++i) x.set(i, std::round(r.at(i)), shift);
          StorageBuffer dy = random_buffer(t, ny, 312, -1.f, 1.f, shift);
          StorageBuffer y(t, ny), dx(t, nx);
          for (std::int64_t i = 0; i < nx; ++i) dx.set(i, 77.f, shift);  // must be overwritten
          const DeviceStorage gx = upload(x, gpu), gdy = upload(dy, gpu), gdx = upload(dx, gpu);
          const DeviceStorage gy = upload(y, gpu);
          kestrel::cuda::max_pool2x2_forward(gx.at(shift), gy.at(shift), t, d.n, d.c, d.h, d.w, l, gpu.stream().handle());
          kestrel::cuda::max_pool2x2_backward(gdy.at(shift), gx.at(shift), gdx.at(shift), t, d.n, d.c, d.h, d.w, l,
                                              gpu.stream().handle());
          kestrel::cpu::max_pool2x2_forward(x.data(shift), y.data(), t, d.n, d.c, d.h, d.w, l);
          kestrel::cpu::max_pool2x2_backward(dy.data(shift), x.data(shift), dx.data(), t, d.n, d.c, d.h, d.w, l);
          EXPECT_TRUE(bit_equal(values_of(gy, shift, gpu), y.values())) << name(t, l, d, shift);
          EXPECT_TRUE(bit_equal(values_of(gdx, shift, gpu), dx.values())) << name(t, l, d, shift);
        }
      }
    }
  }
}
