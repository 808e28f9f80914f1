// Seed experiment 2: the degradation problem (He et al. 2015). Plain and residual CIFAR networks
// of two depths (layers/resnet.h: 6n+2 layers, BN after every convolution) trained on the same
// data with the same schedule, seed and batch order: the deeper plain network reaches a higher
// training loss than the shallower one (an optimisation problem, not overfitting), while the
// deeper residual network does not; v1 (post-activation) and v2 (pre-activation) residual blocks
// are compared at the larger depth.
#pragma once

#include <cstdint>
#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include "kestrel/core/context.h"
#include "kestrel/core/dtype.h"
#include "kestrel/core/layout.h"
#include "kestrel/layers/svg_chart.h"

namespace kestrel::experiments {

struct DegradationModel {
  std::string name;   // "plain-20", "resnet-56 v2"
  int depth = 20;     // 6n + 2
  bool residual = true;
  int version = 1;
};

struct DegradationConfig {
  std::vector<DegradationModel> models;
  std::vector<std::int64_t> widths = {16, 32, 64};
  std::int64_t stem_width = 16;
  std::int64_t train_images = 50000, test_images = 10000;
  int crop = 32, pool = 1;           // image side = crop / pool
  std::int64_t batch = 128;
  int steps = 20000;
  int eval_every = 1000;             // steps between test evaluations (and loss averages)
  // weight_decay applies to convolution and classifier weights only: BN scales and shifts and
  // biases (every 1-D parameter) are exempt, unlike He et al.
  float learning_rate = 0.1f, momentum = 0.9f, weight_decay = 1e-4f;
  std::vector<double> milestones = {0.5, 0.75};  // learning rate x0.1 at these fractions
  // Residual networks start with every block's branch at zero (v1: the last BN's gamma, Goyal et
  // al. 2017; v2: the last convolution, ResNetConfig::zero_init_last_bn), so each block starts as
  // the identity and a deep net as its shallow counterpart.
  bool zero_init_last_bn = false;
  DType dtype = DType::kFloat32;     // what the networks compute in (fp32 or bf16; fp32 masters)
  Layout layout = Layout::kNCHW;
  bool cuda_graph = true;            // CUDA: replay each training step as a CUDA Graph
  std::string data_dir;              // real CIFAR-10 when set, else synthetic
  std::uint64_t seed = 1;

  static DegradationConfig quick();
  static DegradationConfig full();
};

struct DegradationCurve {
  DegradationModel model;
  std::vector<int> steps;            // the step after which each point was taken
  std::vector<double> train_loss;    // mean training loss over the steps since the last point
  std::vector<double> test_error;    // 1 - test accuracy (inference mode)
  // Mean training loss over the last `points` points; the last test error.
  double final_train_loss(int points = 2) const;
  double final_test_error() const;
};

struct DegradationResult {
  DegradationConfig config;
  std::vector<DegradationCurve> curves;
  std::string data_source;
  const DegradationCurve& curve(const std::string& name) const;  // raises when missing
};

// `after_each` (may be empty) sees the result so far once the data has loaded (nothing trained
// yet: the moment to clear an earlier run's report) and after every model, e.g. to write the
// report as it grows, so that a run cut short (a device call's time limit) keeps the finished curves.
DegradationResult run_degradation(const DegradationConfig& cfg, Context& ctx, std::ostream* log,
                                  const std::function<void(const DegradationResult&)>& after_each = {});

// degradation_train_loss.svg, degradation_test_error.svg, degradation.csv in `dir`, for the
// networks the result has: a chart with no drawable point (no network yet, or a loss that is NaN
// throughout) is left out and the table is written all the same; files with nothing to show are
// removed (an empty result removes all three, as the program does before it starts, so a folder
// never mixes two runs). Returns the paths written: the charts, then the table.
LineChart degradation_chart(const DegradationResult& r, bool test_error);
std::vector<std::string> write_degradation_report(const DegradationResult& r, const std::string& dir);

}  // namespace kestrel::experiments
