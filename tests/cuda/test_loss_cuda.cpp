// Softmax cross-entropy, softmax, arg-max and accuracy counting on the GPU against the CPU twins.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "device_copy.h"
#include "kestrel/core/context.h"
#include "kestrel/kernels/cpu/loss.h"
#include "kestrel/kernels/loss.h"
#include "storage_buffer.h"
#include "test_support.h"

using kestrel::DType;
using kestrel::Tensor;
using kestrel::testing::all_close;
using kestrel::testing::bit_equal;
using kestrel::testing::device_buffer;
using kestrel::testing::DeviceStorage;
using kestrel::testing::download;
using kestrel::testing::upload;
using kestrel::testing::device_ptr;
using kestrel::testing::random_buffer;
using kestrel::testing::random_ints;
using kestrel::testing::StorageBuffer;
using kestrel::testing::to_device;
using kestrel::testing::to_host;

namespace {
struct GpuCe {
  float loss;
  StorageBuffer dlogits;
};

GpuCe gpu_cross_entropy(StorageBuffer& z, int shift, const std::vector<std::int32_t>& labels,
                        std::int64_t n, std::int64_t k, float eps, float scale,
                        kestrel::Context& gpu) {
  const DType t = z.dtype();
  const DeviceStorage dz = upload(z, gpu);
  const Tensor dl = to_device(labels, gpu);
  const Tensor dscale = to_device(std::vector<float>{scale}, gpu);
  const Tensor dloss = device_buffer<float>(1, gpu);
  const DeviceStorage dgrad = upload(StorageBuffer(t, n * k), gpu);  // shifted like the input
  const Tensor work = device_buffer<std::uint8_t>(
      static_cast<std::int64_t>(kestrel::cuda::softmax_cross_entropy_workspace_bytes(n, k)), gpu);
  kestrel::cuda::softmax_cross_entropy(
      dz.at(shift), t, device_ptr<std::int32_t>(dl), n, k, eps, device_ptr<float>(dloss), dgrad.at(shift),
      device_ptr<float>(dscale), work.data(), gpu.stream().handle());
  GpuCe r{to_host<float>(dloss, 1, gpu)[0], download(dgrad, gpu)};
  return r;
}
}  // namespace

TEST(CudaSoftmaxCrossEntropy, MatchesTheCpuTwin) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  kestrel::Context gpu(kestrel::Device::cuda(0));
  struct Case { std::int64_t n, k; };
  for (DType t : {DType::kFloat32, DType::kBFloat16}) {
    for (Case c : {Case{1, 1}, Case{3, 7}, Case{256, 10}, Case{37, 1000}}) {
      for (int shift : {0, 1}) {
        const float eps = 0.1f, scale = 0.5f;
        StorageBuffer z = random_buffer(t, c.n * c.k, 71, -9.f, 9.f, shift);
        const auto labels = random_ints(c.n, 72, 0, static_cast<std::int32_t>(c.k - 1));
        const GpuCe g = gpu_cross_entropy(z, shift, labels, c.n, c.k, eps, scale, gpu);
        StorageBuffer dz(t, c.n * c.k);
        float loss = 0.f;
        kestrel::cpu::softmax_cross_entropy(z.data(shift), t, labels.data(), c.n, c.k, eps, &loss,
                                            dz.data(), &scale, nullptr);
        const std::string what = std::string(kestrel::dtype_name(t)) + " n=" + std::to_string(c.n) +
                                 " k=" + std::to_string(c.k) + " shift=" + std::to_string(shift);
        EXPECT_NEAR(g.loss, loss, 1e-6 + std::fabs(loss) * 64 * kestrel::dtype_eps(DType::kFloat32)) << what;
        // Summation order differs (warp tree vs sequential double): a few fp32 ulp, then the
        // storage rounding may land one ulp of the dtype apart.
        const double unit = scale / c.n;
        std::vector<double> gpu_grad(static_cast<std::size_t>(c.n * c.k));
        for (std::int64_t e = 0; e < c.n * c.k; ++e) gpu_grad[static_cast<std::size_t>(e)] = g.dlogits.at(e, shift);
        EXPECT_TRUE(all_close(gpu_grad, dz.values(), unit * 64 * kestrel::dtype_eps(DType::kFloat32),
                              2 * kestrel::dtype_eps(t) + 32 * kestrel::dtype_eps(DType::kFloat32)))
            << what;
      }
    }
  }
}

TEST(CudaSoftmaxCrossEntropy, IsDeterministicAndFiniteAtMagnitude1e4) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  kestrel::Context gpu(kestrel::Device::cuda(0));
  const std::int64_t n = 1000, k = 10;
  StorageBuffer z = random_buffer(DType::kFloat32, n * k, 81, -1e4f, 1e4f);
  const auto labels = random_ints(n, 82, 0, static_cast<std::int32_t>(k - 1));
  const GpuCe a = gpu_cross_entropy(z, 0, labels, n, k, 0.1f, 1.f, gpu);
  const GpuCe b = gpu_cross_entropy(z, 0, labels, n, k, 0.1f, 1.f, gpu);
  ASSERT_TRUE(std::isfinite(a.loss));
  EXPECT_EQ(std::memcmp(&a.loss, &b.loss, sizeof(float)), 0) << "run-to-run identical";
  EXPECT_TRUE(bit_equal(a.dlogits.bytes(), b.dlogits.bytes()));
  float loss = 0.f;
  kestrel::cpu::softmax_cross_entropy(z.data(), DType::kFloat32, labels.data(), n, k, 0.1f, &loss,
                                      nullptr, nullptr, nullptr);
  EXPECT_NEAR(a.loss, loss, std::fabs(loss) * 1e-6);
}

TEST(CudaSoftmaxCrossEntropy, LabelOutsideRangeGivesNanLossAndNanRow) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  kestrel::Context gpu(kestrel::Device::cuda(0));
  const std::int64_t n = 4, k = 5;
  StorageBuffer z = random_buffer(DType::kFloat32, n * k, 91, -2.f, 2.f);
  for (std::int32_t bad : {-1, 5, 1 << 30}) {
    const std::vector<std::int32_t> labels = {0, 4, bad, 1};
    const GpuCe g = gpu_cross_entropy(z, 0, labels, n, k, 0.f, 1.f, gpu);
    EXPECT_TRUE(std::isnan(g.loss)) << bad;
    for (std::int64_t j = 0; j < k; ++j) {
      EXPECT_TRUE(std::isnan(g.dlogits.at(2 * k + j))) << "row 2 col " << j;
      EXPECT_TRUE(std::isfinite(g.dlogits.at(1 * k + j))) << "row 1 col " << j;
    }
  }
}

TEST(CudaSoftmax, ForwardAndBackwardMatchTheCpuTwin) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  kestrel::Context gpu(kestrel::Device::cuda(0));
  struct Case { std::int64_t rows, cols; };
  for (DType t : {DType::kFloat32, DType::kBFloat16}) {
    for (Case c : {Case{1, 1}, Case{9, 3}, Case{300, 10}, Case{5, 4097}}) {
      const std::int64_t e = c.rows * c.cols;
      StorageBuffer x = random_buffer(t, e, 101, -20.f, 20.f);
      StorageBuffer dy = random_buffer(t, e, 102, -1.f, 1.f);
      StorageBuffer y(t, e), dx(t, e);
      const DeviceStorage dx_dev = upload(x, gpu), ddy = upload(dy, gpu);
      const DeviceStorage dy_out = upload(y, gpu), dx_out = upload(dx, gpu);
      kestrel::cuda::softmax_forward(dx_dev.at(), dy_out.at(), t, c.rows, c.cols, gpu.stream().handle());
      kestrel::cuda::softmax_backward(ddy.at(), dy_out.at(), dx_out.at(), t, c.rows, c.cols,
                                      gpu.stream().handle());
      const StorageBuffer gy = download(dy_out, gpu);
      const StorageBuffer gdx = download(dx_out, gpu);
      kestrel::cpu::softmax_forward(x.data(), y.data(), t, c.rows, c.cols);
      // Backward from the GPU's y, so only the backward arithmetic is compared.
      kestrel::cpu::softmax_backward(dy.data(), gy.data(), dx.data(), t, c.rows, c.cols);
      const double rel = 2 * kestrel::dtype_eps(t) + 64 * kestrel::dtype_eps(DType::kFloat32);
      EXPECT_TRUE(all_close(gy.values(), y.values(), 1e-30, rel)) << kestrel::dtype_name(t) << " " << e;
      EXPECT_TRUE(all_close(gdx.values(), dx.values(), 1e-6, rel)) << kestrel::dtype_name(t) << " " << e;
    }
  }
}

TEST(CudaArgmax, RowsAndCountCorrectMatchTheCpuTwin) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  kestrel::Context gpu(kestrel::Device::cuda(0));
  for (DType t : {DType::kFloat32, DType::kBFloat16}) {
    for (std::int64_t k : {1, 10, 77}) {
      const std::int64_t n = 513;
      // Few distinct values, so ties across lanes are common.
      StorageBuffer z(t, n * k);
      const auto ints = random_ints(n * k, 111, -3, 3);
      for (std::int64_t e = 0; e < n * k; ++e) z.set(e, static_cast<float>(ints[static_cast<std::size_t>(e)]));
      const auto labels = random_ints(n, 112, 0, static_cast<std::int32_t>(k - 1));
      const DeviceStorage dz = upload(z, gpu);
      const Tensor dl = to_device(labels, gpu);
      const Tensor dout = device_buffer<std::int32_t>(n, gpu);
      const Tensor dcorrect = to_device(std::vector<std::int64_t>{7}, gpu);
      kestrel::cuda::argmax_rows(dz.at(), t, n, k, device_ptr<std::int32_t>(dout), gpu.stream().handle());
      kestrel::cuda::count_correct(dz.at(), t, device_ptr<std::int32_t>(dl), n, k,
                                   device_ptr<std::int64_t>(dcorrect), gpu.stream().handle());
      kestrel::cuda::count_correct(dz.at(), t, device_ptr<std::int32_t>(dl), n, k,
                                   device_ptr<std::int64_t>(dcorrect), gpu.stream().handle());
      std::vector<std::int32_t> out(static_cast<std::size_t>(n));
      std::int64_t correct = 7;
      kestrel::cpu::argmax_rows(z.data(), t, n, k, out.data());
      kestrel::cpu::count_correct(z.data(), t, labels.data(), n, k, &correct);
      kestrel::cpu::count_correct(z.data(), t, labels.data(), n, k, &correct);
      EXPECT_EQ(to_host<std::int32_t>(dout, n, gpu), out) << k;
      EXPECT_EQ(to_host<std::int64_t>(dcorrect, 1, gpu)[0], correct) << k;
    }
  }
}
