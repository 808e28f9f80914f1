// Context's host-side contract, on a CPU context: the growable workspace (reused while big
// enough, the old buffer freed when it grows, the limit inclusive), the convolution policy
// handed to the plan cache and frozen once it exists, the refusal of cuDNN and cuBLAS handles
// on the CPU, and the trainer's device helpers that run on any context.
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <vector>

#include "error_text.h"
#include "kestrel/core/context.h"
#include "kestrel/core/tensor.h"
#include "kestrel/kernels/conv.h"
#include "kestrel/kernels/conv_desc.h"
#include "kestrel/layers/trainer_device_internal.h"

namespace {

using kestrel::Context;
using kestrel::Device;
using kestrel::testing::error_of;

TEST(Context, TheWorkspaceIsReusedWhileBigEnoughAndTheOldOneFreedWhenItGrows) {
  Context ctx(Device::cpu());
  EXPECT_EQ(ctx.description(), "cpu");
  void* small = ctx.workspace(5000);  // 5056 bytes with the CPU allocator's 64-byte rounding
  ASSERT_NE(small, nullptr);
  EXPECT_EQ(ctx.workspace_bytes(), 5000u);
  EXPECT_EQ(ctx.workspace(5000), small);  // the same size again: no new allocation
  EXPECT_EQ(ctx.workspace(1000), small);  // smaller: the same buffer
  EXPECT_EQ(ctx.workspace_bytes(), 5000u);
  EXPECT_EQ(ctx.allocator()->stats().allocations, 1u);
  (void)ctx.workspace(20000);  // grows: 20032 bytes, the 5056 given back
  EXPECT_EQ(ctx.workspace_bytes(), 20000u);
  EXPECT_EQ(ctx.allocator()->stats().allocations, 2u);
  EXPECT_EQ(ctx.allocator()->stats().current_bytes, 20032u);
}

TEST(Context, TheWorkspaceLimitIsInclusive) {
  Context ctx(Device::cpu());
  ctx.set_workspace_limit(4096);
  EXPECT_NE(ctx.workspace(4096), nullptr);
  const std::string e = error_of([&] { (void)ctx.workspace(4097); });
  EXPECT_NE(e.find("workspace request of 4097 bytes exceeds the context's limit of 4096 bytes"), std::string::npos) << e;
  EXPECT_EQ(ctx.workspace_bytes(), 4096u) << "a refused request keeps the workspace it had";
}

TEST(Context, TheConvPolicyReachesThePlanCacheAndIsFrozenOnceItExists) {
  Context ctx(Device::cpu());
  kestrel::ConvPolicy p;
  p.deterministic = !p.deterministic;
  p.autotune = !p.autotune;
  p.allow_tf32 = !p.allow_tf32;
  p.workspace_limit = 12345;
  ctx.set_conv_policy(p);
  const kestrel::ConvPolicy& got = ctx.conv_plans().policy();
  EXPECT_EQ(got.deterministic, p.deterministic);
  EXPECT_EQ(got.autotune, p.autotune);
  EXPECT_EQ(got.allow_tf32, p.allow_tf32);
  EXPECT_EQ(got.workspace_limit, p.workspace_limit);
  const std::string e = error_of([&] { ctx.set_conv_policy(kestrel::ConvPolicy{}); });
  EXPECT_NE(e.find("set_conv_policy must come before the first conv_plans()"), std::string::npos) << e;
  EXPECT_EQ(ctx.conv_plans().policy().workspace_limit, 12345u);
}

TEST(Context, CudnnAndCublasHandlesAreRefusedOnTheCpu) {
  Context ctx(Device::cpu());
  const std::string a = error_of([&] { (void)ctx.cudnn(); });
  EXPECT_NE(a.find("cuDNN is only available on CUDA contexts, not cpu"), std::string::npos) << a;
  const std::string b = error_of([&] { (void)ctx.cublas(); });
  EXPECT_NE(b.find("cuBLAS is only available on CUDA contexts, not cpu"), std::string::npos) << b;
}

// The trainer's step counters go through these (8 bytes each, both directions).
TEST(TrainerDevice, Int64CopiesMoveEveryByteBothWays) {
  Context ctx(Device::cpu());
  std::mt19937_64 rng(29);
  std::vector<std::int64_t> src(5), mid(5, 0), back(5, 0);
  for (std::int64_t& v : src) v = static_cast<std::int64_t>(rng());
  kestrel::trainer_detail::write_int64(ctx, mid.data(), src.data(), 5);
  EXPECT_EQ(mid, src);
  kestrel::trainer_detail::read_int64(ctx, mid.data(), back.data(), 5);
  EXPECT_EQ(back, src);
}

// Peak memory is reported in megabytes (10^6 bytes, as the JSON logs say), and is the peak, not
// what is in use when asked.
TEST(TrainerDevice, PeakMemoryIsThePeakInMegabytes) {
  Context ctx(Device::cpu());
  {
    const kestrel::Tensor t = kestrel::Tensor::empty(kestrel::Shape{750000}, kestrel::DType::kFloat32, ctx);
    EXPECT_EQ(kestrel::trainer_detail::peak_memory_mb(ctx), 3.0);
  }
  EXPECT_EQ(ctx.allocator()->stats().current_bytes, 0u);
  EXPECT_EQ(kestrel::trainer_detail::peak_memory_mb(ctx), 3.0);
}

TEST(TrainerDevice, CountCorrectRefusesRowsOutsideTheBatch) {
  Context ctx(Device::cpu());
  const kestrel::Tensor logits =
      kestrel::Tensor::from_vector({0.5f, -1.f, 0.25f, 2.f, 1.f, -0.5f}, kestrel::Shape{3, 2});
  const kestrel::Tensor labels = kestrel::Tensor::from_int32_vector({0, 0, 1}, kestrel::Shape{3});
  std::int64_t correct = 10;  // added to (an epoch's count)
  kestrel::trainer_detail::count_correct(ctx, logits, labels, 3, &correct);
  EXPECT_EQ(correct, 11);  // argmaxes 0, 1, 0 against labels 0, 0, 1
  for (const std::int64_t rows : {std::int64_t{-1}, std::int64_t{4}}) {
    const std::string e = error_of([&] { kestrel::trainer_detail::count_correct(ctx, logits, labels, rows, &correct); });
    EXPECT_NE(e.find("count_correct: " + std::to_string(rows) + " rows of"), std::string::npos) << e;
  }
}

}  // namespace

namespace {
TEST(Context, EventsAreRefusedOnTheCpu) {
  const std::string e = error_of([] { kestrel::Event ev(Device::cpu(), false); });
  EXPECT_NE(e.find("events exist only on CUDA devices, got cpu"), std::string::npos) << e;
}
}  // namespace
