// Row gather on the GPU against the CPU twin, bit for bit, for each copy width with aligned and
// shifted pointers; an invalid index fills its row with 0xFF bytes and leaves the others intact.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "device_copy.h"
#include "kestrel/core/context.h"
#include "kestrel/kernels/cpu/gather.h"
#include "kestrel/kernels/gather.h"
#include "storage_buffer.h"
#include "test_support.h"

using kestrel::testing::device_ptr;
using kestrel::testing::random_bytes;
using kestrel::testing::random_ints;
using kestrel::testing::to_device;
using kestrel::testing::to_host;

TEST(CudaGather, BitIdenticalToTheCpuTwinForEveryCopyWidth) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  kestrel::Context gpu(kestrel::Device::cuda(0));
  const std::int64_t rows = 301, n = 260;
  for (std::int64_t row_bytes : {6144, 48, 12, 3}) {
    for (int shift : {0, 4, 1}) {
      const std::vector<std::uint8_t> src = random_bytes(rows * row_bytes + 16, 21);
      const std::vector<std::int32_t> idx = random_ints(n, 22, 0, static_cast<std::int32_t>(rows - 1));
      std::vector<std::uint8_t> dst(static_cast<std::size_t>(n * row_bytes + 16), 0xAB);
      const kestrel::Tensor dsrc = to_device(src, gpu), didx = to_device(idx, gpu);
      kestrel::Tensor ddst = to_device(dst, gpu);
      kestrel::cuda::gather_rows(device_ptr<std::uint8_t>(dsrc, shift), rows, row_bytes,
                                 device_ptr<std::int32_t>(didx), n, device_ptr<std::uint8_t>(ddst, shift),
                                 gpu.stream().handle());
      kestrel::cpu::gather_rows(src.data() + shift, rows, row_bytes, idx.data(), n, dst.data() + shift);
      EXPECT_EQ(to_host<std::uint8_t>(ddst, static_cast<std::int64_t>(dst.size()), gpu), dst)
          << "row_bytes " << row_bytes << " shift " << shift;
    }
  }
}

TEST(CudaGather, AnInvalidIndexFillsItsRowWithOnes) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  kestrel::Context gpu(kestrel::Device::cuda(0));
  const std::vector<float> src = {1, 2, 3, 4, 5, 6, 7, 8};  // 2 rows of 16 bytes
  const std::vector<std::int32_t> idx = {1, 2, -1, 0};
  const kestrel::Tensor dsrc = to_device(src, gpu), didx = to_device(idx, gpu);
  kestrel::Tensor ddst = to_device(std::vector<float>(16, 0.f), gpu);
  kestrel::cuda::gather_rows(device_ptr<float>(dsrc), 2, 16, device_ptr<std::int32_t>(didx), 4,
                             device_ptr<float>(ddst), gpu.stream().handle());
  const std::vector<float> got = to_host<float>(ddst, 16, gpu);
  const std::vector<float> rows01 = {5, 6, 7, 8}, rows00 = {1, 2, 3, 4};
  EXPECT_TRUE(std::equal(rows01.begin(), rows01.end(), got.begin()));
  EXPECT_TRUE(std::equal(rows00.begin(), rows00.end(), got.begin() + 12));
  std::uint32_t bits[8];
  std::memcpy(bits, got.data() + 4, sizeof bits);
  for (std::uint32_t w : bits) EXPECT_EQ(w, 0xFFFFFFFFu);
}
