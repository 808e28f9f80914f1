// The seed experiments on the GPU: the gradient-flow quick run gives the CPU's numbers at
// initialisation (same weights, same data; only summation order and libm differ), and the
// dropout and degradation quick runs show their claims on the GPU as well.
#include <gtest/gtest.h>

#include <cmath>

#include "test_support.h"
#include "kestrel/core/context.h"
#include "kestrel/layers/experiments/degradation.h"
#include "kestrel/layers/experiments/dropout.h"
#include "kestrel/layers/experiments/gradient_flow.h"

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
