// Bias kernels (kernels/bias.h) on the GPU: adds bit-identical to the CPU twin, sums against
// double sums (fp32 accumulation) and repeatable bit for bit; NCHW, NHWC, rows; fp32 and bf16;
// odd, empty and large sizes; errors before launch.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "bias_reference.h"
#include "kestrel/core/context.h"
#include "kestrel/core/error.h"
#include "kestrel/kernels/bias.h"
#include "kestrel/kernels/cpu/bias.h"
#include "storage_test_util.h"
#include "test_support.h"

namespace {
using kestrel::DType;
using kestrel::Layout;
using kestrel::testing::DeviceBuffer;
using kestrel::testing::HostBuffer;
using kestrel::testing::random_buffer;

struct Sizes {
  std::int64_t n, c, hw;
};
const Sizes kSizes[] = {{1, 1, 1},    {2, 3, 7},   {1, 16, 1},   {3, 5, 1027}, {7, 33, 4},
                        {1000, 10, 1}, {0, 4, 5},  {2, 4, 0},    {64, 16, 1024}, {5, 100, 3}};

std::string describe(const Sizes& s, DType t, Layout l) {
  return std::string(kestrel::dtype_name(t)) + " " + kestrel::layout_name(l) + " n=" +
         std::to_string(s.n) + " c=" + std::to_string(s.c) + " hw=" + std::to_string(s.hw);
}

TEST(CudaBias, AddsAreBitIdenticalToTheCpuTwin) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  kestrel::Context ctx(kestrel::Device::cuda(0));
  cudaStream_t s = static_cast<cudaStream_t>(ctx.stream().handle());
  std::uint32_t seed = 1;
  for (const Sizes& z : kSizes)
    for (Layout l : {Layout::kNCHW, Layout::kNHWC})
      for (DType t : {DType::kFloat32, DType::kBFloat16})
        for (bool rows : {false, true}) {
          if (rows && l == Layout::kNCHW) continue;
          HostBuffer y = random_buffer(t, static_cast<std::size_t>(z.n * z.c * z.hw), seed++);
          const std::vector<float> bias = kestrel::testing::random_bias(z.c, seed++);
          DeviceBuffer dy(y), db(bias.size() * sizeof(float) + 4);
          db.upload(bias.data(), bias.size() * sizeof(float));
          if (rows) {
            kestrel::cuda::bias_add_rows(dy.get(), db.as<float>(), z.n * z.hw, z.c, t, s);
            kestrel::cpu::bias_add_rows(y.data(), bias.data(), z.n * z.hw, z.c, t);
          } else {
            kestrel::cuda::channel_bias_add(dy.get(), db.as<float>(), t, z.n, z.c, z.hw, l, s);
            kestrel::cpu::channel_bias_add(y.data(), bias.data(), t, z.n, z.c, z.hw, l);
          }
          HostBuffer got(t, y.size());
          dy.download(got);
          EXPECT_EQ(std::memcmp(got.data(), y.data(), y.bytes()), 0) << describe(z, t, l);
        }
}

TEST(CudaBias, SumsMatchDoubleSumsAndRepeat) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  kestrel::Context ctx(kestrel::Device::cuda(0));
  cudaStream_t s = static_cast<cudaStream_t>(ctx.stream().handle());
  std::uint32_t seed = 100;
  for (const Sizes& z : kSizes)
    for (Layout l : {Layout::kNCHW, Layout::kNHWC})
      for (DType t : {DType::kFloat32, DType::kBFloat16}) {
        const HostBuffer dy = random_buffer(t, static_cast<std::size_t>(z.n * z.c * z.hw), seed++);
        DeviceBuffer ddy(dy), db(static_cast<std::size_t>(z.c) * sizeof(float) + 4);
        std::vector<float> first(static_cast<std::size_t>(z.c), 7.f), second(first);
        db.upload(first.data(), first.size() * sizeof(float));  // overwritten, not accumulated
        kestrel::cuda::channel_bias_backward(ddy.get(), db.as<float>(), t, z.n, z.c, z.hw, l, s);
        db.download(first.data(), first.size() * sizeof(float));
        if (l == Layout::kNHWC)
          kestrel::cuda::bias_backward_rows(ddy.get(), db.as<float>(), z.n * z.hw, z.c, t, s);
        else
          kestrel::cuda::channel_bias_backward(ddy.get(), db.as<float>(), t, z.n, z.c, z.hw, l, s);
        db.download(second.data(), second.size() * sizeof(float));
        const auto expected = kestrel::testing::ref_channel_sums(dy.values(), z.n, z.c, z.hw, l);
        // fp32 accumulation of m values in [-1, 1]: error ~ sqrt(m) * m^(1/2) * 2^-24 typical.
        const double m = static_cast<double>(z.n * z.hw);
        EXPECT_TRUE(kestrel::testing::all_close(first, expected, 1e-6 * (m + 1.0), 1e-5))
            << describe(z, t, l);
        EXPECT_TRUE(kestrel::testing::bit_equal(first, second)) << describe(z, t, l);
      }
}

TEST(CudaBias, RejectsBadArgumentsBeforeLaunching) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  kestrel::Context ctx(kestrel::Device::cuda(0));
  cudaStream_t s = static_cast<cudaStream_t>(ctx.stream().handle());
  DeviceBuffer y(256), b(64);
  EXPECT_THROW(kestrel::cuda::bias_add_rows(y.get(), b.as<float>(), 4, -2, DType::kFloat32, s), kestrel::Error);
  EXPECT_THROW(kestrel::cuda::bias_add_rows(y.get(), nullptr, 4, 2, DType::kFloat32, s), kestrel::Error);
  EXPECT_THROW(kestrel::cuda::channel_bias_backward(y.get(), b.as<float>(), DType::kFloat16, 1, 2, 4,
                                                    Layout::kNCHW, s),
               kestrel::Error);
  EXPECT_THROW(kestrel::cuda::bias_backward_rows(nullptr, b.as<float>(), 4, 2, DType::kBFloat16, s),
               kestrel::Error);
}

}  // namespace
