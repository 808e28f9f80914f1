// CIFAR batch augmentation on the GPU against the CPU twin, bit for bit.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "device_copy.h"
#include "kestrel/core/context.h"
#include "kestrel/kernels/augment.h"
#include "kestrel/kernels/cpu/augment.h"
#include "test_support.h"

using kestrel::AugmentParams;
using kestrel::DType;
using kestrel::Layout;
using kestrel::Tensor;
using kestrel::testing::bit_equal;
using kestrel::testing::device_buffer;
using kestrel::testing::device_ptr;
using kestrel::testing::random_ints;
using kestrel::testing::to_device;
using kestrel::testing::to_host;

namespace {
constexpr std::int64_t kImg = 3 * 32 * 32;

std::vector<std::uint8_t> bytes(std::int64_t count, std::uint32_t seed, int hi) {
  const auto v = random_ints(count, seed, 0, hi);
  return std::vector<std::uint8_t>(v.begin(), v.end());
}
}  // namespace

TEST(CudaAugment, IsBitIdenticalToTheCpuTwin) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  kestrel::Context gpu(kestrel::Device::cuda(0));
  const std::int64_t images = 1000;
  const auto data = bytes(images * kImg, 901, 255);
  const auto labels = bytes(images, 902, 9);
  const Tensor ddata = to_device(data, gpu), dlabels = to_device(labels, gpu);
  const std::uint64_t base_offset = 40;
  const Tensor doffset = to_device(std::vector<std::uint64_t>{base_offset}, gpu);
  for (DType t : {DType::kFloat32, DType::kBFloat16}) {
    for (Layout l : {Layout::kNCHW, Layout::kNHWC}) {
      for (std::int64_t n : {1, 7, 512}) {
        for (int pad : {0, 4, 16}) {
          const auto idx = random_ints(n, 903, 0, static_cast<std::int32_t>(images - 1));
          AugmentParams p;
          p.pad = pad;
          p.seed = 77;
          p.offset = 2;
          p.mean[0] = 0.49f, p.mean[1] = 0.48f, p.mean[2] = 0.45f;
          p.std[0] = 0.247f, p.std[1] = 0.2435f, p.std[2] = 0.2616f;
          const std::size_t out_bytes = static_cast<std::size_t>(n * kImg) * kestrel::dtype_size(t);
          std::vector<std::uint8_t> expected(out_bytes);
          std::vector<std::int32_t> expected_labels(static_cast<std::size_t>(n));
          AugmentParams host_p = p;
          host_p.offset_ptr = &base_offset;
          kestrel::cpu::augment_batch(data.data(), images, labels.data(), idx.data(), n, expected.data(), t, l,
                                      expected_labels.data(), host_p);
          const Tensor didx = to_device(idx, gpu);
          const Tensor dout = device_buffer<std::uint8_t>(static_cast<std::int64_t>(out_bytes), gpu);
          const Tensor dlab = device_buffer<std::int32_t>(n, gpu);
          p.offset_ptr = device_ptr<std::uint64_t>(doffset);
          kestrel::cuda::augment_batch(device_ptr<std::uint8_t>(ddata), images, device_ptr<std::uint8_t>(dlabels),
                                       device_ptr<std::int32_t>(didx), n, dout.data(), t, l,
                                       device_ptr<std::int32_t>(dlab), p, gpu.stream().handle());
          const std::string what = std::string(kestrel::dtype_name(t)) + " " + kestrel::layout_name(l) +
                                   " n=" + std::to_string(n) + " pad=" + std::to_string(pad);
          EXPECT_TRUE(bit_equal(to_host<std::uint8_t>(dout, static_cast<std::int64_t>(out_bytes), gpu), expected)) << what;
          EXPECT_EQ(to_host<std::int32_t>(dlab, n, gpu), expected_labels) << what;
        }
      }
    }
  }
}

TEST(CudaAugment, OutOfRangeIndexGivesNanImageAndLabelMinusOne) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  kestrel::Context gpu(kestrel::Device::cuda(0));
  const std::int64_t images = 4;
  const auto data = bytes(images * kImg, 911, 255);
  const auto labels = bytes(images, 912, 9);
  const std::vector<std::int32_t> idx = {1, 4, -1, 3};
  const Tensor ddata = to_device(data, gpu), dlabels = to_device(labels, gpu), didx = to_device(idx, gpu);
  const Tensor dout = device_buffer<float>(4 * kImg, gpu);
  const Tensor dlab = device_buffer<std::int32_t>(4, gpu);
  kestrel::cuda::augment_batch(device_ptr<std::uint8_t>(ddata), images, device_ptr<std::uint8_t>(dlabels),
                               device_ptr<std::int32_t>(didx), 4, dout.data(), DType::kFloat32, Layout::kNCHW,
                               device_ptr<std::int32_t>(dlab), AugmentParams{}, gpu.stream().handle());
  const auto out = to_host<float>(dout, 4 * kImg, gpu);
  const auto lab = to_host<std::int32_t>(dlab, 4, gpu);
  EXPECT_EQ(lab, (std::vector<std::int32_t>{labels[1], -1, -1, labels[3]}));
  for (std::int64_t e = 0; e < kImg; ++e) {
    ASSERT_TRUE(std::isfinite(out[static_cast<std::size_t>(e)]));
    ASSERT_TRUE(std::isnan(out[static_cast<std::size_t>(kImg + e)]));
    ASSERT_TRUE(std::isnan(out[static_cast<std::size_t>(2 * kImg + e)]));
    ASSERT_TRUE(std::isfinite(out[static_cast<std::size_t>(3 * kImg + e)]));
  }
}
