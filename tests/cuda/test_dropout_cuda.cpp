// Fused dropout on the GPU: bit-identical to the CPU twin (same seed and offset) for every dtype,
// mode, odd sizes and misaligned pointers; statistics on 10M elements; the device offset pointer,
// advance_offset, and a replayed CUDA Graph drawing a fresh mask each time.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <iterator>
#include <vector>

#include "device_dtype_buffer.h"
#include "dtype_buffer.h"
#include "kestrel/core/context.h"
#include "kestrel/core/half.h"
#include "kestrel/core/cuda_check_internal.h"
#include "kestrel/core/tensor.h"
#include "kestrel/kernels/cpu/dropout.h"
#include "kestrel/kernels/dropout.h"
#include "test_support.h"

using kestrel::DropoutMode;
using kestrel::DropoutParams;
using kestrel::DType;
using kestrel::testing::DeviceDtypeBuffer;
using kestrel::testing::DtypeBuffer;
using kestrel::testing::random_floats;

namespace {

// One device offset counter (8 bytes) holding `value`.
struct DeviceCounter {
  kestrel::Tensor t;
  DeviceCounter(kestrel::Context& gpu, std::uint64_t value)
      : t(kestrel::Tensor::empty(kestrel::Shape{2}, DType::kInt32, gpu)) {
    KESTREL_CUDA_CHECK(
        cudaMemcpyAsync(t.data(), &value, 8, cudaMemcpyHostToDevice, gpu.stream().handle()));
    gpu.stream().synchronize();
  }
  std::uint64_t* ptr() const { return static_cast<std::uint64_t*>(t.data()); }
  std::uint64_t read(kestrel::Context& gpu) const {
    std::uint64_t v = 0;
    KESTREL_CUDA_CHECK(
        cudaMemcpyAsync(&v, ptr(), 8, cudaMemcpyDeviceToHost, gpu.stream().handle()));
    gpu.stream().synchronize();
    return v;
  }
};

DtypeBuffer gpu_forward(kestrel::Context& gpu, const DtypeBuffer& x, const DropoutParams& d,
                        std::int64_t out_lead, bool backward = false) {
  DtypeBuffer out(x.dtype(), x.size(), out_lead);
  out.fill_bytes(0xFF);  // an element the kernel does not write cannot pass for a dropped one
  DeviceDtypeBuffer dx(x, gpu), dy(out, gpu);
  if (backward) {
    kestrel::cuda::dropout_backward(dx.data(), dy.data(), x.size(), x.dtype(), d,
                                    gpu.stream().handle());
  } else {
    kestrel::cuda::dropout_forward(dx.data(), dy.data(), x.size(), x.dtype(), d,
                                   gpu.stream().handle());
  }
  return dy.to_host();
}

DtypeBuffer cpu_forward(const DtypeBuffer& x, const DropoutParams& d, bool backward = false) {
  DtypeBuffer y(x.dtype(), x.size());
  y.fill_bytes(0xFF);
  if (backward) {
    kestrel::cpu::dropout_backward(x.data(), y.data(), x.size(), x.dtype(), d);
  } else {
    kestrel::cpu::dropout_forward(x.data(), y.data(), x.size(), x.dtype(), d);
  }
  return y;
}
}  // namespace

TEST(CudaDropout, BitIdenticalToTheCpuTwinForEveryDtypeModeSizeAndAlignment) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  kestrel::Context gpu(kestrel::Device::cuda(0));
  for (DType t : kestrel::testing::kFloatingDtypes) {
    for (std::int64_t n : {1, 3, 4, 5, 7, 8, 9, 15, 16, 17, 1000003}) {
      for (std::int64_t lead : {0, 1}) {
        const DtypeBuffer x = DtypeBuffer::from(random_floats(n, 61, -2.f, 2.f), t, lead);
        for (float p : {0.f, 0.1f, 0.5f, 0.9f, 1.f}) {
          if (n > 1000 && p != 0.5f) continue;  // the large size once per mode, to keep it quick
          for (DropoutMode mode : {DropoutMode::kInverted, DropoutMode::kVanilla}) {
            for (bool training : {true, false}) {
              for (bool backward : {false, true}) {
                const DropoutParams d{p, mode, training, 0x5eedull + static_cast<std::uint64_t>(n),
                                      3 + static_cast<std::uint64_t>(lead)};
                EXPECT_TRUE(
                    kestrel::testing::bit_equal(gpu_forward(gpu, x, d, lead, backward).all_bits(),
                                                cpu_forward(x, d, backward).all_bits()))
                    << kestrel::dtype_name(t) << " n=" << n << " lead=" << lead << " p=" << p
                    << " vanilla=" << (mode == DropoutMode::kVanilla) << " training=" << training
                    << " backward=" << backward;
              }
            }
          }
        }
      }
    }
    // x aligned, y not (and the reverse): the scalar path, same bits.
    const DtypeBuffer x = DtypeBuffer::from(random_floats(4099, 62, -2.f, 2.f), t, 0);
    const DtypeBuffer x1 = DtypeBuffer::from(random_floats(4099, 62, -2.f, 2.f), t, 1);
    const DropoutParams d{0.3f, DropoutMode::kInverted, true, 9, 1};
    const auto want = cpu_forward(x, d).all_bits();
    EXPECT_EQ(gpu_forward(gpu, x, d, 1).all_bits(), want) << kestrel::dtype_name(t);
    EXPECT_EQ(gpu_forward(gpu, x1, d, 0).all_bits(), want) << kestrel::dtype_name(t);
  }
}

// Zeros, infinities, NaNs with and without payloads, subnormals and the largest finite values,
// kept and dropped (p = 0.5) forward and backward: bits equal to the CPU twin's except that a NaN
// need only be NaN on both (the GPU's multiply may return its canonical NaN, the host's keeps
// the payload); a dropped element is +0 whatever x was.
TEST(CudaDropout, SpecialValuesMatchTheCpuTwinNaNsByClass) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  kestrel::Context gpu(kestrel::Device::cuda(0));
  const std::uint32_t specials[] = {0x00000000u, 0x80000000u, 0x7F800000u, 0xFF800000u,
                                    0x7FC00000u, 0xFFC00000u, 0x7FC12345u, 0x7F800001u,
                                    0x00000001u, 0x807FFFFFu, 0x00800000u, 0x7F7FFFFFu,
                                    0xFF7FFFFFu, 0x3F800000u, 0x477FF000u, 0x33800000u};
  const std::int64_t n = 4099;
  for (DType t : kestrel::testing::kFloatingDtypes) {
    for (std::int64_t lead : {0, 1}) {
      DtypeBuffer x(t, n, lead);
      for (std::int64_t i = 0; i < n; ++i)
        x.set(i, kestrel::bits_float(specials[static_cast<std::size_t>(i) % std::size(specials)]));
      for (bool backward : {false, true}) {
        const DropoutParams d{0.5f, DropoutMode::kInverted, true, 31, 2};
        const DtypeBuffer got = gpu_forward(gpu, x, d, lead, backward), want = cpu_forward(x, d, backward);
        std::int64_t mismatches = 0, nans = 0, zeros = 0;
        for (std::int64_t i = 0; i < n; ++i) {
          const bool want_nan = std::isnan(want.value(i));
          nans += want_nan;
          zeros += want.bits(i) == 0u;
          mismatches += want_nan ? !std::isnan(got.value(i)) : got.bits(i) != want.bits(i);
        }
        EXPECT_EQ(mismatches, 0) << kestrel::dtype_name(t) << " lead=" << lead << " backward=" << backward;
        EXPECT_GT(nans, 0);  // kept NaNs were compared
        EXPECT_GT(zeros, n / 4);  // and dropped elements
      }
    }
  }
}

// The kernel takes units u and u + stride each trip of its grid-stride loop; the grid never
// exceeds 2048 threads an SM, so 3 x SMs x 2048 units make every thread run at least one full
// trip (both units) and part of another: the second unit, beyond the sizes above, bit for bit.
TEST(CudaDropout, SecondUnitOfEveryTripMatchesTheCpuTwin) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  kestrel::Context gpu(kestrel::Device::cuda(0));
  int sms = 0;
  KESTREL_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
  for (DType t : kestrel::testing::kFloatingDtypes) {
    const std::int64_t unit = 16 / static_cast<std::int64_t>(kestrel::dtype_size(t));
    const std::int64_t n = 3 * static_cast<std::int64_t>(sms) * 2048 * unit + 5;
    for (std::int64_t lead : {0, 1}) {
      const DtypeBuffer x = DtypeBuffer::from(random_floats(n, 64, -2.f, 2.f), t, lead);
      for (bool backward : {false, true}) {
        const DropoutParams d{0.3f, DropoutMode::kInverted, true, 77, 5};
        EXPECT_TRUE(kestrel::testing::bit_equal(gpu_forward(gpu, x, d, lead, backward).all_bits(),
                                                cpu_forward(x, d, backward).all_bits()))
            << kestrel::dtype_name(t) << " n=" << n << " lead=" << lead << " backward=" << backward;
      }
    }
  }
}

TEST(CudaDropout, InPlaceMatchesTheCpuTwin) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  kestrel::Context gpu(kestrel::Device::cuda(0));
  for (DType t : kestrel::testing::kFloatingDtypes) {
    const DtypeBuffer x = DtypeBuffer::from(random_floats(100001, 63, -2.f, 2.f), t);
    const DropoutParams d{0.5f, DropoutMode::kInverted, true, 17, 4};
    DeviceDtypeBuffer dx(x, gpu);
    kestrel::cuda::dropout_forward(dx.data(), dx.data(), x.size(), t, d, gpu.stream().handle());
    EXPECT_EQ(dx.to_host().all_bits(), cpu_forward(x, d).all_bits()) << kestrel::dtype_name(t);
  }
}

TEST(CudaDropout, KeptFractionAndMeanOn10MElements) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  kestrel::Context gpu(kestrel::Device::cuda(0));
  constexpr std::int64_t kN = 10'000'000;
  const DtypeBuffer x = DtypeBuffer::from(random_floats(kN, 64, 0.5f, 1.5f), DType::kFloat32);
  double sum_x = 0, sum_x2 = 0;
  for (float v : x.values()) sum_x += v, sum_x2 += static_cast<double>(v) * v;
  for (float p : {0.1f, 0.5f, 0.9f}) {
    const DtypeBuffer y =
        gpu_forward(gpu, x, DropoutParams{p, DropoutMode::kInverted, true, 123, 0}, 0);
    std::int64_t kept = 0;
    double sum_y = 0;
    for (float v : y.values()) kept += v != 0.f, sum_y += v;
    const double q = 1.0 - p;
    EXPECT_NEAR(static_cast<double>(kept) / kN, q, 4.0 * std::sqrt(q * p / kN)) << "p=" << p;
    // E[sum y | x] = sum x; sd = sqrt(p / (1 - p) * sum x^2).
    EXPECT_NEAR(sum_y, sum_x, 4.0 * std::sqrt(p / q * sum_x2) + 1e-5 * sum_x) << "p=" << p;
  }
}

TEST(CudaDropout, DeviceOffsetPointerAndAdvanceOffset) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  kestrel::Context gpu(kestrel::Device::cuda(0));
  const DtypeBuffer x = DtypeBuffer::from(random_floats(65537, 65, -1.f, 1.f), DType::kBFloat16);
  DeviceCounter counter(gpu, 5);
  DropoutParams via_ptr{0.5f, DropoutMode::kInverted, true, 8, 3};
  via_ptr.offset_ptr = counter.ptr();
  const auto want8 =
      cpu_forward(x, DropoutParams{0.5f, DropoutMode::kInverted, true, 8, 8}).all_bits();
  EXPECT_EQ(gpu_forward(gpu, x, via_ptr, 0).all_bits(), want8);
  kestrel::cuda::advance_offset(counter.ptr(), 7, gpu.stream().handle());
  EXPECT_EQ(counter.read(gpu), 12u);
  const auto want15 =
      cpu_forward(x, DropoutParams{0.5f, DropoutMode::kInverted, true, 8, 15}).all_bits();
  EXPECT_EQ(gpu_forward(gpu, x, via_ptr, 0).all_bits(), want15);
  EXPECT_NE(want8, want15);
}

TEST(CudaDropout, ReplayedCudaGraphDrawsAFreshMaskEachTime) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  kestrel::Context gpu(kestrel::Device::cuda(0));
  const std::int64_t n = 100003;
  const DtypeBuffer x = DtypeBuffer::from(random_floats(n, 66, -1.f, 1.f), DType::kFloat32);
  DeviceDtypeBuffer dx(x, gpu), dy(DtypeBuffer(DType::kFloat32, n), gpu);
  DropoutParams d{0.25f, DropoutMode::kInverted, true, 77, 100};
  cudaStream_t s = gpu.stream().handle();
  DeviceCounter counter(gpu, 0);
  // Warm-up outside the capture, as a training loop does (loads the kernels).
  kestrel::cuda::dropout_forward(dx.data(), dy.data(), n, DType::kFloat32, d, s);
  kestrel::cuda::advance_offset(counter.ptr(), 0, s);
  d.offset_ptr = counter.ptr();
  cudaGraph_t graph = nullptr;
  KESTREL_CUDA_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
  kestrel::cuda::advance_offset(counter.ptr(), 1, s);  // a training step bumps its counter
  kestrel::cuda::dropout_forward(dx.data(), dy.data(), n, DType::kFloat32, d, s);
  KESTREL_CUDA_CHECK(cudaStreamEndCapture(s, &graph));
  cudaGraphExec_t exec = nullptr;
  KESTREL_CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
  std::vector<std::uint32_t> previous;
  for (std::uint64_t step = 1; step <= 3; ++step) {
    KESTREL_CUDA_CHECK(cudaGraphLaunch(exec, s));
    const auto got = dy.to_host().all_bits();
    EXPECT_EQ(got,
              cpu_forward(x, DropoutParams{0.25f, DropoutMode::kInverted, true, 77, 100 + step})
                  .all_bits())
        << "replay " << step;
    EXPECT_NE(got, previous);
    previous = got;
  }
  EXPECT_EQ(counter.read(gpu), 3u);
  KESTREL_CUDA_CHECK(cudaGraphExecDestroy(exec));
  KESTREL_CUDA_CHECK(cudaGraphDestroy(graph));
}
