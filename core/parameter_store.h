// ParameterStore: every parameter, gradient, optimizer state and persistent state of a graph,
// each kind in ONE contiguous buffer (so one fused optimizer kernel updates all parameters),
// plus the per-step scalars kernels read from memory (RNG offset, learning rate, step).
//
// Contract:
// - Slots follow Graph::params() order; each slot starts at a multiple of 8 elements (32-byte
//   aligned fp32, 16-byte aligned bf16) and padding stays zero.
// - Initialisation is done on the host from (seed, parameter index) with Philox, so the same
//   graph and seed give the same weights on every device: entry i of Graph::params() draws the
//   stream (seed, 2^63 + i), far from the offsets dropout counts up from 0.
// - A train and an eval Executor compiled from the same graph share one store.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kestrel/core/context.h"
#include "kestrel/core/graph.h"
#include "kestrel/core/tensor.h"

namespace kestrel {

enum class OptimizerKind : std::uint8_t { kNone, kSgd, kAdamW };
// "none", "sgd", "adamw" (layers/checkpoint.h parses them back).
const char* optimizer_kind_name(OptimizerKind kind) noexcept;

class ParameterStore {
 public:
  // Allocates on ctx's device and initialises every parameter and state from `seed`.
  ParameterStore(const Graph& graph, Context& ctx, std::uint64_t seed);
  ParameterStore(const ParameterStore&) = delete;
  ParameterStore& operator=(const ParameterStore&) = delete;

  Context& context() const noexcept { return ctx_; }
  std::uint64_t seed() const noexcept { return seed_; }
  std::size_t count() const noexcept { return slots_.size(); }
  const std::string& name(std::size_t i) const { return slot(i).name; }
  bool trainable(std::size_t i) const { return slot(i).trainable; }
  int index_of(const std::string& name) const;  // raises with the known names when missing

  // Views of one parameter (or state) and its gradient, in the parameter's shape and layout.
  Tensor value(std::size_t i) const;
  Tensor value(const std::string& name) const { return value(index_of(name)); }
  Tensor gradient(std::size_t i) const;
  Tensor shadow(std::size_t i) const;  // bf16 copy; undefined tensor when the parameter has none

  // The flat buffers (fp32 unless noted). opt_state(k) is the optimizer's k-th state buffer
  // (SGD: momentum; AdamW: exp_avg, exp_avg_sq), allocated by ensure_optimizer_state().
  const Tensor& flat_params() const noexcept { return params_; }
  const Tensor& flat_grads() const noexcept { return grads_; }
  const Tensor& flat_states() const noexcept { return states_; }
  // bf16 copies, parallel to flat_params() (same offsets); empty when no parameter has one.
  const Tensor& flat_shadow() const noexcept { return shadow_; }
  const Tensor& decay_mask() const noexcept { return decay_mask_; }  // uint8 per element
  const Tensor& opt_state(int k) const;
  // Parameter i's part of opt_state(k), in the parameter's shape and layout (trainable only).
  Tensor opt_state(int k, std::size_t i) const;
  // Number of state buffers of `kind`: 0 (none), 1 (SGD), 2 (AdamW).
  static int optimizer_buffers(OptimizerKind kind) noexcept;
  void ensure_optimizer_state(OptimizerKind kind);
  // Raises when the store already holds state for another optimizer than `kind` (kNone fits
  // any): what ensure_optimizer_state refuses, asked before any work that depends on it.
  void check_optimizer(OptimizerKind kind) const;
  OptimizerKind optimizer_kind() const noexcept { return opt_kind_; }
  std::int64_t trainable_elements() const noexcept { return param_elems_; }
  // Weight decay applies to parameters whose ParamInfo::decay is set; this also exempts every
  // one-dimensional parameter (BN weights and biases, all biases), as is common for ResNets.
  void exempt_1d_from_decay();

  // Per-step scalars in device memory (host memory on the CPU).
  std::uint64_t* rng_offset_ptr() const noexcept { return scalars_.rng_offset; }
  float* learning_rate_ptr() const noexcept { return scalars_.lr; }
  std::int64_t* step_ptr() const noexcept { return scalars_.step; }
  void set_learning_rate(float lr);              // ordered on the context's stream
  struct Counters {
    std::uint64_t rng_offset;
    std::int64_t step;
    float learning_rate;
  };
  Counters read_counters() const;                // synchronises the stream
  void write_counters(const Counters& c);

  // Copies the fp32 masters into their bf16 shadows (after initialisation or loading).
  void refresh_shadows();

 private:
  struct Slot {
    std::string name;
    TypeSpec type;
    bool trainable;
    bool decay;
    bool has_shadow;
    std::int64_t offset;  // elements into params_/grads_ (trainable) or states_ (states)
    std::int64_t shadow_offset;
  };
  const Slot& slot(std::size_t i) const;  // raises kestrel::Error for an index past count()
  Tensor flat_view(const Tensor& flat, std::int64_t offset, const TypeSpec& t, DType dtype) const;
  void initialise(const Graph& graph);
  void upload_decay_mask();

  Context& ctx_;
  std::uint64_t seed_;
  std::vector<Slot> slots_;
  std::int64_t param_elems_ = 0, state_elems_ = 0, shadow_elems_ = 0;
  Tensor params_, grads_, states_, shadow_, decay_mask_;
  Tensor opt_[2];
  OptimizerKind opt_kind_ = OptimizerKind::kNone;
  Tensor scalar_storage_;
  struct {
    std::uint64_t* rng_offset = nullptr;
    std::int64_t* step = nullptr;
    float* lr = nullptr;
  } scalars_;
};

}  // namespace kestrel
