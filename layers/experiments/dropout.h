// Seed experiment 1: overfitting and dropout.
//
// 1. Curves: the same over-parameterised MLP (features -> hidden... -> classes, ReLU, dropout
//    after every hidden layer) trained on a small training subset once per dropout rate p; the
//    train and test accuracy of the weight-scaled network (inference mode) after every epoch.
// 2. Ensemble: the network trained with `ensemble_p` evaluated on the test set as the
//    weight-scaled network (one inference pass, inverted dropout is the identity) and as the
//    average of the softmax outputs of k randomly masked networks (an inference executor with
//    CompileOptions::sample_dropout: training-mode dropout, no batch norm involved), for k =
//    1, 2, 4, ...: accuracy, agreement with the weight-scaled prediction, and mean total-variation
//    distance between the two predicted distributions. The k are nested, not independent: one
//    sequence of max_masks masked runs per batch, and the k-point averages its first k runs.
// 3. Expectation: for inverted and vanilla dropout, the mean over m masks of a dropout layer's
//    training-mode output against its inference output, as a mean relative error, for m = 1, 2,
//    4, ... (both converge to 0 like 1/sqrt(m)); and, for contrast, vanilla dropout's mean
//    against the unscaled input (what forgetting the inference rescaling gives: error p).
#pragma once

#include <cstdint>
#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include "kestrel/core/context.h"
#include "kestrel/layers/svg_chart.h"

namespace kestrel::experiments {

struct DropoutConfig {
  std::vector<float> rates = {0.f, 0.3f, 0.5f};
  std::int64_t train_images = 256, test_images = 512;
  int crop = 8, pool = 1;                 // image features: centre crop, then pool x pool averaging
  std::vector<std::int64_t> hidden = {128, 128};
  std::int64_t batch = 32;
  int epochs = 25;
  float learning_rate = 0.02f, momentum = 0.9f;
  float ensemble_p = 0.5f;                // which trained network the ensemble view uses
  int max_masks = 64;                     // ensemble sizes 1, 2, 4, ..., max_masks
  int expectation_masks = 4096;           // masks averaged in the expectation check
  float expectation_p = 0.5f;
  std::int64_t expectation_elements = 4096;
  std::string data_dir;                   // real CIFAR-10 when set, else synthetic
  std::uint64_t seed = 1;

  static DropoutConfig quick();
  static DropoutConfig full();
};

struct DropoutCurve {
  float p = 0.f;
  std::vector<double> train_accuracy, test_accuracy, train_loss;  // one entry per epoch
  double final_gap() const;  // train - test accuracy after the last epoch
};

struct EnsemblePoint {
  int masks = 0;
  double accuracy = 0.0;      // of the averaged softmax outputs
  double agreement = 0.0;     // fraction of test images where it predicts what weight scaling does
  double tv_distance = 0.0;   // mean total-variation distance to the weight-scaled distribution
};

struct ExpectationPoint {
  int masks = 0;
  double inverted_error = 0.0;  // mean |mean_m(train-mode y) - eval y| / mean |eval y|
  double vanilla_error = 0.0;
  double vanilla_unscaled_error = 0.0;  // vanilla's training mean against x itself
};

struct DropoutResult {
  DropoutConfig config;
  std::vector<DropoutCurve> curves;
  double weight_scaled_accuracy = 0.0;
  std::vector<EnsemblePoint> ensemble;
  std::vector<ExpectationPoint> expectation;
  std::string data_source;
  const DropoutCurve& curve(float p) const;  // raises when missing
};

// after_each (when given) sees the result so far once the data has loaded (nothing trained yet:
// the moment to clear an earlier run's report, which a bad data folder must not lose), after each
// trained curve and after the expectation check, so a caller can rewrite its report as the run
// goes.
DropoutResult run_dropout_experiment(const DropoutConfig& cfg, Context& ctx, std::ostream* log,
                                     const std::function<void(const DropoutResult&)>& after_each = {});

// dropout_accuracy.svg/.csv, dropout_ensemble.svg/.csv, dropout_expectation.svg/.csv in `dir`;
// for a partial result, only the parts it has (stale copies of the others are removed; an empty
// result removes all six, as the program does before it starts). A chart with no drawable point
// is left out and its table written all the same. Returns the paths written: the charts, then
// the tables.
LineChart dropout_accuracy_chart(const DropoutResult& r);
LineChart dropout_ensemble_chart(const DropoutResult& r);
LineChart dropout_expectation_chart(const DropoutResult& r);
std::vector<std::string> write_dropout_report(const DropoutResult& r, const std::string& dir);

}  // namespace kestrel::experiments
