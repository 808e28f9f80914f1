// BN+ReLU recomputation on CUDA (CompileOptions::recompute_bn_relu): the normalise pass alone
// (cuda::batchnorm_forward_apply) rebuilds the training forward's output bit for bit, also at an
// output pointer one element off 16-byte alignment (another vector width); and training with recomputation gives the
// same losses bit for bit as without it, eager and as a CUDA Graph, with less peak memory.
#include <gtest/gtest.h>

#include <random>

#include "storage_test_util.h"
#include "test_support.h"
#include "kestrel/core/executor.h"
#include "kestrel/kernels/batchnorm.h"
#include "kestrel/layers/trainer.h"

using namespace kestrel;
using kestrel::testing::DeviceBuffer;

TEST(BatchNormApplyCuda, RebuildsTheTrainingForwardOutputBitForBit) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  for (DType dtype : {DType::kFloat32, DType::kBFloat16}) {
    for (Layout layout : {Layout::kNCHW, Layout::kNHWC}) {
      // 8 x 8 planes and 16 channels: y is written 16 bytes at a time in both layouts.
      const BatchNormDims d{7, 16, 8 * 8, layout};
      const std::size_t n = static_cast<std::size_t>(d.n * d.c * d.hw);
      std::mt19937 rng(9);
      std::uniform_real_distribution<float> u(-2.f, 2.f);
      std::vector<float> xs(n), gamma(d.c), beta(d.c);
      for (float& v : xs) v = 3.f * u(rng) + 5.f;
      for (float& v : gamma) v = 1.f + 0.25f * u(rng);
      for (float& v : beta) v = 0.25f * u(rng);
      const Tensor host = Tensor::from_vector(xs, Shape{d.n, d.c, 8, 8}, dtype, layout);
      const std::size_t bytes = host.nbytes();
      // The rebuilt output one element off a 16-byte boundary: element by element, where y was
      // written with 16-byte vectors.
      DeviceBuffer x(bytes), y(bytes), again(bytes, dtype_size(dtype)), g(gamma), b(beta);
      x.upload(host.data(), bytes);
      // Different garbage in the two outputs: an element either pass leaves unwritten differs
      // (fresh device memory is often zero, which a skipped ReLU zero would match).
      y.fill_bytes(0xff);
      again.fill_bytes(0x7f);
      DeviceBuffer rm(std::vector<float>(d.c, 0.f)), rv(std::vector<float>(d.c, 1.f));
      DeviceBuffer mean(d.c * sizeof(float)), invstd(d.c * sizeof(float));
      DeviceBuffer ws(cuda::batchnorm_workspace_bytes(d));
      cuda::batchnorm_forward_training(x.get(), nullptr, y.get(), dtype, d, g.f32(), b.f32(), 1e-5f, 0.1f,
                                       rm.f32(), rv.f32(), mean.f32(), invstd.f32(), BnActivation::kRelu,
                                       ws.get(), nullptr);
      cuda::batchnorm_forward_apply(x.get(), nullptr, again.get(), dtype, d, g.f32(), b.f32(), mean.f32(),
                                    invstd.f32(), BnActivation::kRelu, nullptr);
      EXPECT_TRUE(kestrel::testing::bit_equal(y.download<std::uint8_t>(), again.download<std::uint8_t>()))
          << dtype_name(dtype) << " " << layout_name(layout);
    }
  }
}

namespace {

struct CudaRun {
  std::vector<float> losses;
  std::size_t peak_bytes = 0;
  PlanStats stats;
};

CudaRun train(DType dtype, Layout layout, bool recompute, bool cuda_graph) {
  TrainerConfig cfg;
  cfg.net = resnet_config("resnet8", 1);
  cfg.dtype = dtype;
  cfg.layout = layout;
  const Graph g = build_training_graph(cfg, 32);
  Context ctx(Device::cuda(0));
  ConvPolicy p;
  p.deterministic = true;
  ctx.set_conv_policy(p);
  ParameterStore store(g, ctx, 5);
  CompileOptions co;
  co.sgd.momentum = 0.9f;
  co.recompute_bn_relu = recompute;
  Executor ex(g, store, ctx, co);
  ex.input("images").fill_uniform(3, -2.f, 2.f, ctx.stream());
  Tensor labels = Tensor::empty_cpu(Shape{32}, DType::kInt32);
  for (std::int64_t i = 0; i < 32; ++i) labels.data_as<std::int32_t>()[i] = static_cast<std::int32_t>((i * 3) % 10);
  ex.bind_input("labels", labels);
  store.set_learning_rate(0.05f);
  CudaRun r;
  Tensor loss = Tensor::empty_cpu(Shape{1}, DType::kFloat32);
  for (int s = 0; s < 10; ++s) {
    ex.run();
    if (cuda_graph && s == 0) ex.capture_cuda_graph();
    loss.copy_from(ex.output("loss"), ctx.stream());
    r.losses.push_back(loss.data_as<float>()[0]);
  }
  r.peak_bytes = ctx.allocator()->stats().peak_bytes;
  r.stats = ex.stats();
  return r;
}

}  // namespace

TEST(RecomputeBnReluCuda, TrainsBitIdenticallyWithLessPeakMemory) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  for (DType dtype : {DType::kFloat32, DType::kBFloat16}) {
    const Layout layout = dtype == DType::kFloat32 ? Layout::kNCHW : Layout::kNHWC;
    for (bool graph : {false, true}) {
      SCOPED_TRACE(std::string(dtype_name(dtype)) + (graph ? " graph" : " eager"));
      const CudaRun keep = train(dtype, layout, false, graph);
      const CudaRun rebuild = train(dtype, layout, true, graph);
      EXPECT_EQ(rebuild.stats.recomputed, 4);
      EXPECT_TRUE(kestrel::testing::bit_equal(keep.losses, rebuild.losses));
      // Recomputation shrinks the activations' arena. The whole peak also holds the cuDNN and
      // cuBLAS workspaces, which the planner puts in the arena or beside it by a heuristic that
      // may choose differently for the two plans: by at most the largest workspace (bf16 saves
      // about 3 MB here, less than cuBLAS's 4 MiB).
      EXPECT_LT(rebuild.stats.values_arena_bytes, keep.stats.values_arena_bytes);
      EXPECT_LT(rebuild.peak_bytes, keep.peak_bytes + keep.stats.workspace_bytes);
      if (!rebuild.stats.workspace_in_arena && !keep.stats.workspace_in_arena) {
        EXPECT_LT(rebuild.peak_bytes, keep.peak_bytes);  // both: values' arena + one workspace
      }
    }
  }
}
