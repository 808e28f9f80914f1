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
  // 1000 rows of 6144 bytes are 384,000 16-byte words: more than a resident grid's threads on a
  // 132-SM card (132 x 8 x 256 = 270,336), so the grid-stride loop takes a second trip.
  const std::int64_t rows = 301, n = 1000;
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

// Every copy width (16-, 4- and 1-byte words) and pointer shift: rows with an index outside
// [0, rows) (below, at and above) are all 0xFF, the valid rows are copied, the bytes around the
// output are untouched.
TEST(CudaGather, AnInvalidIndexFillsItsRowWithOnes) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  kestrel::Context gpu(kestrel::Device::cuda(0));
  const std::int64_t rows = 5;
  const std::vector<std::int32_t> idx = {1, 5, -1, 0, 4, 2147483647, 3};
  const auto n = static_cast<std::int64_t>(idx.size());
  for (std::int64_t row_bytes : {16, 12, 3}) {
    for (int shift : {0, 4, 1}) {
      const std::vector<std::uint8_t> src = random_bytes(rows * row_bytes + 16, 23);
      std::vector<std::uint8_t> want(static_cast<std::size_t>(n * row_bytes + 16), 0xAB);
      const kestrel::Tensor dsrc = to_device(src, gpu), didx = to_device(idx, gpu);
      kestrel::Tensor ddst = to_device(want, gpu);
      kestrel::cuda::gather_rows(device_ptr<std::uint8_t>(dsrc, shift), rows, row_bytes,
                                 device_ptr<std::int32_t>(didx), n, device_ptr<std::uint8_t>(ddst, shift),
                                 gpu.stream().handle());
      for (std::int64_t r = 0; r < n; ++r) {
        const std::int32_t i = idx[static_cast<std::size_t>(r)];
        for (std::int64_t b = 0; b < row_bytes; ++b)
          want[static_cast<std::size_t>(shift + r * row_bytes + b)] =
              i >= 0 && i < rows ? src[static_cast<std::size_t>(shift + i * row_bytes + b)] : 0xFF;
      }
      EXPECT_EQ(to_host<std::uint8_t>(ddst, static_cast<std::int64_t>(want.size()), gpu), want)
          << "row_bytes " << row_bytes << " shift " << shift;
    }
  }
}
