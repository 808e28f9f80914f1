// Whole-tensor reductions on the GPU against exact values, long-double references and the CPU
// twins.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "device_copy.h"
#include "kestrel/core/context.h"
#include "kestrel/kernels/cpu/reduce.h"
#include "kestrel/kernels/reduce.h"
#include "storage_buffer.h"
#include "test_support.h"

using kestrel::DType;
using kestrel::Tensor;
using kestrel::testing::device_buffer;
using kestrel::testing::device_ptr;
using kestrel::testing::random_buffer;
using kestrel::testing::random_ints;
using kestrel::testing::StorageBuffer;
using kestrel::testing::to_device;
using kestrel::testing::to_host;
using kestrel::testing::upload;

namespace {
struct Sums {
  float sum, squares;
};
Sums gpu_sums(const float* x_dev, std::int64_t n, kestrel::Context& gpu) {
  const std::size_t bytes = kestrel::cuda::reduce_workspace_bytes(n);
  const Tensor work = device_buffer<std::uint8_t>(static_cast<std::int64_t>(bytes), gpu);
  const Tensor out = device_buffer<float>(2, gpu);
  kestrel::cuda::sum(x_dev, n, device_ptr<float>(out), work.data(), bytes, gpu.stream().handle());
  kestrel::cuda::sum_squares(x_dev, n, device_ptr<float>(out, 1), work.data(), bytes, gpu.stream().handle());
  const auto h = to_host<float>(out, 2, gpu);
  return Sums{h[0], h[1]};
}
}  // namespace

TEST(CudaReduce, SumsOfConstantsAreExact) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  kestrel::Context gpu(kestrel::Device::cuda(0));
  for (std::int64_t n : {1, 3, 1000003}) {
    // Every partial sum is an integer below 2^24, so any order gives the exact result.
    const Tensor x = to_device(std::vector<float>(static_cast<std::size_t>(n), 2.f), gpu);
    const Sums s = gpu_sums(device_ptr<float>(x), n, gpu);
    EXPECT_EQ(s.sum, 2.f * n) << n;
    EXPECT_EQ(s.squares, 4.f * n) << n;
  }
}

TEST(CudaReduce, RandomSumsMatchLongDoubleAndAreDeterministic) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  kestrel::Context gpu(kestrel::Device::cuda(0));
  for (std::int64_t n : {std::int64_t{7}, std::int64_t{1000}, (std::int64_t{1} << 24) + 3}) {
    for (int shift : {0, 1}) {
      // Positive values: no cancellation, so the relative error bounds the summation order's effect.
      const StorageBuffer x = random_buffer(DType::kFloat32, n, 421, 0.5f, 1.5f, shift);
      const kestrel::testing::DeviceStorage dx = upload(x, gpu);
      const float* p = static_cast<const float*>(x.data(shift));
      long double s = 0, q = 0;
      for (std::int64_t i = 0; i < n; ++i) {
        s += p[i];
        q += static_cast<long double>(p[i]) * p[i];
      }
      const Sums a = gpu_sums(static_cast<const float*>(dx.at(shift)), n, gpu);
      const Sums b = gpu_sums(static_cast<const float*>(dx.at(shift)), n, gpu);
      // fp32 accumulation: a per-thread run plus a tree, well inside 256 ulps.
      const double rel = 256 * kestrel::dtype_eps(DType::kFloat32);
      EXPECT_NEAR(a.sum, static_cast<double>(s), static_cast<double>(s) * rel) << n;
      EXPECT_NEAR(a.squares, static_cast<double>(q), static_cast<double>(q) * rel) << n;
      EXPECT_EQ(std::memcmp(&a, &b, sizeof a), 0) << "run-to-run identical, n=" << n;
    }
  }
}

TEST(CudaReduce, CountNonfiniteMatchesTheCpuTwin) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  kestrel::Context gpu(kestrel::Device::cuda(0));
  const float specials[] = {std::numeric_limits<float>::quiet_NaN(), INFINITY, -INFINITY};
  for (DType t : {DType::kFloat32, DType::kBFloat16, DType::kFloat16}) {
    for (std::int64_t n : {1, 5, 1000003}) {
      for (int shift : {0, 1}) {
        StorageBuffer x = random_buffer(t, n, 431, -1e3f, 1e3f, shift);
        const auto where = random_ints(std::min<std::int64_t>(n, 300), 432, 0, static_cast<std::int32_t>(n - 1));
        for (std::size_t j = 0; j < where.size(); ++j) x.set(where[j], specials[j % 3], shift);
        std::int32_t expected = 0;
        kestrel::cpu::count_nonfinite(x.data(shift), t, n, &expected, nullptr, 0);
        ASSERT_GT(expected, 0);
        const kestrel::testing::DeviceStorage dx = upload(x, gpu);
        const std::size_t bytes = kestrel::cuda::reduce_workspace_bytes(n);
        const Tensor work = device_buffer<std::uint8_t>(static_cast<std::int64_t>(bytes), gpu);
        const Tensor out = device_buffer<std::int32_t>(1, gpu);
        kestrel::cuda::count_nonfinite(dx.at(shift), t, n, device_ptr<std::int32_t>(out), work.data(), bytes,
                                       gpu.stream().handle());
        EXPECT_EQ(to_host<std::int32_t>(out, 1, gpu)[0], expected) << kestrel::dtype_name(t) << " n=" << n;
      }
    }
  }
}

TEST(CudaReduce, EmptyInputWritesZeroAndSmallWorkspaceRaises) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  kestrel::Context gpu(kestrel::Device::cuda(0));
  const Tensor out = to_device(std::vector<float>{7.f}, gpu);
  kestrel::cuda::sum(nullptr, 0, device_ptr<float>(out), nullptr, 0, gpu.stream().handle());
  EXPECT_EQ(to_host<float>(out, 1, gpu)[0], 0.f);
  const Tensor x = to_device(std::vector<float>(1000, 1.f), gpu);
  EXPECT_THROW(kestrel::cuda::sum(device_ptr<float>(x), 1000, device_ptr<float>(out), nullptr, 0,
                                  gpu.stream().handle()),
               kestrel::Error);
}
