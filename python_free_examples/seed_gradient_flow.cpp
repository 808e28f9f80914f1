// seed_gradient_flow: vanishing and exploding gradients (layers/experiments/gradient_flow.h).
// Per-layer gradient norms of a 30-layer MLP (sigmoid, ReLU, residual; initial weights scaled
// x0.5, x1, x2) at initialisation and after some SGD steps, and the gradient reaching the input
// of each of T = 100 steps of an RNN (tanh) and an LSTM. Writes gradient_flow_*.svg and
// gradient_flow_*.csv to --out.
#include <iostream>

#include "kestrel/layers/experiments/gradient_flow.h"
#include "seed_program.h"
#include "stdout_check.h"

int main(int argc, char** argv) {
  kestrel::programs::fail_on_unwritable_stdout("seed_gradient_flow");
  return seed::run_program(argc, argv, "seed_gradient_flow", "vanishing and exploding gradients through depth and time",
                           {"--steps", seed::length_help("training steps of each deep MLP", kestrel::experiments::GradientFlowConfig::full().train_steps)},
                           [](const seed::Options& o, kestrel::Context& ctx) {
                             using kestrel::experiments::GradientFlowConfig;
                             GradientFlowConfig cfg = o.quick ? GradientFlowConfig::quick() : GradientFlowConfig::full();
                             cfg.seed = o.seed;
                             cfg.data_dir = o.data;
                             if (o.length > 0) cfg.train_steps = o.length;
                             // The report is rewritten as the run goes, so a run stopped early (a GPU
                             // call's time limit) keeps the parts it finished; an earlier run's files go
                             // once the data has loaded (a bad --data loses nothing), so they never pass
                             // for this run's.
                             const auto r = kestrel::experiments::run_gradient_flow(
                                 cfg, ctx, &std::cout, [&](const kestrel::experiments::GradientFlowResult& so_far) {
                                   kestrel::experiments::write_gradient_flow_report(so_far, o.out);
                                 });
                             return kestrel::experiments::write_gradient_flow_report(r, o.out);
                           });
}
