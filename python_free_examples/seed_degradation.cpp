// seed_degradation: the degradation problem (layers/experiments/degradation.h). Trains plain and
// residual CIFAR networks of two depths (plain-20/56, ResNet-20/56 and ResNet-56 with v2 blocks;
// --quick: depths 8 and 20, narrow, 8x8 images) on the same data and schedule, and plots their
// training loss and test error. Writes degradation_*.svg and degradation.csv to --out.
// --dtype bf16 --layout nhwc halves a GPU run's time (He et al. trained in fp32, the default).
#include <iostream>

#include "kestrel/layers/experiments/degradation.h"
#include "seed_program.h"
#include "stdout_check.h"

int main(int argc, char** argv) {
  kestrel::programs::fail_on_unwritable_stdout("seed_degradation");
  return seed::run_program(argc, argv, "seed_degradation", "deeper plain networks train worse, residual ones do not",
                           {"--steps", seed::length_help("training steps of each network", kestrel::experiments::DegradationConfig::full().steps)},
                           [](const seed::Options& o, kestrel::Context& ctx) {
                             using kestrel::experiments::DegradationConfig;
                             DegradationConfig cfg = o.quick ? DegradationConfig::quick() : DegradationConfig::full();
                             cfg.seed = o.seed;
                             cfg.data_dir = o.data;
                             if (o.length > 0) cfg.steps = o.length;
                             cfg.dtype = kestrel::parse_dtype(o.dtype);
                             cfg.layout = o.layout == "nhwc" ? kestrel::Layout::kNHWC : kestrel::Layout::kNCHW;
                             // The report is rewritten as the run goes, so a run stopped early (a GPU
                             // call's time limit) keeps the parts it finished; an earlier run's files go
                             // once the data has loaded (a bad --data loses nothing), so they never pass
                             // for this run's.
                             const auto r = kestrel::experiments::run_degradation(
                                 cfg, ctx, &std::cout, [&](const kestrel::experiments::DegradationResult& so_far) {
                                   kestrel::experiments::write_degradation_report(so_far, o.out);
                                 });
                             return kestrel::experiments::write_degradation_report(r, o.out);
                           },
                           /*image_options=*/true);
}
