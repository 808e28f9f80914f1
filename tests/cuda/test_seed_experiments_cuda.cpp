// The seed experiments on the GPU: the gradient-flow quick run gives the CPU's numbers at
// initialisation (same weights, same data; only summation order and libm differ), and the
// dropout and degradation quick runs show their claims on the GPU as well; the degradation loop's
// CUDA Graph replays equal its eager steps.
#include <gtest/gtest.h>

#include <cmath>

#include "test_support.h"
#include "kestrel/core/context.h"
#include "kestrel/core/executor.h"
#include "kestrel/layers/experiments/common.h"
#include "kestrel/layers/experiments/degradation.h"
#include "kestrel/layers/experiments/dropout.h"
#include "kestrel/layers/experiments/gradient_flow.h"
#include "kestrel/layers/nn.h"

using namespace kestrel;
using namespace kestrel::experiments;

TEST(SeedExperimentsCuda, GradientFlowAtInitialisationMatchesTheCpu) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  Context cpu;
  Context gpu(Device::cuda(0));
  GradientFlowConfig cfg = GradientFlowConfig::quick();
  cfg.train_steps = 0;  // training trajectories may part ways; initialisation must not
  const GradientFlowResult a = run_gradient_flow(cfg, cpu, nullptr);
  const GradientFlowResult b = run_gradient_flow(cfg, gpu, nullptr);
  ASSERT_EQ(a.depth_runs.size(), b.depth_runs.size());
  for (std::size_t i = 0; i < a.depth_runs.size(); ++i) {
    // 30 layers of fp32 rounding in a different order: relative 1e-3 leaves a wide margin.
    EXPECT_TRUE(kestrel::testing::all_close(b.depth_runs[i].init_norms, a.depth_runs[i].init_norms, 0, 1e-3))
        << a.depth_runs[i].label();
    EXPECT_TRUE(kestrel::testing::all_close(b.depth_runs[i].init_signal, a.depth_runs[i].init_signal, 0, 1e-3))
        << a.depth_runs[i].label();
  }
  for (std::size_t i = 0; i < a.time_runs.size(); ++i)
    EXPECT_TRUE(kestrel::testing::all_close(b.time_runs[i].input_grad_norms, a.time_runs[i].input_grad_norms, 0, 1e-3))
        << a.time_runs[i].name;
  EXPECT_GT(b.time_run("LSTM (forget bias 1)").at_distance(50), 1e3 * b.time_run("RNN (tanh)").at_distance(50));
}

TEST(SeedExperimentsCuda, DropoutQuickRunShowsItsClaims) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  Context gpu(Device::cuda(0));
  const DropoutResult r = run_dropout_experiment(DropoutConfig::quick(), gpu, nullptr);
  EXPECT_LT(r.curve(0.5f).final_gap(), r.curve(0.f).final_gap() - 0.05);
  EXPECT_LT(std::fabs(r.ensemble.back().accuracy - r.weight_scaled_accuracy), 0.05);
  EXPECT_GE(r.ensemble.back().agreement, 0.8);
  EXPECT_LT(r.expectation.back().inverted_error, 0.02);
  EXPECT_LT(r.expectation.back().vanilla_error, 0.02);
}

TEST(SeedExperimentsCuda, DegradationQuickRunShowsItsClaims) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  Context gpu(Device::cuda(0));
  const DegradationResult r = run_degradation(DegradationConfig::quick(), gpu, nullptr);
  EXPECT_GT(r.curve("plain-20").final_train_loss(), r.curve("plain-8").final_train_loss() + 0.3);
  EXPECT_LT(r.curve("resnet-20").final_train_loss(), r.curve("resnet-8").final_train_loss() + 0.05);
}

TEST(SeedExperimentsCuda, DegradationReplaysEqualEagerStepsAndTheFeedEqualsTheCpus) {
  // The loop gathers batches on the device and replays each step as a CUDA Graph: the same
  // curves, bit for bit, as eager steps (deterministic convolution engines); and the gathered
  // bf16 NHWC batch is the CPU's byte for byte.
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  Context gpu(Device::cuda(0));
  ConvPolicy exact;
  exact.deterministic = true;
  gpu.set_conv_policy(exact);
  DegradationConfig c = DegradationConfig::quick();
  c.models.resize(2);  // plain-8, plain-20
  c.steps = 40;
  c.eval_every = 20;
  c.dtype = DType::kBFloat16;
  c.layout = Layout::kNHWC;
  DegradationResult r[2];
  for (int graph = 0; graph < 2; ++graph) {
    c.cuda_graph = graph == 1;
    r[graph] = run_degradation(c, gpu, nullptr);
  }
  for (std::size_t m = 0; m < 2; ++m) {
    EXPECT_EQ(r[1].curves[m].train_loss, r[0].curves[m].train_loss) << r[0].curves[m].model.name;
    EXPECT_EQ(r[1].curves[m].test_error, r[0].curves[m].test_error) << r[0].curves[m].model.name;
  }

  const FloatDataset f = to_float_dataset(synthetic_cifar10(64, 8, 3), 64, 8, 32, 1);
  Context cpu;
  std::vector<std::int32_t> positions(32);
  for (std::size_t i = 0; i < positions.size(); ++i) positions[i] = static_cast<std::int32_t>((i * 37) % 64);
  std::vector<float> fed[2];
  for (Context* ctx : {&cpu, &gpu}) {
    GraphOptions o;
    o.batch = 32;
    o.dtype = DType::kBFloat16;
    o.layout = Layout::kNHWC;
    Graph g(o);
    const Value x = nn::image_input(g, "x", 3, 32, 32);
    nn::label_input(g, "labels");
    g.mark_output(nn::flatten(g, x), "logits");
    ParameterStore store(g, *ctx, 1);
    CompileOptions co;
    co.training = false;
    Executor ex(g, store, *ctx, co);
    const DeviceImages d = upload_images(f.train, DType::kBFloat16, Layout::kNHWC, *ctx);
    const Tensor order = device_ints(positions, *ctx);
    feed_batch(ex, d, order, 0, "x", "labels");
    fed[ctx == &gpu] = to_host(ex.input("x"), *ctx);
  }
  EXPECT_TRUE(kestrel::testing::bit_equal(fed[1], fed[0]));
}
