// cuDNN graph-API convolutions (kernels/conv.h) against the CPU twin: every op x {fp32, bf16} x
// {NCHW, NHWC} x the shapes checked in shared/CUDNN_GRAPH.md section 8 and ResNet's; the
// deterministic policy's repeatability, the plan cache, workspace limits, autotuning, pointer
// alignment in the cache key, and the error paths.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "kestrel/core/allocator.h"
#include "kestrel/core/context.h"
#include "kestrel/core/error.h"
#include "kestrel/kernels/conv.h"
#include "kestrel/kernels/cpu/conv.h"
#include "storage_test_util.h"
#include "test_support.h"

namespace {
using kestrel::Conv2dDesc;
using kestrel::ConvOp;
using kestrel::ConvPolicy;
using kestrel::DType;
using kestrel::Layout;
using kestrel::testing::DeviceBuffer;
using kestrel::testing::HostBuffer;
using kestrel::testing::random_buffer;

Conv2dDesc make(std::int64_t n, std::int64_t c, std::int64_t h, std::int64_t k, std::int64_t r,
                int pad, int stride, int dil) {
  Conv2dDesc d;
  d.n = n; d.c = c; d.h = h; d.w = h; d.k = k; d.r = r; d.s = r;
  d.pad_h = d.pad_w = pad; d.stride_h = d.stride_w = stride; d.dil_h = d.dil_w = dil;
  return d;
}

std::vector<Conv2dDesc> shapes() {
  return {
      make(8, 16, 32, 16, 3, 1, 1, 1),  // 3x3 C16->16 (section 8, ResNet stage 1)
      make(8, 3, 32, 16, 3, 1, 1, 1),   // 3x3 C3->16 (the stem)
      make(8, 16, 32, 32, 1, 0, 2, 1),  // 1x1 stride-2 projection 16->32
      make(8, 32, 16, 32, 3, 2, 1, 2),  // 3x3 dilation 2 C32->32
      make(8, 16, 32, 32, 3, 1, 2, 1),  // 3x3 stride 2 16->32 (ResNet downsample)
      make(3, 5, 11, 7, 3, 1, 1, 1),    // odd channel counts and sizes
  };
}

struct OpBuffers {
  std::int64_t in_a, in_b, out;  // element counts of the two inputs and the output
};
OpBuffers sizes_of(ConvOp op, const Conv2dDesc& d) {
  switch (op) {
    case ConvOp::kBackwardData: return {d.y_elements(), d.w_elements(), d.x_elements()};
    case ConvOp::kBackwardFilter: return {d.x_elements(), d.y_elements(), d.w_elements()};
    case ConvOp::kForward: break;
  }
  return {d.x_elements(), d.w_elements(), d.y_elements()};
}

// Terms summed into one output element (for tolerances that grow like their square root).
double terms_of(ConvOp op, const Conv2dDesc& d) {
  switch (op) {
    case ConvOp::kBackwardData: return static_cast<double>(d.k * d.r * d.s);
    case ConvOp::kBackwardFilter: return static_cast<double>(d.n * d.out_h() * d.out_w());
    case ConvOp::kForward: break;
  }
  return static_cast<double>(d.c * d.r * d.s);
}

void run_cpu(ConvOp op, const Conv2dDesc& d, const void* a, const void* b, void* out) {
  if (op == ConvOp::kForward) kestrel::cpu::conv2d_forward(d, a, b, out);
  if (op == ConvOp::kBackwardData) kestrel::cpu::conv2d_backward_data(d, a, b, out);
  if (op == ConvOp::kBackwardFilter) kestrel::cpu::conv2d_backward_filter(d, a, b, out);
}

void run_gpu(kestrel::Context& ctx, ConvOp op, const Conv2dDesc& d, const void* a, const void* b,
             void* out) {
  auto& cache = ctx.conv_plans();
  cudaStream_t s = static_cast<cudaStream_t>(ctx.stream().handle());
  const std::size_t bytes = cache.workspace_bytes(ctx.cudnn(), op, d, a, b, out, s);
  void* ws = ctx.workspace(bytes);
  if (op == ConvOp::kForward)
    kestrel::cuda::conv2d_forward(cache, ctx.cudnn(), d, a, b, out, ws, bytes, s);
  if (op == ConvOp::kBackwardData)
    kestrel::cuda::conv2d_backward_data(cache, ctx.cudnn(), d, a, b, out, ws, bytes, s);
  if (op == ConvOp::kBackwardFilter)
    kestrel::cuda::conv2d_backward_filter(cache, ctx.cudnn(), d, a, b, out, ws, bytes, s);
  ctx.stream().synchronize();
}

// Runs `op` on the GPU and the CPU twin with the same random inputs; returns the GPU result.
HostBuffer compare_with_twin(kestrel::Context& ctx, ConvOp op, const Conv2dDesc& d,
                             std::uint32_t seed, double rel) {
  const OpBuffers n = sizes_of(op, d);
  const HostBuffer a = random_buffer(d.dtype, static_cast<std::size_t>(n.in_a), seed);
  const HostBuffer b = random_buffer(d.dtype, static_cast<std::size_t>(n.in_b), seed + 1);
  HostBuffer expected(d.dtype, static_cast<std::size_t>(n.out)), got(d.dtype, static_cast<std::size_t>(n.out));
  run_cpu(op, d, a.data(), b.data(), expected.data());
  DeviceBuffer da(a), db(b), dout(got.bytes());
  run_gpu(ctx, op, d, da.get(), db.get(), dout.get());
  dout.download(got);
  // Inputs are uniform in [-1, 1]: an output's typical size is sqrt(terms) / 3. On top of the
  // relative part, an fp32 sum of n terms carries rounding error ~ sqrt(n) * eps * sum|term|
  // (sum|term| ~ n / 4), whatever order cuDNN adds in; a quarter of that worst-case bound is kept
  // (errors partly cancel): with n = 8192 (backward-filter over N*H*W at 32x32) that is
  // 0.25 * sqrt(8192) * 2^-24 * 2048 = 2.8e-3 absolute, 4x the 6.8e-4 the first GPU run showed.
  const double n_terms = terms_of(op, d);
  const double eps = d.dtype == DType::kFloat32 ? std::ldexp(1.0, -24) : 0.0;
  const double abs_tol = rel * std::sqrt(n_terms) / 3.0 + 0.25 * std::sqrt(n_terms) * eps * (n_terms / 4.0);
  EXPECT_TRUE(kestrel::testing::all_close(got.values(), expected.values(), abs_tol, rel))
      << kestrel::conv_op_name(op) << " " << kestrel::to_string(d);
  return got;
}

const ConvOp kOps[] = {ConvOp::kForward, ConvOp::kBackwardData, ConvOp::kBackwardFilter};

TEST(CudaConv, EveryOpLayoutAndDtypeMatchesTheCpuTwin) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  kestrel::Context ctx(kestrel::Device::cuda(0));
  ConvPolicy p;
  p.deterministic = true;
  ctx.set_conv_policy(p);
  std::uint32_t seed = 1;
  for (Conv2dDesc d : shapes())
    for (Layout l : {Layout::kNCHW, Layout::kNHWC})
      for (DType t : {DType::kFloat32, DType::kBFloat16})
        for (ConvOp op : kOps) {
          d.layout = l;
          d.dtype = t;
          // fp32 without TF32: accumulation-order differences only. bf16: fp32 accumulation and
          // a bf16 output rounding on both sides, which may round apart by an ulp (2^-7).
          compare_with_twin(ctx, op, d, seed += 2, t == DType::kFloat32 ? 1e-5 : 1.6e-2);
        }
}

TEST(CudaConv, DeterministicPolicyRepeatsBitForBitAndCachesPlans) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  kestrel::Context ctx(kestrel::Device::cuda(0));
  ConvPolicy p;
  p.deterministic = true;
  ctx.set_conv_policy(p);
  (void)ctx.conv_plans();                                 // the cache is created on first use
  EXPECT_THROW(ctx.set_conv_policy(p), kestrel::Error);  // and fixes the policy from then on
  for (Conv2dDesc d : {make(8, 16, 32, 16, 3, 1, 1, 1), make(8, 16, 32, 32, 3, 1, 2, 1)})
    for (DType t : {DType::kFloat32, DType::kBFloat16})
      for (ConvOp op : kOps) {
        d.dtype = t;
        d.layout = Layout::kNHWC;
        const std::size_t size_before = ctx.conv_plans().size();
        const std::size_t hits_before = ctx.conv_plans().hits();
        const HostBuffer first = compare_with_twin(ctx, op, d, 77, t == DType::kFloat32 ? 1e-5 : 1.6e-2);
        EXPECT_EQ(ctx.conv_plans().size(), size_before + 1);
        // workspace_bytes built the plan; the launcher found it: one hit.
        EXPECT_EQ(ctx.conv_plans().hits(), hits_before + 1);
        const HostBuffer second = compare_with_twin(ctx, op, d, 77, t == DType::kFloat32 ? 1e-5 : 1.6e-2);
        EXPECT_EQ(ctx.conv_plans().size(), size_before + 1);
        EXPECT_EQ(ctx.conv_plans().hits(), hits_before + 3);
        EXPECT_EQ(std::memcmp(first.data(), second.data(), first.bytes()), 0)
            << kestrel::conv_op_name(op) << " " << kestrel::to_string(d);
      }
}

TEST(CudaConv, ZeroWorkspaceLimitFindsAnEngineOrSaysSo) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  kestrel::Context ctx(kestrel::Device::cuda(0));
  ConvPolicy p;
  p.workspace_limit = 0;
  ctx.set_conv_policy(p);
  int built = 0;
  for (Conv2dDesc d : {make(8, 16, 32, 16, 3, 1, 1, 1), make(8, 16, 32, 32, 1, 0, 2, 1)})
    for (ConvOp op : kOps) {
      d.layout = Layout::kNHWC;
      try {
        EXPECT_EQ(ctx.conv_plans().workspace_bytes(ctx.cudnn(), op, d,
                                                   static_cast<cudaStream_t>(ctx.stream().handle())),
                  0u);
        compare_with_twin(ctx, op, d, 5, 1e-5);
        ++built;
      } catch (const kestrel::Error& e) {
        const std::string msg = e.what();
        EXPECT_NE(msg.find("no working engine"), std::string::npos) << msg;
        EXPECT_NE(msg.find(kestrel::conv_op_name(op)), std::string::npos) << msg;
      }
    }
  std::printf("workspace limit 0: %d of 6 plans built\n", built);
  // cuDNN has workspace-free engines for these plain convolutions (the H200 built all 6): a
  // policy that could build none would be a regression, not a device's choice.
  EXPECT_GT(built, 0);
}

TEST(CudaConv, AutotuneAndTf32PoliciesStillComputeTheConvolution) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  for (int variant = 0; variant < 2; ++variant) {
    kestrel::Context ctx(kestrel::Device::cuda(0));
    ConvPolicy p;
    p.autotune = variant == 0;
    p.allow_tf32 = variant == 1;
    ctx.set_conv_policy(p);
    for (ConvOp op : kOps) {
      Conv2dDesc d = make(8, 16, 32, 32, 3, 1, 2, 1);
      d.layout = Layout::kNHWC;
      // TF32 keeps 10 mantissa bits of each input: relative error about 1e-3.
      compare_with_twin(ctx, op, d, 9, variant == 1 ? 5e-3 : 1e-5);
      d.dtype = DType::kBFloat16;
      compare_with_twin(ctx, op, d, 19, 1.6e-2);
    }
  }
}

// Autotuning's trial tensors come from the context's allocator (they count in its peak, as
// PyTorch's algorithm search counts in its own) and go back to it; before, they were cudaMalloc'd
// and bench_resnet's "peak with setup" left them out.
TEST(CudaConv, AutotuneTakesItsTrialTensorsFromTheContextsAllocator) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  kestrel::Context ctx(kestrel::Device::cuda(0));
  ConvPolicy p;
  p.autotune = true;
  ctx.set_conv_policy(p);
  Conv2dDesc d = make(8, 16, 32, 16, 3, 1, 1, 1);
  d.layout = Layout::kNHWC;
  const auto before = ctx.allocator()->stats();
  (void)ctx.conv_plans().workspace_bytes(ctx.cudnn(), ConvOp::kForward, d, ctx.stream().handle());
  const auto after = ctx.allocator()->stats();
  const std::size_t trial = static_cast<std::size_t>(d.x_elements() + d.w_elements() + d.y_elements()) * 4;
  // A 3x3 fp32 convolution has several engines on any recent GPU, so
  // autotuning runs and takes x, w, y (and a workspace when one is needed).
  EXPECT_GE(after.allocations - before.allocations, 3u);
  EXPECT_GE(after.peak_bytes, trial);
  EXPECT_EQ(after.current_bytes, before.current_bytes);  // all handed back
  EXPECT_EQ(ctx.conv_plans().untuned(), 0u) << ctx.conv_plans().last_untuned();
}

// An allocator with no memory to give: autotuning cannot get its trial tensors.
class NoMemory final : public kestrel::Allocator {
 public:
  void* allocate(std::size_t bytes, kestrel::StreamHandle) override {
    throw kestrel::OutOfMemoryError("no memory (test)", bytes, 0, __FILE__, __LINE__);
  }
  void deallocate(void*) noexcept override {}
  kestrel::Device device() const noexcept override { return kestrel::Device::cuda(0); }
  kestrel::AllocatorStats stats() const override { return {}; }
  void reset_peak() override {}
  void release_cached() override {}
};

// Autotuning that cannot time its candidates falls back to cuDNN's first choice without raising
// (it is an optimisation), and says so: the cache counts the plan as untuned and names why.
TEST(CudaConv, AutotuneWithoutScratchMemoryFallsBackAndSaysSo) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  kestrel::Context ctx(kestrel::Device::cuda(0));
  ConvPolicy p;
  p.autotune = true;
  NoMemory none;
  kestrel::cuda::ConvPlanCache cache(p, &none);
  Conv2dDesc d = make(8, 16, 32, 16, 3, 1, 1, 1);
  d.layout = Layout::kNHWC;
  EXPECT_EQ(cache.untuned(), 0u);
  EXPECT_EQ(cache.last_untuned(), "");
  (void)cache.workspace_bytes(ctx.cudnn(), ConvOp::kForward, d, ctx.stream().handle());
  EXPECT_EQ(cache.untuned(), 1u);
  const std::string why = cache.last_untuned();
  EXPECT_NE(why.find("forward"), std::string::npos) << why;
  EXPECT_NE(why.find("no memory for the trial tensors"), std::string::npos) << why;
  // Without autotuning nothing is untuned: the first choice is what was asked for.
  kestrel::cuda::ConvPlanCache plain(ConvPolicy{}, &none);
  (void)plain.workspace_bytes(ctx.cudnn(), ConvOp::kForward, d, ctx.stream().handle());
  EXPECT_EQ(plain.untuned(), 0u);
}

TEST(CudaConv, UnalignedPointersGetTheirOwnPlan) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  kestrel::Context ctx(kestrel::Device::cuda(0));
  Conv2dDesc d = make(2, 8, 9, 8, 3, 1, 1, 1);
  d.dtype = DType::kBFloat16;
  d.layout = Layout::kNHWC;
  const HostBuffer x = random_buffer(d.dtype, static_cast<std::size_t>(d.x_elements()), 3);
  const HostBuffer w = random_buffer(d.dtype, static_cast<std::size_t>(d.w_elements()), 4);
  HostBuffer expected(d.dtype, static_cast<std::size_t>(d.y_elements())), got(expected);
  kestrel::cpu::conv2d_forward(d, x.data(), w.data(), expected.data());
  // Every tensor one element (2 bytes) past a 256-byte boundary.
  DeviceBuffer dx(x.bytes() + 2), dw(w.bytes() + 2), dy(got.bytes() + 2);
  auto shifted = [](const DeviceBuffer& b) { return static_cast<char*>(b.get()) + 2; };
  ASSERT_EQ(cudaMemcpy(shifted(dx), x.data(), x.bytes(), cudaMemcpyHostToDevice), cudaSuccess);
  ASSERT_EQ(cudaMemcpy(shifted(dw), w.data(), w.bytes(), cudaMemcpyHostToDevice), cudaSuccess);
  // A pageable upload may return before its DMA lands; the convolution runs on a non-blocking
  // stream, which does not wait for the legacy stream.
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  try {
    run_gpu(ctx, ConvOp::kForward, d, shifted(dx), shifted(dw), shifted(dy));
    ASSERT_EQ(cudaMemcpy(got.data(), shifted(dy), got.bytes(), cudaMemcpyDeviceToHost), cudaSuccess);
    EXPECT_TRUE(kestrel::testing::all_close(got.values(), expected.values(), 1.6e-2, 1.6e-2));
  } catch (const kestrel::Error& e) {
    EXPECT_NE(std::string(e.what()).find("alignments x=2 w=2 y=2"), std::string::npos) << e.what();
  }
  // The aligned call builds a second plan.
  const std::size_t plans = ctx.conv_plans().size();
  compare_with_twin(ctx, ConvOp::kForward, d, 3, 1.6e-2);
  EXPECT_EQ(ctx.conv_plans().size(), plans + 1);
}

TEST(CudaConv, ErrorsComeBeforeAnyLaunch) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  kestrel::Context ctx(kestrel::Device::cuda(0));
  Conv2dDesc d = make(8, 16, 32, 16, 3, 1, 1, 1);
  DeviceBuffer x(static_cast<std::size_t>(d.x_elements()) * 4), w(static_cast<std::size_t>(d.w_elements()) * 4),
      y(static_cast<std::size_t>(d.y_elements()) * 4);
  auto& cache = ctx.conv_plans();
  cudaStream_t s = static_cast<cudaStream_t>(ctx.stream().handle());
  const std::size_t need = cache.workspace_bytes(ctx.cudnn(), ConvOp::kBackwardFilter, d, s);
  if (need > 0) {
    DeviceBuffer ws(need);
    EXPECT_THROW(kestrel::cuda::conv2d_backward_filter(cache, ctx.cudnn(), d, x.get(), y.get(),
                                                       w.get(), ws.get(), need - 1, s),
                 kestrel::Error);
  }
  EXPECT_THROW(kestrel::cuda::conv2d_forward(cache, ctx.cudnn(), d, nullptr, w.get(), y.get(),
                                             nullptr, 0, s),
               kestrel::Error);
  EXPECT_THROW(kestrel::cuda::conv2d_forward(cache, nullptr, d, x.get(), w.get(), y.get(),
                                             nullptr, 0, s),
               kestrel::Error);
  d.pad_h = -1;
  EXPECT_THROW(kestrel::cuda::conv2d_forward(cache, ctx.cudnn(), d, x.get(), w.get(), y.get(),
                                             nullptr, 0, s),
               kestrel::Error);
}

}  // namespace
