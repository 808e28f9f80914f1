// Determinism on CUDA: with deterministic cuDNN engines the same seed gives bit-identical
// losses for 100 training steps, CUDA Graph replay included.
#include <gtest/gtest.h>

#include "kestrel/core/executor.h"
#include "kestrel/layers/nn.h"
#include "kestrel/layers/resnet.h"
#include "test_support.h"

using namespace kestrel;

namespace {
std::vector<float> train_losses(std::uint64_t seed, int steps, bool cuda_graph, DType dtype, Layout layout) {
  GraphOptions o;
  o.batch = 16;
  o.dtype = dtype;
  o.layout = layout;
  Graph g(o);
  const Value x = nn::image_input(g, "x", 3, 16, 16);
  const Value labels = nn::label_input(g, "labels");
  ResNetConfig cfg;
  cfg.blocks_per_stage = 1;
  cfg.widths = {16, 32};
  cfg.dropout = 0.2f;
  nn::softmax_cross_entropy(g, build_resnet(g, x, cfg), labels);
  Context ctx(Device::cuda(0));
  ConvPolicy p;
  p.deterministic = true;
  ctx.set_conv_policy(p);
  ParameterStore store(g, ctx, seed);
  CompileOptions co;
  co.sgd.momentum = 0.9f;
  Executor ex(g, store, ctx, co);
  Tensor host_x = Tensor::empty_cpu(ex.input("x").shape(), DType::kFloat32, layout);
  Stream cpu;
  host_x.fill_uniform(seed, -1.f, 1.f, cpu);
  if (dtype == DType::kFloat32) {
    ex.bind_input("x", host_x);
  } else {
    ex.bind_input("x", Tensor::from_vector(host_x.to_float_vector(), host_x.shape(), dtype, layout));
  }
  Tensor host_l = Tensor::empty_cpu(ex.input("labels").shape(), DType::kInt32);
  for (std::int64_t i = 0; i < host_l.numel(); ++i) host_l.data_as<std::int32_t>()[i] = static_cast<std::int32_t>(i % 10);
  ex.bind_input("labels", host_l);
  std::vector<float> losses;
  Tensor loss_host = Tensor::empty_cpu(Shape{1}, DType::kFloat32);
  for (int s = 0; s < steps; ++s) {
    store.set_learning_rate(0.05f);
    ex.run();
    if (cuda_graph && s == 0) ex.capture_cuda_graph();
    loss_host.copy_from(ex.output("loss"), ctx.stream());
    losses.push_back(loss_host.data_as<float>()[0]);
  }
  return losses;
}
}  // namespace

TEST(DeterminismCuda, SameSeedGivesBitIdenticalLossesFor100Steps) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  for (DType t : {DType::kFloat32, DType::kBFloat16}) {
    const Layout l = t == DType::kFloat32 ? Layout::kNCHW : Layout::kNHWC;
    const auto eager = train_losses(5, 100, false, t, l);
    EXPECT_TRUE(kestrel::testing::bit_equal(train_losses(5, 100, false, t, l), eager)) << dtype_name(t);
    EXPECT_TRUE(kestrel::testing::bit_equal(train_losses(5, 100, true, t, l), eager)) << dtype_name(t) << " with CUDA Graph";
  }
}
