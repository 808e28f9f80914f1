// Device tensors: host <-> device copies, fills against the CPU twins, the caching allocator on
// a real device (reuse, statistics, out-of-memory), handles and events.
#include <gtest/gtest.h>

#include <cuda_runtime.h>

#include <functional>
#include <numeric>
#include <string>
#include <vector>

#include "kestrel/core/context.h"
#include "kestrel/core/stream.h"
#include "kestrel/core/tensor.h"
#include "test_support.h"

using kestrel::DType;
using kestrel::Layout;
using kestrel::Shape;
using kestrel::Tensor;

TEST(CudaTensor, HostToDeviceToHostRoundTripsEveryDtype) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  kestrel::Context gpu(kestrel::Device::cuda(0));
  std::vector<float> v(3 * 5 * 7 * 11);
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>((i * 37) % 251) - 100.f;
  for (DType t : {DType::kFloat32, DType::kBFloat16, DType::kFloat16, DType::kInt32}) {
    for (Layout l : {Layout::kNCHW, Layout::kNHWC}) {
      const Tensor h = Tensor::from_vector(v, Shape{3, 5, 7, 11}, t, l);
      const Tensor d = h.to(gpu, gpu.stream());
      EXPECT_EQ(d.device(), kestrel::Device::cuda(0));
      Tensor back = Tensor::empty_cpu(h.shape(), t, l);
      back.copy_from(d, gpu.stream());  // finished when copy_from returns
      EXPECT_EQ(back.to_float_vector(), v) << kestrel::dtype_name(t);
    }
  }
}

// Tensor::to a CUDA context takes that context's stream (the new block is handed out in its
// order); to_float_vector(stream) reads a device tensor through a host copy.
TEST(CudaTensor, ToTakesTheContextsStreamAndToFloatVectorReadsTheDevice) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  kestrel::Context gpu(kestrel::Device::cuda(0));
  const kestrel::Stream other(kestrel::Device::cuda(0));
  const Tensor h = Tensor::from_vector({1.f, -2.f, 3.5f}, Shape{3}, DType::kBFloat16);
  EXPECT_THROW((void)h.to(gpu, other), kestrel::Error);
  const Tensor d = h.to(gpu, gpu.stream());
  EXPECT_EQ(d.to_float_vector(gpu.stream()), (std::vector<float>{1.f, -2.f, 3.5f}));
  EXPECT_THROW((void)d.to_float_vector(), kestrel::Error);
}

TEST(CudaTensor, NarrowedBatchCopiesOnlyItsRows) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  kestrel::Context gpu(kestrel::Device::cuda(0));
  std::vector<float> v(8 * 16);
  std::iota(v.begin(), v.end(), 0.f);
  const Tensor d = Tensor::from_vector(v, Shape{8, 16}).to(gpu, gpu.stream());
  Tensor rows = Tensor::empty_cpu(Shape{3, 16}, DType::kFloat32);
  rows.copy_from(d.narrow(0, 2, 3), gpu.stream());
  const auto r = rows.to_float_vector();
  EXPECT_EQ(r.front(), 32.f);
  EXPECT_EQ(r.back(), 79.f);
}

TEST(CudaTensor, UniformFillIsBitIdenticalToTheCpuTwin) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  kestrel::Context gpu(kestrel::Device::cuda(0));
  kestrel::Context cpu;
  for (DType t : {DType::kFloat32, DType::kBFloat16, DType::kFloat16}) {
    for (std::int64_t n : {1, 3, 4, 1000003}) {
      Tensor d = Tensor::empty(Shape{n}, t, gpu);
      Tensor h = Tensor::empty(Shape{n}, t, cpu);
      d.fill_uniform(99, -3.f, 5.f, gpu.stream(), 17);
      h.fill_uniform(99, -3.f, 5.f, cpu.stream(), 17);
      Tensor back = Tensor::empty_cpu(Shape{n}, t);
      back.copy_from(d, gpu.stream());
      EXPECT_EQ(std::memcmp(back.data(), h.data(), h.nbytes()), 0) << kestrel::dtype_name(t) << " n=" << n;
    }
  }
}

TEST(CudaTensor, NormalFillMatchesTheCpuTwinToLibmRounding) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  kestrel::Context gpu(kestrel::Device::cuda(0));
  kestrel::Context cpu;
  const std::int64_t n = 100001;
  Tensor d = Tensor::empty(Shape{n}, DType::kFloat32, gpu);
  Tensor h = Tensor::empty(Shape{n}, DType::kFloat32, cpu);
  d.fill_normal(5, 0.25f, 1.5f, gpu.stream());
  h.fill_normal(5, 0.25f, 1.5f, cpu.stream());
  Tensor back = Tensor::empty_cpu(Shape{n}, DType::kFloat32);
  back.copy_from(d, gpu.stream());
  // Device logf/cosf are within 2 ulp of the host's; the product stays within ~1e-5 absolute.
  EXPECT_TRUE(kestrel::testing::all_close(back.to_float_vector(), h.to_float_vector(), 1e-5, 1e-5));
}

// A CPU stream has no handle: CUDA work on it would go to the legacy default stream, unordered
// with the contexts' non-blocking streams. Fills and device copies refuse it.
TEST(CudaTensor, FillsAndDeviceCopiesRefuseAStreamOfAnotherDevice) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  kestrel::Context gpu(kestrel::Device::cuda(0));
  kestrel::Stream cpu;
  Tensor a = Tensor::empty(Shape{64}, DType::kFloat32, gpu), b = Tensor::empty(Shape{64}, DType::kFloat32, gpu);
  for (const auto& f : std::vector<std::function<void()>>{
           [&] { a.zero(cpu); }, [&] { a.fill(1.f, cpu); }, [&] { a.fill_uniform(1, 0.f, 1.f, cpu); },
           [&] { a.fill_normal(1, 0.f, 1.f, cpu); }, [&] { a.copy_from(b, cpu); }}) {
    try {
      f();
      ADD_FAILURE() << "a CPU stream was accepted for device work";
    } catch (const kestrel::Error& e) {
      EXPECT_NE(std::string(e.what()).find("stream is on cpu"), std::string::npos) << e.what();
    }
  }
}

namespace {
// Copies 64 MB (the DMA takes milliseconds) from `host`, wrapped as a CPU tensor, overwrites
// `host` as soon as copy_from returns, and counts the device elements that are not the source's.
std::int64_t elements_read_after_copy_from_returned(float* host, std::int64_t n) {
  kestrel::Context gpu(kestrel::Device::cuda(0));
  for (std::int64_t i = 0; i < n; ++i) host[i] = static_cast<float>(i % 1000);
  Tensor d = Tensor::empty(Shape{n}, DType::kFloat32, gpu);
  d.copy_from(Tensor::wrap(host, Shape{n}, DType::kFloat32, kestrel::Device::cpu()), gpu.stream());
  for (std::int64_t i = 0; i < n; ++i) host[i] = -1.f;  // reused at once, as promised
  Tensor back = Tensor::empty_cpu(Shape{n}, DType::kFloat32);
  back.copy_from(d, gpu.stream());
  const float* v = back.data_as<float>();
  std::int64_t wrong = 0;
  for (std::int64_t i = 0; i < n; ++i) wrong += v[i] != static_cast<float>(i % 1000);
  return wrong;
}
}  // namespace

// copy_from's promise that a host source may be reused on return holds for page-locked memory
// too, where the asynchronous copy would otherwise read it later.
TEST(CudaTensor, ACopyFromPinnedMemoryHasReadItWhenCopyFromReturns) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  const std::int64_t n = std::int64_t{1} << 24;
  float* pinned = nullptr;
  ASSERT_EQ(cudaMallocHost(&pinned, static_cast<std::size_t>(n) * sizeof(float)), cudaSuccess);
  EXPECT_EQ(elements_read_after_copy_from_returned(pinned, n), 0)
      << "the copy read the host buffer after copy_from returned";
  EXPECT_EQ(cudaFreeHost(pinned), cudaSuccess);
}

// ... and for managed memory wrapped as a CPU tensor (cudaPointerGetAttributes reports it as
// managed, not host; before, copy_from returned without waiting for it).
TEST(CudaTensor, ACopyFromManagedMemoryHasReadItWhenCopyFromReturns) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  const std::int64_t n = std::int64_t{1} << 24;
  float* managed = nullptr;
  ASSERT_EQ(cudaMallocManaged(&managed, static_cast<std::size_t>(n) * sizeof(float)), cudaSuccess);
  EXPECT_EQ(elements_read_after_copy_from_returned(managed, n), 0)
      << "the copy read the managed buffer after copy_from returned";
  EXPECT_EQ(cudaFree(managed), cudaSuccess);
}

TEST(CudaAllocator, ReusesMemoryAndReportsStatistics) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  kestrel::Context gpu(kestrel::Device::cuda(0));
  void* first = nullptr;
  {
    Tensor a = Tensor::empty(Shape{1 << 20}, DType::kFloat32, gpu);
    first = a.data();
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(first) % 256, 0u);
  }
  Tensor b = Tensor::empty(Shape{1 << 20}, DType::kFloat32, gpu);
  EXPECT_EQ(b.data(), first) << "a freed block of the same class is reused on the same stream";
  const auto s = gpu.allocator()->stats();
  EXPECT_EQ(s.current_bytes, 4u << 20);
  EXPECT_GE(s.peak_bytes, 4u << 20);
  EXPECT_EQ(s.cache_hits, 1u);
}

TEST(CudaAllocator, OutOfMemoryIsAClearErrorAndLeavesTheDeviceUsable) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  kestrel::Context gpu(kestrel::Device::cuda(0));
  try {
    Tensor huge = Tensor::empty(Shape{std::int64_t(1) << 48}, DType::kFloat32, gpu);  // 1 PiB
    FAIL() << "expected OutOfMemoryError";
  } catch (const kestrel::OutOfMemoryError& e) {
    EXPECT_EQ(e.requested_bytes(), std::size_t(1) << 50);
    EXPECT_GT(e.free_bytes(), 0u);
    EXPECT_NE(std::string(e.what()).find("bytes free on the device"), std::string::npos) << e.what();
  }
  Tensor ok = Tensor::empty(Shape{1024}, DType::kFloat32, gpu);
  ok.fill(2.5f, gpu.stream());
  Tensor h = Tensor::empty_cpu(Shape{1024}, DType::kFloat32);
  h.copy_from(ok, gpu.stream());
  EXPECT_EQ(h.to_float_vector()[1023], 2.5f);
}

TEST(CudaContext, HandlesWorkspaceAndEvents) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  kestrel::Context gpu(kestrel::Device::cuda(0));
  EXPECT_NE(gpu.cudnn(), nullptr);
  EXPECT_EQ(gpu.cudnn(), gpu.cudnn()) << "created once";
  EXPECT_NE(gpu.cublas(), nullptr);
  EXPECT_GE(kestrel::cudnn_runtime_version(), 90200u);
  void* w1 = gpu.workspace(1000);
  EXPECT_NE(w1, nullptr);
  EXPECT_EQ(gpu.workspace(500), w1) << "a smaller request reuses the buffer";
  EXPECT_GE(gpu.workspace_bytes(), 1000u);
  EXPECT_THROW((void)gpu.workspace(gpu.workspace_limit() + 1), kestrel::Error);
  kestrel::Event start(gpu.device()), end(gpu.device());
  Tensor t = Tensor::empty(Shape{1 << 22}, DType::kFloat32, gpu);
  start.record(gpu.stream());
  t.fill(1.f, gpu.stream());
  end.record(gpu.stream());
  end.synchronize();
  EXPECT_GE(kestrel::Event::elapsed_ms(start, end), 0.f);
  EXPECT_NE(gpu.description().find("cuda:0"), std::string::npos);
}
