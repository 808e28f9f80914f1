// Op: one kind of graph node. An op checks and infers types (infer), runs on either backend
// (run: CPU twin or CUDA launcher, chosen by the tensors' device), and appends its own backward
// nodes during autodiff (backward). Everything an op's backward needs is an explicit input of
// the backward node (saved statistics, the forward output for ReLU masks, RNG slot for dropout);
// nothing is smuggled through op members that change at run time.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kestrel/core/context.h"
#include "kestrel/core/graph.h"
#include "kestrel/core/tensor.h"

struct CUstream_st;

namespace kestrel {

// Per-step state the executor keeps in device memory (host memory on the CPU), read by kernels
// when they run so that a replayed CUDA Graph sees new values.
struct StepState {
  std::uint64_t seed = 0;                      // the graph's RNG seed
  const std::uint64_t* rng_offset = nullptr;   // advanced once per training step
  const float* learning_rate = nullptr;
  const std::int64_t* step = nullptr;          // 1 on the first update
};

// What run() sees. Tensors are views fixed at compile time into the arena or persistent buffers.
struct OpRun {
  const Node& node;
  const std::vector<Tensor>& in;
  const std::vector<Tensor>& out;
  Context& ctx;
  void* workspace;
  std::size_t workspace_bytes;
  bool training;
  bool sample_dropout;  // dropout draws masks: training, or CompileOptions::sample_dropout
  const StepState& state;
  bool on_cpu() const noexcept { return ctx.device().is_cpu(); }
  CUstream_st* stream() const noexcept { return ctx.stream().handle(); }
};

// What workspace_bytes() sees at compile time.
struct PlanQuery {
  const Node& node;
  std::vector<const ValueInfo*> in;
  std::vector<const ValueInfo*> out;
  Context& ctx;
  bool training;
};

class Op {
 public:
  virtual ~Op() = default;
  // "Conv2d", "BatchNorm2d", ...
  virtual std::string type() const = 0;
  // Names of the outputs ("y", "mean", ...); their count is the op's number of outputs.
  virtual std::vector<std::string> output_names() const { return {"y"}; }
  // Checks the inputs and returns the output types. Errors name `node` and show expected and
  // actual types (see shape_error()).
  virtual std::vector<TypeSpec> infer(const std::vector<const ValueInfo*>& in,
                                      const std::string& node) const = 0;
  virtual void run(const OpRun& r) const = 0;
  virtual std::size_t workspace_bytes(const PlanQuery& /*q*/) const { return 0; }
  // Appends the backward nodes for `n` and returns one gradient per input (invalid where
  // needs_grad is false or the input is not differentiable). grad_out[i] is invalid when output
  // i receives no gradient, Value::seed() for the loss itself. Autodiff calls it only when some
  // output receives a gradient and some input needs one.
  virtual std::vector<Value> backward(Graph& g, const Node& n, const std::vector<Value>& grad_out,
                                      const std::vector<bool>& needs_grad) const;
  // Whether backward() takes Value::seed() (d loss / d loss) as its first output's gradient: the
  // graph's loss must be the output of such an op (autodiff checks before the backward pass).
  virtual bool takes_loss_seed() const { return false; }
  // Whether run() writes output `i` in this mode (some outputs are for backward only: batch
  // norm's saved statistics, the loss's fused gradient). The executor gives an output it does not
  // write no memory (run() sees an undefined tensor there) and refuses to hand it out, to mark it
  // as a graph output, or to feed it to another node.
  virtual bool writes_output(std::size_t /*i*/, bool /*training*/) const { return true; }
};

// Builds the standard shape error: "<op> '<node>': <what>: expected <expected>, got <actual>".
[[noreturn]] void shape_error(const std::string& op, const std::string& node, const std::string& what,
                              const std::string& expected, const std::string& actual);
// Checks the number of inputs.
void expect_inputs(const std::string& op, const std::string& node,
                   const std::vector<const ValueInfo*>& in, std::size_t count);
// Checks that an op's data input has rank `rank` (`dims` shows it: "[N, C, H, W]") and is stored
// as fp32 or bf16, the dtypes of the kernels behind the nn ops.
void expect_activation(const std::string& op, const std::string& node, const ValueInfo& x, int rank,
                       const std::string& dims);
// Checks that a value has the given rank, dtype and (for rank 4) layout.
void expect_type(const std::string& op, const std::string& node, const std::string& role,
                 const ValueInfo& v, int rank, DType dtype, Layout layout);

}  // namespace kestrel
