// The executor on CUDA against the CPU backend: a whole network's loss and every parameter
// gradient (fp32, deterministic cuDNN engines, no TF32), CUDA Graph replay against eager runs,
// dropout masks across replays against the CPU twin at the same offsets, and gradient clipping.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "kestrel/core/executor.h"
#include "kestrel/kernels/batchnorm.h"
#include "kestrel/layers/nn.h"
#include "kestrel/layers/resnet.h"
#include "device_copy.h"
#include "test_support.h"

using namespace kestrel;
using kestrel::testing::host_floats;

namespace {
void build_small_resnet(Graph& g) {
  const Value x = nn::image_input(g, "x", 3, 16, 16);
  const Value labels = nn::label_input(g, "labels");
  ResNetConfig cfg;
  cfg.blocks_per_stage = 1;
  cfg.widths = {8, 16};
  cfg.stem_width = 8;
  cfg.classes = 10;
  const Value logits = build_resnet(g, x, cfg);
  g.mark_output(logits, "logits");
  nn::softmax_cross_entropy(g, logits, labels);
}

// The network of every graph test here, at batch 8 in `layout`.
Graph small_resnet(Layout layout) {
  GraphOptions o;
  o.batch = 8;
  o.layout = layout;
  Graph g(o);
  build_small_resnet(g);
  return g;
}

// Same inputs on both backends: generated on the host, copied to the device.
void feed(Executor& ex, Context& ctx, std::uint64_t seed) {
  Tensor host = Tensor::empty_cpu(ex.input("x").shape(), DType::kFloat32, ex.input("x").layout());
  Stream cpu;
  host.fill_uniform(seed, -1.f, 1.f, cpu);
  ex.bind_input("x", host);
  Tensor labels = Tensor::empty_cpu(ex.input("labels").shape(), DType::kInt32);
  for (std::int64_t i = 0; i < labels.numel(); ++i) labels.data_as<std::int32_t>()[i] = static_cast<std::int32_t>((i * 3) % 10);
  ex.bind_input("labels", labels);
  ctx.stream().synchronize();
}

ConvPolicy exact_policy() {
  ConvPolicy p;
  p.deterministic = true;
  p.allow_tf32 = false;
  return p;
}
}  // namespace

class GraphCuda : public ::testing::TestWithParam<Layout> {};

TEST_P(GraphCuda, WholeNetworkLossAndEveryGradientMatchTheCpuBackend) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  Graph g = small_resnet(GetParam());
  Context cpu, gpu(Device::cuda(0));
  gpu.set_conv_policy(exact_policy());
  ParameterStore cs(g, cpu, 42), gs(g, gpu, 42);
  CompileOptions co;
  co.optimizer = OptimizerKind::kNone;
  Executor ce(g, cs, cpu, co), ge(g, gs, gpu, co);
  feed(ce, cpu, 5);
  feed(ge, gpu, 5);
  ce.run();
  ge.run();
  gpu.stream().synchronize();
  const double loss_c = ce.output("loss").to_float_vector()[0];
  const double loss_g = host_floats(ge.output("loss"), gpu)[0];
  EXPECT_NEAR(loss_g, loss_c, 1e-4 * std::fabs(loss_c)) << "loss";
  for (std::size_t p = 0; p < cs.count(); ++p) {
    if (!cs.trainable(p)) continue;
    const auto c = host_floats(cs.gradient(p), cpu);
    const auto gg = host_floats(gs.gradient(p), gpu);
    double scale = 0;
    for (float v : c) scale = std::max(scale, static_cast<double>(std::fabs(v)));
    // Relative error 1e-4 of each element, measured against the tensor's largest gradient so
    // that entries which cancel to ~0 do not demand more than fp32 can give.
    EXPECT_TRUE(kestrel::testing::all_close(gg, c, 1e-4 * scale, 1e-4)) << cs.name(p);
  }
}

TEST_P(GraphCuda, CudaGraphReplayEqualsEagerExecution) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  Graph g = small_resnet(GetParam());
  Context a(Device::cuda(0)), b(Device::cuda(0));
  a.set_conv_policy(exact_policy());
  b.set_conv_policy(exact_policy());
  ParameterStore sa(g, a, 9), sb(g, b, 9);
  CompileOptions co;
  co.sgd.momentum = 0.9f;
  co.sgd.weight_decay = 5e-4f;
  Executor ea(g, sa, a, co), eb(g, sb, b, co);
  feed(ea, a, 1);
  feed(eb, b, 1);
  std::vector<float> la, lb;
  for (int step = 0; step < 6; ++step) {
    const float lr = 0.1f / (1 + step);
    sa.set_learning_rate(lr);
    sb.set_learning_rate(lr);
    ea.run();
    if (step == 1) eb.capture_cuda_graph();  // after one eager step, as documented
    eb.run();
    la.push_back(host_floats(ea.output("loss"), a)[0]);
    lb.push_back(host_floats(eb.output("loss"), b)[0]);
  }
  EXPECT_TRUE(eb.uses_cuda_graph());
  EXPECT_TRUE(kestrel::testing::bit_equal(lb, la)) << "replayed losses differ from eager ones";
  const auto pa = host_floats(sa.flat_params(), a), pb = host_floats(sb.flat_params(), b);
  EXPECT_TRUE(kestrel::testing::bit_equal(pb, pa)) << "parameters after replays differ";
  EXPECT_EQ(sb.read_counters().step, 6);
}

// Per-node workspaces planned in the arena (batch-norm partials, cuDNN and CUB scratch, alive
// during their node only) against an executor where nothing shares memory (reuse_memory off:
// every value and the scratch keep bytes of their own): the same losses and parameters, bit for
// bit, over steps with momentum. A workspace sized too small for its kernel, or overlapping a
// value live at its node, would change bits here.
TEST_P(GraphCuda, ArenaWorkspacesGiveTheBitsOfAnExecutorWithoutMemoryReuse) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  Graph g = small_resnet(GetParam());
  Context a(Device::cuda(0)), b(Device::cuda(0));
  a.set_conv_policy(exact_policy());
  b.set_conv_policy(exact_policy());
  ParameterStore sa(g, a, 13), sb(g, b, 13);
  CompileOptions shared, separate;
  shared.sgd.momentum = separate.sgd.momentum = 0.9f;
  separate.reuse_memory = false;
  Executor ea(g, sa, a, shared), eb(g, sb, b, separate);
  EXPECT_GT(ea.stats().workspace_bytes, 0u) << "batch norm's partials need scratch on CUDA";
  EXPECT_TRUE(ea.stats().workspace_in_arena)
      << "the planner put the scratch in a separate buffer: this test then no longer covers the "
         "per-node workspaces (arena " << ea.stats().arena_bytes << " bytes)";
  EXPECT_FALSE(eb.stats().workspace_in_arena);
  feed(ea, a, 3);
  feed(eb, b, 3);
  sa.set_learning_rate(0.05f);
  sb.set_learning_rate(0.05f);
  std::vector<float> la, lb;
  for (int step = 0; step < 4; ++step) {
    ea.run();
    eb.run();
    la.push_back(host_floats(ea.output("loss"), a)[0]);
    lb.push_back(host_floats(eb.output("loss"), b)[0]);
  }
  EXPECT_NE(la.front(), la.back()) << "the steps did not train";
  EXPECT_TRUE(kestrel::testing::bit_equal(la, lb)) << "losses differ with workspaces in the arena";
  EXPECT_TRUE(kestrel::testing::bit_equal(host_floats(sa.flat_params(), a), host_floats(sb.flat_params(), b)))
      << "parameters differ with workspaces in the arena";
}

// An executor on another context than its store's (another stream on the same device): each run
// waits for the store's stream, and the store's stream for the run, eager and replayed: the bits
// of a one-context run. So that a missing wait shows, every step first rewrites the stem's weights
// with a kernel queued on the store's stream behind a 1 GiB fill (a few hundred microseconds):
// unordered, the step's first convolution would read the previous weights. The parameters are
// read back on the store's stream at the end (unordered, they would race the last update).
TEST(GraphCudaContexts, AnExecutorOnAnotherContextIsOrderedWithItsStoresStream) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  Graph g = small_resnet(Layout::kNCHW);
  Context one(Device::cuda(0)), store_ctx(Device::cuda(0)), run_ctx(Device::cuda(0));
  for (Context* c : {&one, &store_ctx, &run_ctx}) c->set_conv_policy(exact_policy());
  ParameterStore s1(g, one, 21), s2(g, store_ctx, 21);
  CompileOptions co;
  co.sgd.momentum = 0.9f;
  Executor e1(g, s1, one, co), e2(g, s2, run_ctx, co);
  feed(e1, one, 4);
  feed(e2, run_ctx, 4);
  Tensor busy = Tensor::empty(Shape{std::int64_t{1} << 28}, DType::kFloat32, store_ctx);
  std::vector<float> l1, l2;
  for (int step = 0; step < 5; ++step) {
    const auto seed = static_cast<std::uint64_t>(100 + step);
    const float lr = 0.2f / static_cast<float>(1 + step);
    s1.value("conv1.weight").fill_uniform(seed, -0.3f, 0.3f, one.stream());
    s1.set_learning_rate(lr);
    busy.fill_uniform(seed, -1.f, 1.f, store_ctx.stream());
    s2.value("conv1.weight").fill_uniform(seed, -0.3f, 0.3f, store_ctx.stream());
    s2.set_learning_rate(lr);
    if (step == 2) e2.capture_cuda_graph();
    e1.run();
    e2.run();
    l1.push_back(host_floats(e1.output("loss"), one)[0]);
    l2.push_back(host_floats(e2.output("loss"), run_ctx)[0]);
  }
  EXPECT_TRUE(e2.uses_cuda_graph());
  EXPECT_NE(l1.front(), l1.back()) << "the steps did not train";
  EXPECT_TRUE(kestrel::testing::bit_equal(l2, l1)) << "losses differ across contexts";
  EXPECT_TRUE(kestrel::testing::bit_equal(host_floats(s2.flat_params(), store_ctx), host_floats(s1.flat_params(), one)))
      << "parameters read on the store's stream differ";
}

// Capturing before an eager step would initialise cuBLAS inside the capture (whose allocation
// the capture refuses, with a confusing message): refused up front, and fine after one step.
TEST(GraphCudaContexts, CaptureBeforeAnEagerRunIsRefused) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  Graph g = small_resnet(Layout::kNCHW);
  Context ctx(Device::cuda(0));
  ParameterStore store(g, ctx, 5);
  Executor ex(g, store, ctx, CompileOptions{});
  feed(ex, ctx, 2);
  try {
    ex.capture_cuda_graph();
    ADD_FAILURE() << "captured before an eager run";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("eagerly once first"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(ex.uses_cuda_graph());
  // Forward and backward alone are not enough: the first update (CUB's gradient norm, the fused
  // optimizer's launch settings) must not happen inside the capture either.
  ex.run_forward_backward();
  EXPECT_THROW(ex.capture_cuda_graph(), Error);
  ex.apply_update();
  ex.run();
  ex.capture_cuda_graph();
  ex.run();
  EXPECT_TRUE(ex.uses_cuda_graph());
  EXPECT_TRUE(std::isfinite(host_floats(ex.output("loss"), ctx)[0]));
}

// Batch norm asks for scratch (its per-block partial statistics) only when it reduces them, in
// training; inference normalises with the running statistics and plans none.
TEST(GraphCudaWorkspace, BatchNormPlansScratchForTrainingOnly) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  Context gpu(Device::cuda(0));
  auto bn_graph = [](bool with_loss) {
    GraphOptions o;
    o.batch = 16;
    Graph g(o);
    const Value y = nn::batch_norm(g, "bn", nn::image_input(g, "x", 8, 8, 8));
    g.mark_output(y, "y");
    if (with_loss)  // 8 channels pooled are the logits of 8 classes: no other op with scratch but CE
      nn::softmax_cross_entropy(g, nn::global_avg_pool(g, y), nn::label_input(g, "labels"));
    return g;
  };
  const Graph train_graph = bn_graph(true), eval_graph = bn_graph(false);
  ParameterStore train_store(train_graph, gpu, 1), eval_store(eval_graph, gpu, 1);
  CompileOptions training, inference;
  training.optimizer = OptimizerKind::kNone;
  inference.training = false;
  const std::size_t bn_scratch = cuda::batchnorm_workspace_bytes({16, 8, 64, Layout::kNCHW});
  EXPECT_GE(Executor(train_graph, train_store, gpu, training).stats().workspace_bytes, bn_scratch);
  EXPECT_EQ(Executor(eval_graph, eval_store, gpu, inference).stats().workspace_bytes, 0u);
}

// Gradient clipping on the device (sum of squares reduced by CUB, read by the fused update):
// the norm and the clipped step agree with the CPU backend, and CUDA Graph replays clip each
// step by its own norm exactly as eager runs do.
TEST_P(GraphCuda, ClippedStepsMatchTheCpuBackendAndReplaysEqualEagerRuns) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  Graph g = small_resnet(GetParam());
  Context cpu, a(Device::cuda(0)), b(Device::cuda(0));
  for (Context* c : {&a, &b}) c->set_conv_policy(exact_policy());
  ParameterStore cs(g, cpu, 7), sa(g, a, 7), sb(g, b, 7);
  CompileOptions co;
  co.sgd = SgdConfig{0.f, 0.f, 0.f, false};
  co.max_grad_norm = 0.05f;
  Executor ce(g, cs, cpu, co), ea(g, sa, a, co), eb(g, sb, b, co);
  feed(ce, cpu, 3);
  feed(ea, a, 3);
  feed(eb, b, 3);
  const auto p0 = host_floats(cs.flat_params(), cpu);
  for (ParameterStore* s : {&cs, &sa, &sb}) s->set_learning_rate(0.1f);
  ce.run();
  ea.run();
  eb.run();
  const float norm_c = ce.grad_norm(), norm_g = ea.grad_norm();
  ASSERT_GT(norm_c, 4 * co.max_grad_norm) << "the case must clip";
  EXPECT_NEAR(norm_g, norm_c, 1e-4 * norm_c);
  // Each parameter moved by 0.1 * coef * g, at most 0.1 * 0.05 in norm: fp32 gradients that
  // agree to 1e-4 of the largest give steps that agree to well under 1e-6.
  const auto pc = host_floats(cs.flat_params(), cpu), pa = host_floats(sa.flat_params(), a);
  EXPECT_TRUE(kestrel::testing::all_close(pa, pc, 1e-6, 1e-6));
  double step_sq = 0;
  for (std::size_t i = 0; i < pc.size(); ++i) step_sq += (static_cast<double>(pc[i]) - p0[i]) * (pc[i] - p0[i]);
  EXPECT_NEAR(std::sqrt(step_sq), 0.1 * co.max_grad_norm, 1e-3 * 0.1 * co.max_grad_norm);
  eb.capture_cuda_graph();
  for (int step = 1; step < 5; ++step) {
    ea.run();
    eb.run();
    EXPECT_EQ(host_floats(eb.output("loss"), b)[0], host_floats(ea.output("loss"), a)[0]) << "step " << step;
    EXPECT_EQ(eb.grad_norm(), ea.grad_norm()) << "step " << step;
  }
  EXPECT_TRUE(kestrel::testing::bit_equal(host_floats(sb.flat_params(), b), host_floats(sa.flat_params(), a)));
}

INSTANTIATE_TEST_SUITE_P(Layouts, GraphCuda, ::testing::Values(Layout::kNCHW, Layout::kNHWC),
                         [](const auto& info) { return std::string(layout_name(info.param)); });

TEST(GraphCudaDropout, ReplaysDrawNewMasksThatEqualTheCpuTwinAtTheirOffsets) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  GraphOptions o;
  o.batch = 4;
  Graph g(o);
  const Value x = g.input("x", {Shape{4, 3, 8, 8}});
  const Value labels = nn::label_input(g, "labels");
  const Value d = nn::dropout(g, "drop", x, 0.5f);
  g.mark_output(d, "dropped");
  nn::softmax_cross_entropy(g, nn::linear(g, "fc", nn::flatten(g, d), 10), labels);
  Context cpu, gpu(Device::cuda(0));
  ParameterStore cs(g, cpu, 3), gs(g, gpu, 3);
  CompileOptions co;
  co.optimizer = OptimizerKind::kNone;
  Executor ce(g, cs, cpu, co), ge(g, gs, gpu, co);
  feed(ce, cpu, 8);
  feed(ge, gpu, 8);
  ge.run();
  ge.capture_cuda_graph();
  std::vector<std::vector<float>> masks;
  for (int replay = 0; replay < 2; ++replay) {
    const std::uint64_t offset_before = gs.read_counters().rng_offset;
    ge.run();
    masks.push_back(host_floats(ge.output("dropped"), gpu));
    ParameterStore::Counters c = cs.read_counters();
    c.rng_offset = offset_before;  // the CPU run advances it the same way before drawing
    cs.write_counters(c);
    ce.run();
    EXPECT_TRUE(kestrel::testing::bit_equal(masks.back(), ce.output("dropped").to_float_vector()))
        << "replay " << replay << " differs from the CPU twin at the same offset";
  }
  EXPECT_NE(masks[0], masks[1]) << "two replays drew the same dropout mask";
}
