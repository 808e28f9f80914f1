// Executor: the compile and run steps of define-compile-run.
//
// Compile (constructor): copies the graph; fuses BN+ReLU and BN+Add+ReLU (optional); in
// training mode appends the backward graph (autodiff, summed fan-out gradients; gradients with
// respect to named inputs on request) and a fused optimizer update over the parameter store's
// flat buffers (optionally clipped by the gradients' global L2 norm, reduced on the device);
// rebuilds BN+ReLU outputs in backward instead of keeping them (recompute_bn_relu, on by
// default; core/recompute.h); re-checks every node's types;
// binds parameters, states, their gradients and the inputs to persistent memory; plans every
// other value into one arena by liveness (values alive at the same time never share bytes);
// plans each node's scratch workspace into the same arena, alive during that node only (or, when
// planning them there would grow the arena by more than the largest node's scratch, one separate
// buffer of that size); cuDNN plans are built
// here, not while running.
//
// Run: launches the schedule in order on the context's stream. On CUDA, capture_cuda_graph()
// records one whole step (RNG offset advance, forward, backward, optimizer) as a CUDA Graph
// that later run() calls replay; kernels read the RNG offset, learning rate and step from
// device memory, so every replay draws new dropout masks and sees schedule changes.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kestrel/core/context.h"
#include "kestrel/core/graph.h"
#include "kestrel/core/op.h"
#include "kestrel/core/parameter_store.h"
#include "kestrel/core/stream.h"
#include "kestrel/core/tensor.h"
#include "kestrel/kernels/optimizer_math.h"

struct CUgraphExec_st;  // cudaGraphExec_t, without the CUDA runtime headers

namespace kestrel {

struct CompileOptions {
  bool training = true;
  bool fuse = true;                 // BN+ReLU, BN+Add+ReLU into the fused kernels
  OptimizerKind optimizer = OptimizerKind::kSgd;  // training only; kNone: gradients only
  SgdConfig sgd;
  AdamWConfig adamw;
  // Training only: clip the gradients by their global L2 norm before each update, as
  // torch.nn.utils.clip_grad_norm_(max_norm) before optimizer.step() (kernels/optimizer_math.h,
  // GradClip; the norm is reduced on the device and read there, so a captured CUDA Graph clips
  // every replay by its own step's norm, with no host synchronisation). 0: no clipping; must be
  // finite and >= 0.
  float max_grad_norm = 0.f;
  // Training only: reduce the gradients' global L2 norm every step (one read of the gradient
  // buffer), readable with grad_norm(). Always on when max_grad_norm > 0.
  bool track_grad_norm = false;
  bool check_numerics = false;      // debug: after each node, name the first non-finite output
  bool validate_plan = true;        // check the memory plan for overlaps after planning
  // Training only: rebuild each BN+ReLU output in backward from the BN's input and saved
  // statistics instead of keeping it from forward to backward (core/recompute.h): a quarter less
  // activation memory in a ResNet block for one extra elementwise pass a block (about 1% of a
  // ResNet step by byte count), bit-identical results. false keeps the outputs. Acts on the
  // fused BN+ReLU nodes only, so it does nothing with fuse = false.
  bool recompute_bn_relu = true;
  bool reuse_memory = true;         // false (debugging, gradient checks): every value keeps its
                                    // own bytes until the end of the step
  // Training only: graph inputs (by name) whose d loss / d input the step also computes, read
  // with input_gradient() after run(). Raises at compile time for a name that is not a floating
  // input or that the loss does not depend on.
  std::vector<std::string> input_gradients;
  // Inference only: dropout keeps drawing a fresh mask on every run, as in training (Monte Carlo
  // dropout: average the outputs of several runs), while batch norm still uses its running
  // statistics. Each run advances the store's RNG offset like a training step.
  bool sample_dropout = false;
};

struct PlanStats {
  std::size_t arena_bytes = 0;       // planned peak of activations and gradients (and workspaces
                                     // when workspace_in_arena)
  std::size_t values_arena_bytes = 0;  // the arena the activations and gradients alone would need
  std::size_t activation_bytes = 0;  // sum of the sizes of every planned value (no reuse)
  std::size_t live_peak_bytes = 0;   // most bytes alive at any one step: a lower bound for the arena
  std::size_t workspace_bytes = 0;   // the largest node's scratch
  bool workspace_in_arena = false;   // scratch planned per node in the arena (else one separate buffer)
  std::size_t input_bytes = 0;
  int forward_nodes = 0, backward_nodes = 0, fusions = 0;
  int recomputed = 0;                // BN+ReLU outputs rebuilt in backward (recompute_bn_relu)
};

class Executor {
 public:
  Executor(const Graph& graph, ParameterStore& store, Context& ctx, CompileOptions options = {});
  ~Executor();
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  // The persistent buffer of an input: fill it (copy_from, or a kernel) before run(). Asking for
  // it counts as filling it: run() raises, naming the input, while an input that some step reads
  // has been neither handed out (input(), value()) nor given to bind_input() (its buffer would
  // hold no data). Graph::zero_input inputs are exempt: they hold zeros until filled.
  Tensor input(const std::string& name) const;
  // Copies `src` (host or device memory; the input's shape, dtype and layout, else a
  // kestrel::Error naming the input, and the buffer is unchanged) into the input's buffer on the
  // context's stream. A host source may be reused as soon as this returns.
  void bind_input(const std::string& name, const Tensor& src);
  // A value marked with Graph::mark_output, or "loss"; valid after run() until the next run().
  // The handle may be taken before the first run (its buffer is persistent); its contents are
  // unspecified until then.
  Tensor output(const std::string& name) const;
  // d loss / d parameter (a view into the store's gradient buffer; unclipped: max_grad_norm
  // scales gradients inside the update, not in this buffer); training only.
  Tensor gradient(const std::string& param_name) const;
  // d loss / d input for an input named in CompileOptions::input_gradients; valid after run()
  // until the next run().
  Tensor input_gradient(const std::string& input_name) const;
  // Any value of the compiled graph by name (debugging and tests; arena memory is reused, so
  // only values alive at the end of the step hold their final contents). An inference executor
  // refuses the outputs only training writes (Op::writes_output), which it gives no memory.
  Tensor value(const std::string& name) const;

  void run();
  // The same step split in two, for callers that decide on the update after seeing the loss
  // (skip a step whose loss or gradients are not finite): run_forward_backward() runs the RNG
  // advance, forward and backward; apply_update() then applies the optimizer update to those
  // gradients, once: it raises unless the last run_forward_backward() succeeded and its
  // gradients have not been applied yet (run() in between applies its own). Eager only: raises
  // once a CUDA Graph has been captured. Training executors.
  void run_forward_backward();
  void apply_update();
  // Captures one step as a CUDA Graph; later run() calls replay it. Raises before one eager run()
  // (lazy library initialisation must not happen during capture). CUDA contexts only.
  void capture_cuda_graph();
  bool uses_cuda_graph() const noexcept { return graph_exec_ != nullptr; }

  // The L2 norm of all parameter gradients at the last update, before clipping (0 before the
  // first update); synchronises the context's stream. Raises unless the executor was compiled
  // with track_grad_norm or max_grad_norm > 0.
  float grad_norm() const;

  const PlanStats& stats() const noexcept { return stats_; }
  const Graph& compiled_graph() const noexcept { return g_; }
  bool training() const noexcept { return opts_.training; }
  ParameterStore& store() const noexcept { return store_; }
  // The context (device and stream) the executor runs on; feed inputs and read outputs on its
  // stream. The store's context may be another one on the same device: on CUDA each run()
  // (run_forward_backward(), apply_update()) then waits for the work queued on the store's
  // stream so far, and the store's stream waits for the run, so set_learning_rate and
  // checkpoints on the store's context need no synchronisation of their own.
  Context& context() const noexcept { return ctx_; }
  // One line per node: type, name, output types, arena offsets.
  std::string describe() const;

 private:
  struct Step {
    int node;
    std::vector<Tensor> in, out;
    void* workspace;              // this node's scratch: in the arena, or the shared buffer
    std::size_t workspace_bytes;
  };
  void compile();
  void bind_persistent(const std::vector<int>& param_grad);
  void plan_arena();
  void run_eager(bool update = true);
  void run_nodes(bool sample_dropout);
  Tensor offset_view() const;
  void save_for_rollback();
  void roll_back() noexcept;
  void check_numerics(const Step& s);
  void check_inputs_filled() const;
  class StoreTurn;  // orders a run with the store's stream
  void optimizer_update();
  bool tracks_grad_norm() const noexcept;

  Graph g_;
  ParameterStore& store_;
  Context& ctx_;
  CompileOptions opts_;
  std::vector<Tensor> bound_;              // per value id
  std::vector<std::size_t> arena_offset_;  // per value id, SIZE_MAX when not in the arena
  std::vector<Step> steps_;
  std::map<std::string, int> inputs_, outputs_;
  std::map<std::string, int> param_grad_value_;
  std::map<std::string, int> input_grad_value_;
  Tensor arena_, workspace_;
  Tensor numerics_scratch_;  // check_numerics' reduction workspace and result
  Tensor grad_norm_scratch_; // sum of squared gradients (first 256 bytes), then its CUB workspace
  StepState state_;
  PlanStats stats_;
  CUgraphExec_st* graph_exec_ = nullptr;
  std::optional<Event> store_link_;  // CUDA, when the store's context is another one
  bool forward_ran_ = false, update_ran_ = false;  // capture_cuda_graph needs one eager step first
  bool gradients_pending_ = false;  // run_forward_backward's gradients, not applied yet
  mutable std::vector<char> input_filled_;  // per value id: handed out by input() or value(), or bound
  std::vector<char> input_read_;            // per value id: an input some step reads
  // What a run refused part-way restores (CPU, or check_numerics): BN running statistics and the
  // dropout offset as they were before the run.
  Tensor states_before_;
  Tensor offset_before_;  // the uint64 offset as 2 x int32, on the executor's device
  Tensor states_, offset_;  // handles on the store's statistics and offset (offset_view())
};

}  // namespace kestrel
