// Recomputing BN+ReLU outputs in backward (CompileOptions::recompute_bn_relu, core/recompute.h)
// on the CPU backend: the normalise pass alone rebuilds the training forward's output bit for
// bit; training ResNets with and without recomputation gives bit-identical losses, gradients and
// parameters; and the planned arena shrinks by about one of the four activations a block keeps.
#include <gtest/gtest.h>

#include "dtype_buffer.h"
#include "grad_check.h"
#include "test_support.h"
#include "kestrel/core/executor.h"
#include "kestrel/layers/nn.h"
#include "kestrel/kernels/cpu/batchnorm.h"
#include "kestrel/layers/trainer.h"

using namespace kestrel;
using kestrel::testing::random_floats;

namespace {

struct ApplyCase {
  DType dtype;
  Layout layout;
  BnActivation act;
};

}  // namespace

TEST(BatchNormApply, RebuildsTheTrainingForwardOutputBitForBit) {
  const BatchNormDims d{3, 5, 7 * 7, Layout::kNCHW};
  for (const ApplyCase c : {ApplyCase{DType::kFloat32, Layout::kNCHW, BnActivation::kRelu},
                            ApplyCase{DType::kFloat32, Layout::kNHWC, BnActivation::kNone},
                            ApplyCase{DType::kBFloat16, Layout::kNHWC, BnActivation::kRelu},
                            ApplyCase{DType::kBFloat16, Layout::kNCHW, BnActivation::kAddRelu}}) {
    BatchNormDims dims = d;
    dims.layout = c.layout;
    const std::size_t n = static_cast<std::size_t>(d.n * d.c * d.hw);
    const Shape shape{d.n, d.c, 7, 7};
    // Channels with offsets and scales far from (0, 1), so rounding differences would show.
    std::vector<float> xs = random_floats(n, 3, -2.f, 2.f);
    for (std::size_t i = 0; i < n; ++i) xs[i] = xs[i] * 3.f + 10.f;
    const Tensor x = Tensor::from_vector(xs, shape, c.dtype, c.layout);
    const Tensor res = Tensor::from_vector(random_floats(n, 4, -1.f, 1.f), shape, c.dtype, c.layout);
    const std::vector<float> gamma = random_floats(d.c, 5, 0.5f, 1.5f);
    const std::vector<float> beta = random_floats(d.c, 6, -0.5f, 0.5f);
    std::vector<float> rm(d.c, 0.f), rv(d.c, 1.f), mean(d.c), invstd(d.c);
    const void* r = c.act == BnActivation::kAddRelu ? res.data() : nullptr;
    Tensor y = Tensor::empty_cpu(shape, c.dtype, c.layout);
    Tensor again = Tensor::empty_cpu(shape, c.dtype, c.layout);
    cpu::batchnorm_forward_training(x.data(), r, y.data(), c.dtype, dims, gamma.data(), beta.data(), 1e-5f,
                                    0.1f, rm.data(), rv.data(), mean.data(), invstd.data(), c.act, nullptr);
    cpu::batchnorm_forward_apply(x.data(), r, again.data(), c.dtype, dims, gamma.data(), beta.data(),
                                 mean.data(), invstd.data(), c.act);
    const auto* a = static_cast<const std::uint8_t*>(y.data());
    const auto* b = static_cast<const std::uint8_t*>(again.data());
    EXPECT_TRUE(kestrel::testing::bit_equal(std::vector<std::uint8_t>(a, a + y.nbytes()),
                                            std::vector<std::uint8_t>(b, b + again.nbytes())))
        << dtype_name(c.dtype) << " " << layout_name(c.layout) << " act " << static_cast<int>(c.act);
  }
}

TEST(BatchNormApply, RejectsMissingStatisticsAndAStrayResidual) {
  const BatchNormDims d{2, 3, 4, Layout::kNCHW};
  std::vector<float> x(24, 1.f), y(24), s(3, 1.f);
  EXPECT_THROW(cpu::batchnorm_forward_apply(x.data(), nullptr, y.data(), DType::kFloat32, d, nullptr, nullptr,
                                            nullptr, s.data(), BnActivation::kRelu),
               Error);
  EXPECT_THROW(cpu::batchnorm_forward_apply(x.data(), x.data(), y.data(), DType::kFloat32, d, nullptr, nullptr,
                                            s.data(), s.data(), BnActivation::kRelu),
               Error);
  EXPECT_THROW(cpu::batchnorm_forward_apply(x.data(), nullptr, y.data(), DType::kFloat16, d, nullptr, nullptr,
                                            s.data(), s.data(), BnActivation::kRelu),
               Error);
}

namespace {

struct TrainRun {
  std::vector<float> losses;
  std::vector<float> params, grads;
  PlanStats stats;
};

// A few SGD steps of a narrow ResNet-8 on random 32x32 images, with or without recomputation.
TrainRun train(int version, DType dtype, Layout layout, bool recompute, int steps = 3) {
  TrainerConfig cfg;
  cfg.net = resnet_config("resnet8", version);
  cfg.net.widths = {4, 8, 8};
  cfg.net.stem_width = 4;
  cfg.dtype = dtype;
  cfg.layout = layout;
  const Graph g = build_training_graph(cfg, 4);
  Context ctx;
  ParameterStore store(g, ctx, 21);
  CompileOptions co;
  co.sgd.momentum = 0.9f;
  co.sgd.nesterov = true;
  co.sgd.weight_decay = 5e-4f;
  co.recompute_bn_relu = recompute;
  Executor ex(g, store, ctx, co);
  store.set_learning_rate(0.1f);
  TrainRun r;
  for (int s = 0; s < steps; ++s) {
    kestrel::testing::feed_uniform(ex, "images", 100 + static_cast<std::uint64_t>(s));
    kestrel::testing::feed_labels(ex, "labels", 10);
    ex.run();
    r.losses.push_back(ex.output("loss").to_float_vector()[0]);
  }
  r.params = store.flat_params().to_float_vector();
  r.grads = store.flat_grads().to_float_vector();
  r.stats = ex.stats();
  return r;
}

}  // namespace

TEST(RecomputeBnRelu, TrainsBitIdenticallyWithLessActivationMemory) {
  struct Case {
    int version;
    DType dtype;
    Layout layout;
  };
  for (const Case c : {Case{1, DType::kFloat32, Layout::kNCHW}, Case{2, DType::kFloat32, Layout::kNCHW},
                       Case{1, DType::kBFloat16, Layout::kNHWC}}) {
    SCOPED_TRACE("v" + std::to_string(c.version) + " " + dtype_name(c.dtype) + " " + layout_name(c.layout));
    const TrainRun keep = train(c.version, c.dtype, c.layout, false);
    const TrainRun rebuild = train(c.version, c.dtype, c.layout, true);
    EXPECT_EQ(keep.stats.recomputed, 0);
    EXPECT_GT(rebuild.stats.recomputed, 0);
    EXPECT_TRUE(kestrel::testing::bit_equal(keep.losses, rebuild.losses));
    EXPECT_TRUE(kestrel::testing::bit_equal(keep.grads, rebuild.grads));
    EXPECT_TRUE(kestrel::testing::bit_equal(keep.params, rebuild.params));
    EXPECT_EQ(rebuild.stats.backward_nodes, keep.stats.backward_nodes + rebuild.stats.recomputed);
    EXPECT_LT(rebuild.stats.arena_bytes, keep.stats.arena_bytes);
    if (c.version == 1) {
      // v1: the stem's BN+ReLU and the first BN+ReLU of each of the three blocks.
      EXPECT_EQ(rebuild.stats.recomputed, 4);
      // One of the four activations a block keeps (stem: one of two): at least 15% less.
      EXPECT_LT(static_cast<double>(rebuild.stats.arena_bytes), 0.85 * static_cast<double>(keep.stats.arena_bytes));
    }
  }
}

TEST(RecomputeBnRelu, ResNet56PlanKeepsAQuarterLess) {
  // The plan alone (no step is run): ResNet-56 at batch 64, fp32, as benchmarked.
  TrainerConfig cfg;
  cfg.net = resnet_config("resnet56", 1);
  const Graph g = build_training_graph(cfg, 64);
  Context ctx;
  ParameterStore store(g, ctx, 1);
  CompileOptions keep_opts, rebuild_opts;
  keep_opts.recompute_bn_relu = false;
  rebuild_opts.recompute_bn_relu = true;
  const PlanStats keep = Executor(g, store, ctx, keep_opts).stats();
  const PlanStats rebuild = Executor(g, store, ctx, rebuild_opts).stats();
  EXPECT_EQ(rebuild.recomputed, 28);  // stem + 27 blocks
  const double ratio = static_cast<double>(rebuild.arena_bytes) / static_cast<double>(keep.arena_bytes);
  EXPECT_GT(ratio, 0.70);
  EXPECT_LT(ratio, 0.80);
}

TEST(RecomputeBnRelu, InferenceHasNothingToRebuild) {
  TrainerConfig cfg;
  cfg.net = resnet_config("resnet8", 1);
  cfg.net.widths = {4, 8, 8};
  cfg.net.stem_width = 4;
  const Graph g = build_training_graph(cfg, 2);
  Context ctx;
  ParameterStore store(g, ctx, 1);
  CompileOptions co;
  co.training = false;
  co.recompute_bn_relu = true;  // nothing to rebuild without a backward pass
  EXPECT_EQ(Executor(g, store, ctx, co).stats().recomputed, 0);
}

// A BN+ReLU output that is also a graph output is kept to the end anyway: rebuilding it for the
// backward pass would save nothing, so it is not recomputed (the same net without the output
// mark rebuilds its one BN+ReLU).
TEST(RecomputeBnRelu, AnOutputIsNotRebuilt) {
  for (const bool marked : {false, true}) {
    SCOPED_TRACE(marked ? "marked as an output" : "not an output");
    Graph g(kestrel::testing::graph_options(2));
    const Value x = nn::image_input(g, "x", 3, 4, 4);
    const Value act = nn::relu(g, nn::batch_norm(g, "bn", nn::conv2d(g, "conv", x, 4, 3, {1, 1})));
    if (marked) g.mark_output(act, "act");
    nn::softmax_cross_entropy(g, nn::linear(g, "fc", nn::global_avg_pool(g, act), 3), nn::label_input(g, "labels"));
    Context ctx;
    ParameterStore store(g, ctx, 1);
    CompileOptions co;
    co.optimizer = OptimizerKind::kNone;
    co.recompute_bn_relu = true;
    EXPECT_EQ(Executor(g, store, ctx, co).stats().recomputed, marked ? 0 : 1);
  }
}
