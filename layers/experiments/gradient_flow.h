// Seed experiment 3: vanishing and exploding gradients, through depth and through time.
//
// Depth: a deep MLP (Linear -> activation, `depth` times, then a linear classifier) on image
// features, as a sigmoid net (Xavier init), a ReLU net (He init) and a residual ReLU net
// (h <- h + W relu(h), branch weights He-init scaled by 1/sqrt(depth) so the identity path
// dominates). Each is built with its initial weights multiplied by every gain in `gains` (< 1:
// vanishing, > 1: exploding). For every layer l the norms of the backward signal d loss / d h_l
// (h_l: the layer's output, read through a zero-valued probe input added to it, whose input
// gradient the executor computes) and of d loss / d W_l are recorded at initialisation and again
// after `train_steps` SGD steps (momentum 0.9) on the training images.
//
// Time: an RNN (tanh) and an LSTM (forget-gate bias 1, and 0 for contrast) read T random input
// vectors; a linear classifier reads the last hidden state. The norm of d loss / d x_t (the
// executor's input gradient) over the batch is recorded for every step t.
#pragma once

#include <cstdint>
#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include "kestrel/core/context.h"
#include "kestrel/layers/svg_chart.h"

namespace kestrel::experiments {

struct GradientFlowConfig {
  // Depth.
  int depth = 30;
  std::int64_t width = 64;
  std::int64_t batch = 64;
  std::vector<double> gains = {0.5, 1.0, 2.0};
  int train_steps = 50;
  float learning_rate = 0.01f;
  std::int64_t train_images = 512;
  int crop = 8, pool = 1;  // image features: the centre crop x crop pixels (3 * crop^2 values)
  std::string data_dir;    // real CIFAR-10 when set, else the synthetic stand-in
  // Time.
  int steps = 100;                 // T
  std::int64_t seq_batch = 16, seq_features = 8, hidden = 32, seq_classes = 10;
  std::uint64_t seed = 1;

  static GradientFlowConfig quick();
  static GradientFlowConfig full();
};

// One deep network: "sigmoid", "relu" or "residual" at one gain.
struct DepthRun {
  std::string kind;
  double gain = 1.0;
  std::vector<double> init_norms;     // |d loss / d W_l|, l = 1..depth
  std::vector<double> trained_norms;  // the same after train_steps steps (may hold inf / NaN)
  std::vector<double> init_signal;    // |d loss / d h_l|, l = 1..depth
  std::vector<double> trained_signal;
  double init_loss = 0.0, trained_loss = 0.0;
  std::string label() const;          // "relu x2"
};

// One recurrent network: "RNN (tanh)", "LSTM (forget bias 1)", "LSTM (forget bias 0)".
struct TimeRun {
  std::string name;
  std::vector<double> input_grad_norms;  // index t = 0..T-1: |d loss / d x_t|
  // |d loss / d x_t| at T - 1 - t = distance (distance 0 is the last step).
  double at_distance(int distance) const;
};

struct GradientFlowResult {
  GradientFlowConfig config;
  std::vector<DepthRun> depth_runs;
  std::vector<TimeRun> time_runs;
  std::string data_source;
  const DepthRun& depth_run(const std::string& kind, double gain) const;  // raises when missing
  const TimeRun& time_run(const std::string& name) const;
};

// after_each (when given) sees the result so far once the data has loaded (nothing computed yet:
// the moment to clear an earlier run's report) and after each deep MLP and each recurrent run, so
// a caller can rewrite its report as the run goes.
GradientFlowResult run_gradient_flow(const GradientFlowConfig& cfg, Context& ctx, std::ostream* log,
                                     const std::function<void(const GradientFlowResult&)>& after_each = {});

// Charts and tables: gradient_flow_init.svg (|dL/dh_l| at initialisation), gradient_flow_weights.svg
// (|dL/dW_l| at initialisation), gradient_flow_trained.svg (|dL/dh_l| after training),
// gradient_flow_depth.csv, gradient_flow_time.svg, gradient_flow_time.csv in `dir`; for a partial
// result, only the parts it has (a chart with no drawable point yet is left out; stale copies
// are removed). Returns the paths written: the charts, then the tables.
enum class DepthView { kSignalInit, kWeightsInit, kSignalTrained };
LineChart depth_chart(const GradientFlowResult& r, DepthView view);
LineChart time_chart(const GradientFlowResult& r);
std::vector<std::string> write_gradient_flow_report(const GradientFlowResult& r, const std::string& dir);

}  // namespace kestrel::experiments
