// A reusable finite-difference gradient checker for whole graphs on the CPU backend.
//
// It compiles the graph once into a training executor without an optimizer (analytic gradients
// by autodiff) and probes losses with the same executor. For a sample of every trainable
// parameter's coordinates (and of the inputs named in GradCheckOptions::inputs, whose analytic
// gradients come from CompileOptions::input_gradients) it compares the analytic gradient with the central
// difference (L(p + h) - L(p - h)) / 2h computed and compared in double precision. Kinks are
// found exactly, as Caffe's checker does per layer: the executor keeps every value (no memory
// reuse), and a coordinate is skipped (and counted) when any ReLU mask (plain or fused into
// BN) or any max-pool window's argmax differs between p - h, p and p + h. The RNG offset is
// reset before every run, so dropout masks are the same in every evaluation. The kernels
// themselves run in fp32, which is what bounds the tolerance.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "kestrel/core/executor.h"
#include "kestrel/core/graph.h"

namespace kestrel::testing {

struct GradCheckOptions {
  double step = 1e-3;  // larger steps see BN's curvature at small batches; smaller, fp32 rounding
  double abs_tol = 2e-4;
  double rel_tol = 2e-2;
  int coords_per_param = 10;
  std::uint64_t seed = 7;
  bool fuse = true;
  int max_skipped_fraction_percent = 30;  // fail if more coordinates than this sit on kinks
  std::vector<std::string> inputs;        // fp32 graph inputs whose gradients are checked too
};

// `build` appends the network and its loss to the graph; `feed` fills the executor's inputs.
::testing::AssertionResult check_gradients(const GraphOptions& graph_options,
                                           const std::function<void(Graph&)>& build,
                                           const std::function<void(Executor&)>& feed,
                                           const GradCheckOptions& options = {});

// Graph options for a test graph: batch size and activation layout, fp32.
inline GraphOptions graph_options(std::int64_t batch, Layout layout = Layout::kNCHW) {
  GraphOptions o;
  o.batch = batch;
  o.layout = layout;
  return o;
}

// Compile options for an inference executor (no gradients, no optimizer state).
inline CompileOptions inference_options() {
  CompileOptions co;
  co.training = false;
  return co;
}

// Fills an input with Philox uniforms in [lo, hi] (CPU executors).
void feed_uniform(Executor& ex, const std::string& name, std::uint64_t seed, float lo = -1.f, float hi = 1.f);
// Fills an int32 label input with labels[i] = (i * 7 + 3) % classes.
void feed_labels(Executor& ex, const std::string& name, int classes);

}  // namespace kestrel::testing
