// Fused SGD and AdamW on the GPU against the CPU twins, bit for bit, over several steps with lr
// and step living in device memory; and inside a replayed CUDA Graph; with gradient clipping.
#include <gtest/gtest.h>

#include <cuda_runtime.h>

#include <string>
#include <vector>

#include "device_copy.h"
#include "kestrel/core/context.h"
#include "kestrel/kernels/cpu/optimizer.h"
#include "kestrel/kernels/optimizer.h"
#include "kestrel/kernels/reduce.h"
#include "optimizer_reference.h"
#include "storage_buffer.h"
#include "test_support.h"

using kestrel::AdamWConfig;
using kestrel::DType;
using kestrel::SgdConfig;
using kestrel::Tensor;
using kestrel::testing::bit_equal;
using kestrel::testing::copy_into;
using kestrel::testing::device_ptr;
using kestrel::testing::random_buffer;
using kestrel::testing::random_ints;
using kestrel::testing::sum_of_squares;
using kestrel::testing::to_device;
using kestrel::testing::to_host;

namespace {
const std::vector<float> kLr = {0.1f, 0.05f, 0.2f, 0.01f};

std::vector<float> floats(std::int64_t n, std::uint32_t seed) {
  const auto b = random_buffer(DType::kFloat32, n, seed, -1.f, 1.f);
  std::vector<float> v(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) v[static_cast<std::size_t>(i)] = b.at(i);
  return v;
}

// Host and device copies of an optimizer's buffers; device pointers `shift` elements in.
struct Buffers {
  std::vector<float> p, s0, s1;
  std::vector<std::uint8_t> mask;
  std::vector<std::uint16_t> p16;
  Tensor dp, ds0, ds1, dmask, dp16;
  int shift;
  Buffers(std::int64_t n, int shift_, bool masked, kestrel::Context& gpu) : shift(shift_) {
    const std::size_t m = static_cast<std::size_t>(n + shift);
    p = floats(n + shift, 701);
    s0 = floats(n + shift, 702);  // nonzero state: the first SGD step must ignore it
    s1.assign(m, 0.f);
    const auto r = random_ints(n + shift, 703, 0, 1);
    if (masked) mask.assign(r.begin(), r.end());
    p16.assign(m, 0);
    dp = to_device(p, gpu);
    ds0 = to_device(s0, gpu);
    ds1 = to_device(s1, gpu);
    dmask = to_device(mask, gpu);
    dp16 = to_device(p16, gpu);
  }
  const std::uint8_t* host_mask() const { return mask.empty() ? nullptr : mask.data() + shift; }
  const std::uint8_t* dev_mask() const { return mask.empty() ? nullptr : device_ptr<std::uint8_t>(dmask, shift); }
  void expect_equal(std::int64_t n, kestrel::Context& gpu, const std::string& what) const {
    const std::int64_t m = n + shift;
    EXPECT_TRUE(bit_equal(to_host<float>(dp, m, gpu), p)) << "params " << what;
    EXPECT_TRUE(bit_equal(to_host<float>(ds0, m, gpu), s0)) << "state0 " << what;
    EXPECT_TRUE(bit_equal(to_host<float>(ds1, m, gpu), s1)) << "state1 " << what;
    EXPECT_TRUE(bit_equal(to_host<std::uint16_t>(dp16, m, gpu), p16)) << "bf16 copy " << what;
  }
};
}  // namespace

TEST(CudaOptimizer, SgdIsBitIdenticalToTheCpuTwin) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  kestrel::Context gpu(kestrel::Device::cuda(0));
  const SgdConfig configs[] = {{0.9f, 0.f, 5e-4f, false}, {0.9f, 0.f, 5e-2f, true},
                               {0.8f, 0.3f, 1e-2f, false}, {0.f, 0.f, 1e-2f, false}};
  for (const SgdConfig& c : configs) {
    for (std::int64_t n : {1, 3, 4, 7, 1000003}) {
      for (int shift : {0, 1}) {
        const bool masked = (n + shift) % 2 == 1;
        Buffers b(n, shift, masked, gpu);
        Tensor dlr = to_device(std::vector<float>{0.f}, gpu);
        Tensor dstep = to_device(std::vector<std::int64_t>{1}, gpu);
        for (std::int64_t t = 1; t <= 4; ++t) {
          const float lr = kLr[static_cast<std::size_t>(t - 1)];
          copy_into(dlr, std::vector<float>{lr}, gpu);
          const std::vector<float> g = floats(n, 710 + static_cast<std::uint32_t>(t));
          const Tensor dg = to_device(g, gpu);
          kestrel::cuda::sgd_update(device_ptr<float>(b.dp, shift), device_ptr<float>(dg),
                                    device_ptr<float>(b.ds0, shift), n, c, device_ptr<float>(dlr),
                                    device_ptr<std::int64_t>(dstep), b.dev_mask(),
                                    device_ptr<std::uint16_t>(b.dp16, shift), gpu.stream().handle());
          kestrel::cuda::increment_step(device_ptr<std::int64_t>(dstep), gpu.stream().handle());
          kestrel::cpu::sgd_update(b.p.data() + shift, g.data(), b.s0.data() + shift, n, c, &lr, &t,
                                   b.host_mask(), b.p16.data() + shift);
        }
        EXPECT_EQ(to_host<std::int64_t>(dstep, 1, gpu)[0], 5);
        b.expect_equal(n, gpu, "momentum " + std::to_string(c.momentum) + " n=" + std::to_string(n) +
                                   " shift=" + std::to_string(shift));
      }
    }
  }
}

// Each buffer's alignment is checked on its own: the gradients, the decay mask or the bf16 copy
// one element in while every other buffer is aligned must take the scalar path (a 16-, 4- or
// 8-byte vector access through it would fault as misaligned), with the twin's bits.
TEST(CudaOptimizer, OneMisalignedBufferAmongAlignedOnesGivesTheTwinsBits) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  kestrel::Context gpu(kestrel::Device::cuda(0));
  const std::int64_t n = 4099;
  const std::size_t un = static_cast<std::size_t>(n);
  const AdamWConfig c;
  const float lr = 0.05f;
  const std::int64_t t = 1;
  for (int odd = 0; odd < 3; ++odd) {  // one element in: 0 the gradients, 1 the mask, 2 the bf16 copy
    const int og = odd == 0 ? 1 : 0, om = odd == 1 ? 1 : 0, ob = odd == 2 ? 1 : 0;
    std::vector<float> p = floats(n, 731), s0(un, 0.f), s1(un, 0.f);
    const std::vector<float> g = floats(n + og, 732);
    const auto r = random_ints(n + om, 733, 0, 1);
    const std::vector<std::uint8_t> mask(r.begin(), r.end());
    std::vector<std::uint16_t> p16(un + static_cast<std::size_t>(ob), 0);
    Tensor dp = to_device(p, gpu), ds0 = to_device(s0, gpu), ds1 = to_device(s1, gpu);
    const Tensor dg = to_device(g, gpu), dmask = to_device(mask, gpu);
    Tensor dp16 = to_device(p16, gpu);
    const Tensor dlr = to_device(std::vector<float>{lr}, gpu);
    const Tensor dstep = to_device(std::vector<std::int64_t>{t}, gpu);
    kestrel::cuda::adamw_update(device_ptr<float>(dp), device_ptr<float>(dg, og), device_ptr<float>(ds0),
                                device_ptr<float>(ds1), n, c, device_ptr<float>(dlr),
                                device_ptr<std::int64_t>(dstep), device_ptr<std::uint8_t>(dmask, om),
                                device_ptr<std::uint16_t>(dp16, ob), gpu.stream().handle());
    kestrel::cpu::adamw_update(p.data(), g.data() + og, s0.data(), s1.data(), n, c, &lr, &t, mask.data() + om,
                               p16.data() + ob);
    EXPECT_TRUE(bit_equal(to_host<float>(dp, n, gpu), p)) << "params, odd buffer " << odd;
    EXPECT_TRUE(bit_equal(to_host<float>(ds0, n, gpu), s0)) << "exp_avg, odd buffer " << odd;
    EXPECT_TRUE(bit_equal(to_host<float>(ds1, n, gpu), s1)) << "exp_avg_sq, odd buffer " << odd;
    EXPECT_TRUE(bit_equal(to_host<std::uint16_t>(dp16, n + ob, gpu), p16)) << "bf16 copy, odd buffer " << odd;
  }
}

TEST(CudaOptimizer, AdamWIsBitIdenticalToTheCpuTwin) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  kestrel::Context gpu(kestrel::Device::cuda(0));
  const AdamWConfig configs[] = {{}, {0.8f, 0.99f, 1e-6f, 0.1f}, {0.3f, 0.5f, 1e-3f, 0.f}};
  for (const AdamWConfig& c : configs) {
    for (std::int64_t n : {1, 3, 4, 7, 1000003}) {
      for (int shift : {0, 1}) {
        const bool masked = (n + shift) % 2 == 0;
        Buffers b(n, shift, masked, gpu);
        copy_into(b.ds0, std::vector<float>(b.s0.size(), 0.f), gpu);
        b.s0.assign(b.s0.size(), 0.f);
        Tensor dlr = to_device(std::vector<float>{0.f}, gpu);
        Tensor dstep = to_device(std::vector<std::int64_t>{1}, gpu);
        for (std::int64_t t = 1; t <= 4; ++t) {
          const float lr = kLr[static_cast<std::size_t>(t - 1)];
          copy_into(dlr, std::vector<float>{lr}, gpu);
          const std::vector<float> g = floats(n, 720 + static_cast<std::uint32_t>(t));
          const Tensor dg = to_device(g, gpu);
          kestrel::cuda::adamw_update(device_ptr<float>(b.dp, shift), device_ptr<float>(dg),
                                      device_ptr<float>(b.ds0, shift), device_ptr<float>(b.ds1, shift), n, c,
                                      device_ptr<float>(dlr), device_ptr<std::int64_t>(dstep), b.dev_mask(),
                                      device_ptr<std::uint16_t>(b.dp16, shift), gpu.stream().handle());
          kestrel::cuda::increment_step(device_ptr<std::int64_t>(dstep), gpu.stream().handle());
          kestrel::cpu::adamw_update(b.p.data() + shift, g.data(), b.s0.data() + shift, b.s1.data() + shift,
                                     n, c, &lr, &t, b.host_mask(), b.p16.data() + shift);
        }
        b.expect_equal(n, gpu, "beta1 " + std::to_string(c.beta1) + " n=" + std::to_string(n) +
                                   " shift=" + std::to_string(shift));
      }
    }
  }
}

TEST(CudaOptimizer, CapturedGraphReadsLrAndStepAtReplay) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  kestrel::Context gpu(kestrel::Device::cuda(0));
  const std::int64_t n = 4099;
  const SgdConfig c{0.9f, 0.f, 1e-3f, true};
  Buffers b(n, 0, false, gpu);
  const std::vector<float> g = floats(n, 730);
  const Tensor dg = to_device(g, gpu);
  Tensor dlr = to_device(std::vector<float>{0.f}, gpu);
  Tensor dstep = to_device(std::vector<std::int64_t>{1}, gpu);
  cudaStream_t s = gpu.stream().handle();
  cudaGraph_t graph = nullptr;
  ASSERT_EQ(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal), cudaSuccess);
  kestrel::cuda::sgd_update(device_ptr<float>(b.dp), device_ptr<float>(dg), device_ptr<float>(b.ds0), n, c,
                            device_ptr<float>(dlr), device_ptr<std::int64_t>(dstep), nullptr,
                            device_ptr<std::uint16_t>(b.dp16), s);
  kestrel::cuda::increment_step(device_ptr<std::int64_t>(dstep), s);
  ASSERT_EQ(cudaStreamEndCapture(s, &graph), cudaSuccess);
  cudaGraphExec_t exec = nullptr;
  ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
  for (std::int64_t t = 1; t <= 4; ++t) {
    const float lr = kLr[static_cast<std::size_t>(t - 1)];
    copy_into(dlr, std::vector<float>{lr}, gpu);
    ASSERT_EQ(cudaGraphLaunch(exec, s), cudaSuccess);
    kestrel::cpu::sgd_update(b.p.data(), g.data(), b.s0.data(), n, c, &lr, &t, nullptr, b.p16.data());
  }
  gpu.stream().synchronize();
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  b.expect_equal(n, gpu, "graph replay");
}

TEST(CudaOptimizer, ClippedUpdatesAreBitIdenticalToTheCpuTwin) {
  // The same sum of squares on both sides: the coefficient comes from the same KESTREL_HD
  // function (sqrtf and division correctly rounded on both), so the updates agree bit for bit.
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  kestrel::Context gpu(kestrel::Device::cuda(0));
  const std::vector<float> grad_scale = {10.f, 0.01f, 3.f, 0.02f};
  for (bool adamw : {false, true}) {
    for (std::int64_t n : {7, 1000003}) {
      for (int shift : {0, 1}) {
        Buffers b(n, shift, shift == 1, gpu);
        if (adamw) {
          copy_into(b.ds0, std::vector<float>(b.s0.size(), 0.f), gpu);
          b.s0.assign(b.s0.size(), 0.f);
        }
        const float max_norm = n == 7 ? 0.5f : 100.f;  // clips steps 1 and 3, not 2 and 4
        Tensor dlr = to_device(std::vector<float>{0.f}, gpu);
        Tensor dstep = to_device(std::vector<std::int64_t>{1}, gpu);
        Tensor dss = to_device(std::vector<float>{0.f}, gpu);
        for (std::int64_t t = 1; t <= 4; ++t) {
          const float lr = kLr[static_cast<std::size_t>(t - 1)];
          std::vector<float> g = floats(n, 740 + static_cast<std::uint32_t>(t));
          for (float& v : g) v *= grad_scale[static_cast<std::size_t>(t - 1)];
          const float ss = static_cast<float>(sum_of_squares(g));
          copy_into(dlr, std::vector<float>{lr}, gpu);
          copy_into(dss, std::vector<float>{ss}, gpu);
          const Tensor dg = to_device(g, gpu);
          const kestrel::GradClip dev_clip{device_ptr<float>(dss), max_norm}, host_clip{&ss, max_norm};
          cudaStream_t s = gpu.stream().handle();
          if (adamw) {
            kestrel::cuda::adamw_update(device_ptr<float>(b.dp, shift), device_ptr<float>(dg),
                                        device_ptr<float>(b.ds0, shift), device_ptr<float>(b.ds1, shift), n,
                                        AdamWConfig{}, device_ptr<float>(dlr), device_ptr<std::int64_t>(dstep),
                                        b.dev_mask(), device_ptr<std::uint16_t>(b.dp16, shift), s, dev_clip);
            kestrel::cpu::adamw_update(b.p.data() + shift, g.data(), b.s0.data() + shift, b.s1.data() + shift, n,
                                       AdamWConfig{}, &lr, &t, b.host_mask(), b.p16.data() + shift, host_clip);
          } else {
            const SgdConfig c{0.9f, 0.f, 5e-4f, true};
            kestrel::cuda::sgd_update(device_ptr<float>(b.dp, shift), device_ptr<float>(dg),
                                      device_ptr<float>(b.ds0, shift), n, c, device_ptr<float>(dlr),
                                      device_ptr<std::int64_t>(dstep), b.dev_mask(),
                                      device_ptr<std::uint16_t>(b.dp16, shift), s, dev_clip);
            kestrel::cpu::sgd_update(b.p.data() + shift, g.data(), b.s0.data() + shift, n, c, &lr, &t,
                                     b.host_mask(), b.p16.data() + shift, host_clip);
          }
          kestrel::cuda::increment_step(device_ptr<std::int64_t>(dstep), s);
        }
        b.expect_equal(n, gpu, std::string(adamw ? "adamw" : "sgd") + " clipped n=" + std::to_string(n) +
                                   " shift=" + std::to_string(shift));
      }
    }
  }
}

TEST(CudaOptimizer, CapturedGraphClipsEachReplayByItsOwnGradientNorm) {
  // sum_squares and the clipped update captured once; each replay sees new gradients in the
  // same buffer. The device's fp32 tree sum agrees with a double sum to a few ulps; given that
  // sum, the update is bit-identical to the CPU twin's.
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  kestrel::Context gpu(kestrel::Device::cuda(0));
  const std::int64_t n = 70001;
  const SgdConfig c{0.9f, 0.f, 1e-3f, false};
  Buffers b(n, 0, false, gpu);
  Tensor dg = to_device(floats(n, 750), gpu);
  Tensor dlr = to_device(std::vector<float>{0.05f}, gpu);
  Tensor dstep = to_device(std::vector<std::int64_t>{1}, gpu);
  const std::size_t ws_bytes = kestrel::cuda::reduce_workspace_bytes(n);
  Tensor dss = to_device(std::vector<float>{0.f}, gpu);
  Tensor ws = Tensor::empty(kestrel::Shape{static_cast<std::int64_t>(ws_bytes) + 1}, DType::kUInt8, gpu);
  cudaStream_t s = gpu.stream().handle();
  cudaGraph_t graph = nullptr;
  ASSERT_EQ(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal), cudaSuccess);
  kestrel::cuda::sum_squares(device_ptr<float>(dg), n, device_ptr<float>(dss), ws.data(), ws_bytes, s);
  kestrel::cuda::sgd_update(device_ptr<float>(b.dp), device_ptr<float>(dg), device_ptr<float>(b.ds0), n, c,
                            device_ptr<float>(dlr), device_ptr<std::int64_t>(dstep), nullptr,
                            device_ptr<std::uint16_t>(b.dp16), s, kestrel::GradClip{device_ptr<float>(dss), 50.f});
  kestrel::cuda::increment_step(device_ptr<std::int64_t>(dstep), s);
  ASSERT_EQ(cudaStreamEndCapture(s, &graph), cudaSuccess);
  cudaGraphExec_t exec = nullptr;
  ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
  const float lr = 0.05f;
  for (std::int64_t t = 1; t <= 4; ++t) {
    std::vector<float> g = floats(n, 760 + static_cast<std::uint32_t>(t));
    const float scale = t % 2 == 1 ? 1.f : 0.1f;  // norms about 153 and 15: clipped, then not
    for (float& v : g) v *= scale;
    copy_into(dg, g, gpu);
    ASSERT_EQ(cudaGraphLaunch(exec, s), cudaSuccess);
    const float ss = to_host<float>(dss, 1, gpu)[0];
    const double want = sum_of_squares(g);
    EXPECT_NEAR(ss, want, 1e-5 * want) << "replay " << t;
    kestrel::cpu::sgd_update(b.p.data(), g.data(), b.s0.data(), n, c, &lr, &t, nullptr, b.p16.data(),
                             kestrel::GradClip{&ss, 50.f});
  }
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  b.expect_equal(n, gpu, "clipped graph replay");
}
