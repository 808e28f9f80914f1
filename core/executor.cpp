#include "kestrel/core/executor.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>

#include "kestrel/core/autodiff.h"
#include "kestrel/core/cuda_check_internal.h"
#include "kestrel/core/device_guard_internal.h"
#include "kestrel/core/error.h"
#include "kestrel/core/fusion.h"
#include "kestrel/core/memory_plan.h"
#include "kestrel/core/nonfinite_internal.h"
#include "kestrel/core/recompute.h"
#include "kestrel/kernels/cpu/dropout.h"
#include "kestrel/kernels/cpu/optimizer.h"
#include "kestrel/kernels/cpu/reduce.h"
#include "kestrel/kernels/dropout.h"
#include "kestrel/kernels/optimizer.h"
#include "kestrel/kernels/reduce.h"

namespace kestrel {
namespace {
constexpr std::size_t kNotInArena = std::numeric_limits<std::size_t>::max();
constexpr std::size_t kArenaAlignment = 256;
constexpr std::size_t kGradNormResultBytes = 256;  // the float sum, then CUB's workspace (aligned)

// When value `v` is an output its node does not write in this mode (Op::writes_output; in an
// inference executor batch norm's saved statistics and the loss's fused gradient): the reason,
// for an error; otherwise empty. Such values get no memory, so nothing can read what they held.
std::string unwritten_reason(const Graph& g, int v, bool training) {
  for (const Node& n : g.nodes())
    for (std::size_t o = 0; o < n.outputs.size(); ++o)
      if (n.outputs[o] == v && !n.op->writes_output(o, training))
        return n.op->type() + " '" + n.name + "' " +
               (!training && n.op->writes_output(o, true)
                    ? "writes it only in a training executor, and this one is for inference"
                    : "does not write it in this mode");
  return {};
}
}  // namespace

Executor::Executor(const Graph& graph, ParameterStore& store, Context& ctx, CompileOptions options)
    : g_(graph), store_(store), ctx_(ctx), opts_(options) {
  KESTREL_CHECK(store.context().device() == ctx.device(), "parameter store lives on ",
                store.context().device().to_string(), " but the executor runs on ",
                ctx.device().to_string());
  KESTREL_CHECK(store.count() == graph.params().size(), "parameter store holds ", store.count(),
                " parameters but the graph has ", graph.params().size(),
                ": build the store from the same graph");
  for (std::size_t p = 0; p < graph.params().size(); ++p) {
    const ParamInfo& info = graph.params()[p];
    KESTREL_CHECK(store.name(p) == info.name && store.value(p).shape() == info.type.shape,
                  "parameter ", p, " of the graph is '", info.name, "' ", info.type.shape.to_string(),
                  " but the store holds '", store.name(p), "' ", store.value(p).shape().to_string(),
                  ": build the store from the same graph");
    // Same names and shapes are not enough: a store built from the graph in the other layout
    // holds its convolution weights in the other physical order (KCRS against KRSC), and one
    // built without bf16 compute has no shadow copies to read.
    KESTREL_CHECK(store.value(p).layout() == info.type.layout, "parameter '", info.name, "': the graph wants it in ",
                  layout_name(info.type.layout), " but the store holds it in ", layout_name(store.value(p).layout()),
                  ": build the store from the same graph (same layout)");
    KESTREL_CHECK(store.trainable(p) == info.trainable, "parameter '", info.name, "' is ",
                  info.trainable ? "trainable" : "a state", " in the graph but ",
                  store.trainable(p) ? "trainable" : "a state", " in the store: build the store from the same graph");
    KESTREL_CHECK(info.shadow < 0 || store.shadow(p).defined(), "parameter '", info.name,
                  "': the graph computes with a bf16 copy but the store keeps none: build the store from the "
                  "same graph (same dtype)");
  }
  // Compiling builds (and may autotune) cuDNN plans: the scratch memory, events and timed
  // runs of the autotuner use the current device, which must be the context's (cuda:N, N > 0).
  DeviceGuard guard(ctx.device());
  if (ctx.device().is_cuda() && &store.context() != &ctx) store_link_.emplace(ctx.device(), false);
  compile();
}

// A public entry's turn on the store's buffers. Another context on the same device means another
// stream: without the event nothing would order the store's work (initial weights, optimizer
// state zeroed at compile, set_learning_rate, a loaded checkpoint) before this executor's step,
// or the step before the store's next reads. Waits for the store's stream now and hands back on
// every exit, also when the step throws (what it queued before still runs).
class Executor::StoreTurn {
 public:
  explicit StoreTurn(Executor& e) : e_(e) {
    if (!e_.store_link_) return;
    e_.store_link_->record(e_.store_.context().stream());
    e_.store_link_->wait_on(e_.ctx_.stream());
  }
  ~StoreTurn() {
    if (!e_.store_link_) return;
    try {
      e_.store_link_->record(e_.ctx_.stream());
      e_.store_link_->wait_on(e_.store_.context().stream());
    } catch (...) {  // a failing event call leaves a sticky CUDA error the next call reports
    }
  }
  StoreTurn(const StoreTurn&) = delete;
  StoreTurn& operator=(const StoreTurn&) = delete;

 private:
  Executor& e_;
};

Executor::~Executor() {
  if (graph_exec_ != nullptr) (void)cudaGraphExecDestroy(graph_exec_);
}

void Executor::compile() {
  if (opts_.fuse) stats_.fusions = fuse_batchnorm_activations(g_);
  KESTREL_CHECK(opts_.training || opts_.input_gradients.empty(),
                "input gradients need a training executor (CompileOptions::training)");
  KESTREL_CHECK(!opts_.training || !opts_.sample_dropout,
                "sample_dropout is for inference executors: training always samples dropout masks");
  KESTREL_CHECK((opts_.training && opts_.optimizer != OptimizerKind::kNone) ||
                    (opts_.max_grad_norm == 0.f && !opts_.track_grad_norm),
                "max_grad_norm and track_grad_norm act on the optimizer update: they need a training "
                "executor with an optimizer");
  std::vector<int> param_grad(g_.params().size(), -1);
  if (opts_.training) {
    if (opts_.optimizer == OptimizerKind::kSgd) validate(opts_.sgd);
    if (opts_.optimizer == OptimizerKind::kAdamW) validate(opts_.adamw);
    store_.check_optimizer(opts_.optimizer);  // now: the state itself is made last
    KESTREL_CHECK(std::isfinite(opts_.max_grad_norm) && opts_.max_grad_norm >= 0.f,
                  "CompileOptions::max_grad_norm must be finite and >= 0 (0: no clipping), got ",
                  opts_.max_grad_norm);
    std::vector<Value> wrt;
    for (const std::string& name : opts_.input_gradients) wrt.push_back(g_.find_value(name));
    const AutodiffResult ad = append_backward(g_, wrt);
    param_grad = ad.param_grad;
    for (std::size_t i = 0; i < wrt.size(); ++i) input_grad_value_[opts_.input_gradients[i]] = ad.input_grad[i];
    if (opts_.recompute_bn_relu) stats_.recomputed = recompute_batchnorm_relu(g_);
  }
  // Re-check every node: passes rewrite nodes, and this is where type errors surface by name.
  for (const Node& n : g_.nodes()) {
    std::vector<const ValueInfo*> in;
    for (int i : n.inputs) in.push_back(&g_.info(i));
    const std::vector<TypeSpec> types = n.op->infer(in, n.name);
    KESTREL_CHECK(types.size() == n.outputs.size(), n.op->type(), " '", n.name, "': ",
                  types.size(), " inferred outputs for ", n.outputs.size(), " output values");
    for (std::size_t o = 0; o < types.size(); ++o) {
      const TypeSpec& have = g_.info(n.outputs[o]).type;
      KESTREL_CHECK(have.shape == types[o].shape && have.dtype == types[o].dtype,
                    n.op->type(), " '", n.name, "': output ", o, " is ", g_.info(n.outputs[o]).describe(),
                    " but the op now infers ", types[o].shape.to_string(), " ", dtype_name(types[o].dtype));
    }
    (n.backward ? stats_.backward_nodes : stats_.forward_nodes)++;
  }
  bind_persistent(param_grad);
  if (tracks_grad_norm()) {
    const std::int64_t n = store_.trainable_elements();
    const std::size_t ws = ctx_.device().is_cpu() ? 0 : cuda::reduce_workspace_bytes(n);
    grad_norm_scratch_ = Tensor::empty(Shape{static_cast<std::int64_t>(kGradNormResultBytes + ws)},
                                       DType::kUInt8, ctx_);
    grad_norm_scratch_.zero(ctx_.stream());
  }
  plan_arena();
  // Last, so that a compile refused above leaves the store as it was (a store that had taken
  // AdamW state for a refused executor then refused every SGD one).
  if (opts_.training) store_.ensure_optimizer_state(opts_.optimizer);
  state_.seed = store_.seed();
  state_.rng_offset = store_.rng_offset_ptr();
  state_.learning_rate = store_.learning_rate_ptr();
  state_.step = store_.step_ptr();
}

void Executor::bind_persistent(const std::vector<int>& param_grad) {
  bound_.assign(g_.values().size(), Tensor());
  input_filled_.assign(g_.values().size(), 0);
  input_read_.assign(g_.values().size(), 0);
  for (std::size_t p = 0; p < g_.params().size(); ++p) {
    const ParamInfo& info = g_.params()[p];
    bound_[info.value] = store_.value(p);
    if (info.shadow >= 0) bound_[info.shadow] = store_.shadow(p);
    if (param_grad[p] >= 0) {
      KESTREL_CHECK(!bound_[param_grad[p]].defined(), "the gradient of '", info.name,
                    "' is also another persistent value");
      bound_[param_grad[p]] = store_.gradient(p);
      param_grad_value_[info.name] = param_grad[p];
    }
  }
  for (std::size_t v = 0; v < g_.values().size(); ++v) {
    const ValueInfo& info = g_.values()[v];
    if (info.kind != ValueKind::kInput) continue;
    Tensor t = Tensor::empty(info.type.shape, info.type.dtype, ctx_, info.type.layout);
    t.zero(ctx_.stream());
    stats_.input_bytes += t.nbytes();
    bound_[v] = t;
    inputs_[info.name] = static_cast<int>(v);
  }
  for (const auto& [name, id] : g_.outputs()) outputs_[name] = id;
  // output("loss") is the loss: an output of that name must be the loss itself, not hide it.
  if (g_.loss().valid()) {
    const auto [it, added] = outputs_.emplace("loss", g_.loss().id);
    KESTREL_CHECK(added || it->second == g_.loss().id, "an output is named 'loss' but is ",
                  g_.info(it->second).describe(), ", not the graph's loss ", g_.info(g_.loss()).describe(),
                  ": output(\"loss\") names the loss; give the output another name");
  }
}

void Executor::plan_arena() {
  const int nsteps = static_cast<int>(g_.nodes().size());
  std::vector<int> first(g_.values().size(), -1), last(g_.values().size(), -1);
  for (int s = 0; s < nsteps; ++s) {
    const Node& n = g_.nodes()[s];
    for (std::size_t o = 0; o < n.outputs.size(); ++o) {
      if (!n.op->writes_output(o, opts_.training)) continue;  // never written here: no memory
      const int v = n.outputs[o];
      if (first[v] < 0) first[v] = s;
      last[v] = std::max(last[v], s);
    }
    for (int i : n.inputs) last[i] = std::max(last[i], s);
  }
  for (const auto& [name, id] : outputs_) {
    // No memory of its own and no node writing it here: an output only training writes.
    if (first[id] < 0 && !bound_[id].defined())
      KESTREL_FAIL("output '", name, "' is ", g_.info(id).describe(), ": ", unwritten_reason(g_, id, opts_.training));
    last[id] = nsteps;  // readable after the step
  }
  for (const auto& [name, id] : input_grad_value_) last[id] = nsteps;
  if (!opts_.reuse_memory)
    for (int& l : last) l = nsteps;

  // Each node's scratch (cuDNN/cuBLAS workspace, reduction partials), asked now that the cuDNN
  // plans exist.
  std::vector<std::size_t> node_ws(static_cast<std::size_t>(nsteps), 0);
  std::size_t max_ws = 0;
  for (int s = 0; s < nsteps; ++s) {
    const Node& n = g_.nodes()[s];
    PlanQuery q{n, {}, {}, ctx_, opts_.training};
    for (int i : n.inputs) q.in.push_back(&g_.info(i));
    for (int o : n.outputs) q.out.push_back(&g_.info(o));
    node_ws[static_cast<std::size_t>(s)] = n.op->workspace_bytes(q);
    max_ws = std::max(max_ws, node_ws[static_cast<std::size_t>(s)]);
  }

  std::vector<BufferRequest> requests;
  std::vector<int> request_value;
  for (std::size_t v = 0; v < g_.values().size(); ++v) {
    if (bound_[v].defined() || first[v] < 0) continue;
    const ValueInfo& info = g_.values()[v];
    const std::size_t bytes = static_cast<std::size_t>(info.type.shape.numel()) * dtype_size(info.type.dtype);
    requests.push_back({bytes, first[v], last[v]});
    request_value.push_back(static_cast<int>(v));
  }
  const std::size_t value_requests = requests.size();
  const MemoryPlan values_only = plan_memory(requests, kArenaAlignment);
  // Workspaces in the arena, each alive during its own node only: the large workspaces of the
  // first stage's convolutions then reuse activation memory that backward has already released,
  // instead of adding a separate max-sized buffer to the peak. Kept only when it is no larger
  // than the values' arena plus that separate buffer (the greedy placement is a heuristic), and
  // not without memory reuse (a debugging mode: there every value keeps bytes of its own).
  std::vector<int> request_ws_node(value_requests, -1);
  MemoryPlan shared;
  bool ws_in_arena = false;
  if (opts_.reuse_memory && max_ws > 0) {
    for (int s = 0; s < nsteps; ++s) {
      if (node_ws[static_cast<std::size_t>(s)] == 0) continue;
      requests.push_back({node_ws[static_cast<std::size_t>(s)], s, s});
      request_ws_node.push_back(s);
    }
    shared = plan_memory(requests, kArenaAlignment);
    ws_in_arena = shared.arena_bytes <= values_only.arena_bytes + max_ws;
    if (!ws_in_arena) {
      requests.resize(value_requests);
      request_ws_node.resize(value_requests);
    }
  }
  const MemoryPlan& plan = ws_in_arena ? shared : values_only;
  if (opts_.validate_plan)
    KESTREL_CHECK(plan_is_valid(requests, plan), "internal error: the memory plan overlaps live values");
  stats_.arena_bytes = plan.arena_bytes;
  stats_.values_arena_bytes = values_only.arena_bytes;
  stats_.activation_bytes = values_only.total_bytes;
  stats_.live_peak_bytes = plan.live_peak_bytes;
  stats_.workspace_bytes = max_ws;
  stats_.workspace_in_arena = ws_in_arena;

  arena_ = Tensor::empty(Shape{static_cast<std::int64_t>(plan.arena_bytes)}, DType::kUInt8, ctx_);
  workspace_ = Tensor::empty(Shape{static_cast<std::int64_t>(ws_in_arena ? 0 : max_ws)}, DType::kUInt8, ctx_);
  std::vector<std::size_t> ws_offset(static_cast<std::size_t>(nsteps), kNotInArena);
  arena_offset_.assign(g_.values().size(), kNotInArena);
  for (std::size_t r = 0; r < requests.size(); ++r) {
    if (request_ws_node[r] >= 0) {
      ws_offset[static_cast<std::size_t>(request_ws_node[r])] = plan.offsets[r];
      continue;
    }
    const int v = request_value[r];
    const ValueInfo& info = g_.info(v);
    arena_offset_[v] = plan.offsets[r];
    bound_[v] = arena_.view_bytes(plan.offsets[r], info.type.shape, info.type.dtype, info.type.layout);
  }
  steps_.clear();
  for (int s = 0; s < nsteps; ++s) {
    const Node& n = g_.nodes()[s];
    Step st{s, {}, {}, workspace_.data(), workspace_.nbytes()};
    if (ws_in_arena) {
      const std::size_t off = ws_offset[static_cast<std::size_t>(s)];
      st.workspace = off == kNotInArena ? nullptr : static_cast<std::uint8_t*>(arena_.data()) + off;
      st.workspace_bytes = off == kNotInArena ? 0 : node_ws[static_cast<std::size_t>(s)];
    }
    for (int i : n.inputs) {
      if (!bound_[i].defined()) {
        const std::string why = unwritten_reason(g_, i, opts_.training);
        KESTREL_FAIL(n.op->type(), " '", n.name, "' reads ", g_.info(i).describe(), ", ",
                     why.empty() ? "which nothing produces before it" : "but " + why);
      }
      st.in.push_back(bound_[i]);
      input_read_[static_cast<std::size_t>(i)] = 1;
    }
    for (int o : n.outputs) st.out.push_back(bound_[o]);
    steps_.push_back(std::move(st));
  }
}

namespace {
// The value id bound to `name`, or an error listing the names there are.
int lookup(const std::map<std::string, int>& names, const std::string& name, const char* what) {
  auto it = names.find(name);
  if (it != names.end()) return it->second;
  std::string known;
  for (const auto& [n, id] : names) known += (known.empty() ? "" : ", ") + n;
  KESTREL_FAIL("no ", what, " named '", name, "' (", what, "s: ", known.empty() ? "none" : known, ")");
}
}  // namespace

Tensor Executor::input(const std::string& name) const {
  const int v = lookup(inputs_, name, "input");
  input_filled_[v] = 1;
  return bound_[v];
}

void Executor::check_inputs_filled() const {
  for (const auto& [name, v] : inputs_)
    KESTREL_CHECK(input_filled_[v] || !input_read_[v] || g_.info(v).zeros_until_filled, "input '", name,
                  "' was never given data: call bind_input(\"", name, "\", ...) or fill input(\"", name,
                  "\") before running");
}

void Executor::bind_input(const std::string& name, const Tensor& src) {
  const int v = lookup(inputs_, name, "input");
  Tensor dst = bound_[v];
  KESTREL_CHECK(src.defined(), "bind_input('", name, "'): the source tensor is undefined");
  KESTREL_CHECK(src.shape() == dst.shape() && src.dtype() == dst.dtype() && src.layout() == dst.layout(),
                "bind_input('", name, "'): got ", src.to_string(), ", but the input is ", dst.to_string(),
                " (shape, dtype and layout must match; Tensor::from_vector stores host values in any "
                "dtype and layout)");
  KESTREL_CHECK(src.is_contiguous(), "bind_input('", name, "'): got a non-contiguous view ", src.to_string(),
                "; copy it into a contiguous tensor first");
  KESTREL_CHECK(!(ctx_.device().is_cpu() && src.device().is_cuda()), "bind_input('", name, "'): the source is on ",
                src.device().to_string(), " but this executor runs on the CPU; copy it to host memory first");
  dst.copy_from(src, ctx_.stream());
  input_filled_[v] = 1;
}

Tensor Executor::output(const std::string& name) const { return bound_[lookup(outputs_, name, "output")]; }

Tensor Executor::gradient(const std::string& param_name) const {
  KESTREL_CHECK(opts_.training, "gradients exist only in a training executor");
  auto it = param_grad_value_.find(param_name);
  if (it != param_grad_value_.end()) return bound_[it->second];
  const int i = store_.index_of(param_name);  // raises with the known names when the name is wrong
  KESTREL_CHECK(store_.trainable(static_cast<std::size_t>(i)), "'", param_name,
                "' is a state (not trained, e.g. a BN running statistic): it has no gradient");
  KESTREL_FAIL("the loss does not depend on parameter '", param_name, "'");
}

Tensor Executor::input_gradient(const std::string& input_name) const {
  return bound_[lookup(input_grad_value_, input_name, "input gradient")];
}

Tensor Executor::value(const std::string& name) const {
  const Value v = g_.find_value(name);
  if (!bound_[v.id].defined()) {
    const std::string why = unwritten_reason(g_, v.id, opts_.training);
    KESTREL_FAIL("value '", name, "' is not computed by this executor", why.empty() ? "" : ": " + why);
  }
  if (g_.info(v).kind == ValueKind::kInput) input_filled_[v.id] = 1;  // handed out, as by input()
  return bound_[v.id];
}

void Executor::run() {
  check_inputs_filled();
  DeviceGuard guard(ctx_.device());
  StoreTurn turn(*this);
  gradients_pending_ = false;
  if (graph_exec_ != nullptr)
    KESTREL_CUDA_CHECK(cudaGraphLaunch(graph_exec_, ctx_.stream().handle()));
  else
    run_eager();
}

void Executor::run_forward_backward() {
  KESTREL_CHECK(opts_.training, "run_forward_backward needs a training executor");
  KESTREL_CHECK(graph_exec_ == nullptr, "run_forward_backward runs eagerly; this executor replays a CUDA Graph");
  check_inputs_filled();
  DeviceGuard guard(ctx_.device());
  StoreTurn turn(*this);
  gradients_pending_ = false;
  run_eager(false);
  gradients_pending_ = true;
}

void Executor::apply_update() {
  KESTREL_CHECK(opts_.training, "apply_update needs a training executor");
  KESTREL_CHECK(graph_exec_ == nullptr, "apply_update runs eagerly; this executor replays a CUDA Graph");
  // Twice would apply one step's gradients twice; after a refused run_forward_backward there are
  // none (and AdamW's step count would still move).
  KESTREL_CHECK(gradients_pending_, "apply_update needs gradients not applied yet: call run_forward_backward() "
                "first (each step's gradients are applied once; a refused run_forward_backward leaves none)");
  DeviceGuard guard(ctx_.device());
  StoreTurn turn(*this);
  if (opts_.optimizer != OptimizerKind::kNone) optimizer_update();
  gradients_pending_ = false;
}

void Executor::run_eager(bool update) {
  const bool sample_dropout = opts_.training || opts_.sample_dropout;
  // A node can refuse its data part-way through a run (on the CPU a label or index out of range;
  // check_numerics anywhere; on the GPU bad labels give a NaN loss instead) after the nodes
  // before it have updated BN running statistics and the dropout offset has advanced: both are
  // put back, so that a refused run changes nothing in the store and a retry with good data
  // continues the same run. An inference run without sampled dropout changes neither.
  const bool may_refuse = (ctx_.device().is_cpu() || opts_.check_numerics) && sample_dropout;
  if (may_refuse) save_for_rollback();
  try {
    run_nodes(sample_dropout);
    if (update && opts_.training && opts_.optimizer != OptimizerKind::kNone) optimizer_update();
  } catch (...) {  // the update raises, if at all, before it changes anything
    if (may_refuse) roll_back();
    throw;
  }
  forward_ran_ = true;
}

void Executor::run_nodes(bool sample_dropout) {
  if (sample_dropout && g_.rng_slots() > 0) {
    if (ctx_.device().is_cpu())
      cpu::advance_offset(store_.rng_offset_ptr(), static_cast<std::uint64_t>(g_.rng_slots()));
    else
      cuda::advance_offset(store_.rng_offset_ptr(), static_cast<std::uint64_t>(g_.rng_slots()),
                           ctx_.stream().handle());
  }
  for (const Step& s : steps_) {
    const Node& n = g_.nodes()[s.node];
    try {
      n.op->run(OpRun{n, s.in, s.out, ctx_, s.workspace, s.workspace_bytes, opts_.training,
                      sample_dropout, state_});
    } catch (const Error& e) {
      throw Error(n.op->type() + " '" + n.name + "': " + e.message(), e.call(), e.file(), e.line());
    }
    if (opts_.check_numerics) check_numerics(s);
  }
}

// The store's dropout offset (one uint64) as a tensor, copied like the statistics: a memcpy on
// the CPU, a device-to-device copy in stream order on the GPU.
Tensor Executor::offset_view() const {
  return Tensor::wrap(store_.rng_offset_ptr(), Shape{2}, DType::kInt32, ctx_.device());
}

void Executor::save_for_rollback() {
  if (!offset_before_.defined()) {  // the first time: copies and handles, kept for every run
    const Tensor& states = store_.flat_states();
    Tensor offset = offset_view(), offset_copy = Tensor::empty(Shape{2}, DType::kInt32, ctx_);
    if (states.numel() > 0) {
      states_before_ = Tensor::empty(states.shape(), DType::kFloat32, ctx_);
      states_ = states;
    }
    offset_ = std::move(offset);
    offset_before_ = std::move(offset_copy);
  }
  if (states_before_.defined()) states_before_.copy_from(states_, ctx_.stream());
  offset_before_.copy_from(offset_, ctx_.stream());
}

void Executor::roll_back() noexcept {
  // Nothing here allocates (the handles were made by save_for_rollback), so memory that stays
  // exhausted after the failure does not stop the put-back.
  try {  // queued after the refused run's work
    if (states_before_.defined()) states_.copy_from(states_before_, ctx_.stream());
    offset_.copy_from(offset_before_, ctx_.stream());
  } catch (...) {
    // A device fault while putting things back: the run's own error is the one to report.
  }
}

void Executor::optimizer_update() {
  update_ran_ = true;
  const std::int64_t n = store_.trainable_elements();
  if (n == 0) return;
  float* p = store_.flat_params().data_as<float>();
  const float* g = store_.flat_grads().data_as<float>();
  const auto* mask = static_cast<const std::uint8_t*>(store_.decay_mask().data());
  auto* shadow = store_.flat_shadow().numel() > 0
                     ? static_cast<std::uint16_t*>(store_.flat_shadow().data())
                     : nullptr;
  // Every pointer before the first change: what could raise does so first.
  float* m = store_.opt_state(0).data_as<float>();
  float* v = opts_.optimizer == OptimizerKind::kAdamW ? store_.opt_state(1).data_as<float>() : nullptr;
  const bool cpu = ctx_.device().is_cpu();
  GradClip clip;
  if (tracks_grad_norm()) {
    auto* base = static_cast<std::uint8_t*>(grad_norm_scratch_.data());
    auto* sum_sq = reinterpret_cast<float*>(base);
    if (cpu)
      cpu::sum_squares(g, n, sum_sq, nullptr, 0);
    else
      cuda::sum_squares(g, n, sum_sq, base + kGradNormResultBytes,
                        grad_norm_scratch_.nbytes() - kGradNormResultBytes, ctx_.stream().handle());
    if (opts_.max_grad_norm > 0.f) clip = GradClip{sum_sq, opts_.max_grad_norm};
  }
  // The step count moves last before the update (which reads it, and whose arguments were checked
  // at compile): a refusal above leaves it where it was (the run's rollback does not restore it).
  if (cpu)
    cpu::increment_step(store_.step_ptr());
  else
    cuda::increment_step(store_.step_ptr(), ctx_.stream().handle());
  if (opts_.optimizer == OptimizerKind::kSgd) {
    if (cpu)
      cpu::sgd_update(p, g, m, n, opts_.sgd, store_.learning_rate_ptr(), store_.step_ptr(), mask, shadow,
                      clip);
    else
      cuda::sgd_update(p, g, m, n, opts_.sgd, store_.learning_rate_ptr(), store_.step_ptr(), mask,
                       shadow, ctx_.stream().handle(), clip);
  } else {
    if (cpu)
      cpu::adamw_update(p, g, m, v, n, opts_.adamw, store_.learning_rate_ptr(), store_.step_ptr(),
                        mask, shadow, clip);
    else
      cuda::adamw_update(p, g, m, v, n, opts_.adamw, store_.learning_rate_ptr(), store_.step_ptr(),
                         mask, shadow, ctx_.stream().handle(), clip);
  }
}

bool Executor::tracks_grad_norm() const noexcept {
  return opts_.training && opts_.optimizer != OptimizerKind::kNone &&
         (opts_.track_grad_norm || opts_.max_grad_norm > 0.f);
}

float Executor::grad_norm() const {
  KESTREL_CHECK(tracks_grad_norm(),
                "grad_norm() needs a training executor with an optimizer compiled with "
                "CompileOptions::track_grad_norm or max_grad_norm > 0");
  Tensor host = Tensor::empty_cpu(Shape{1}, DType::kFloat32);
  host.copy_from(grad_norm_scratch_.view_bytes(0, Shape{1}, DType::kFloat32), ctx_.stream());
  return std::sqrt(host.data_as<float>()[0]);
}

void Executor::check_numerics(const Step& s) {
  const Node& n = g_.nodes()[s.node];
  for (std::size_t o = 0; o < s.out.size(); ++o) {
    const Tensor& t = s.out[o];
    if (!n.op->writes_output(o, opts_.training) || !is_floating(t.dtype()) || t.numel() == 0) continue;
    const std::int64_t bad = count_nonfinite(ctx_, t, numerics_scratch_);
    KESTREL_CHECK(bad == 0, "non-finite values first appear in output ", g_.info(n.outputs[o]).describe(),
                  " of ", n.op->type(), " '", n.name, "' (", bad, " of ", t.numel(), " elements)");
  }
}

void Executor::capture_cuda_graph() {
  KESTREL_CHECK(ctx_.device().is_cuda(), "CUDA Graph capture needs a CUDA context");
  KESTREL_CHECK(!opts_.check_numerics, "check_numerics synchronises after every node and cannot be captured");
  if (graph_exec_ != nullptr) return;
  const bool updates = opts_.training && opts_.optimizer != OptimizerKind::kNone;
  KESTREL_CHECK(forward_ran_ && (!updates || update_ran_), "capture_cuda_graph: run() this executor eagerly once "
                "first (it initialises cuBLAS and builds what a capture may not allocate)");
  DeviceGuard guard(ctx_.device());
  cudaStream_t stream = ctx_.stream().handle();
  KESTREL_CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
  cudaGraph_t graph = nullptr;
  try {
    run_eager();
  } catch (...) {
    (void)cudaStreamEndCapture(stream, &graph);
    if (graph != nullptr) (void)cudaGraphDestroy(graph);
    (void)cudaGetLastError();
    throw;
  }
  KESTREL_CUDA_CHECK(cudaStreamEndCapture(stream, &graph));
  cudaGraphExec_t exec = nullptr;
  const cudaError_t e = cudaGraphInstantiate(&exec, graph, 0);
  (void)cudaGraphDestroy(graph);
  KESTREL_CUDA_CHECK(e);
  graph_exec_ = exec;
}

std::string Executor::describe() const {
  std::ostringstream os;
  os << "plan: " << stats_.forward_nodes << " forward + " << stats_.backward_nodes
     << " backward nodes, " << stats_.fusions << " fusions, " << stats_.recomputed << " recomputed, arena " << stats_.arena_bytes
     << " bytes (values total " << stats_.activation_bytes << "), workspace " << stats_.workspace_bytes
     << " bytes" << (stats_.workspace_in_arena ? " (per node, in the arena)" : "") << "\n";
  for (const Step& s : steps_) {
    const Node& n = g_.nodes()[s.node];
    os << (n.backward ? "  [bwd] " : "  ") << n.op->type() << " '" << n.name << "' ->";
    for (int o : n.outputs) {
      os << " " << g_.info(o).type.shape.to_string();
      if (arena_offset_[o] != kNotInArena) os << "@" << arena_offset_[o];
    }
    os << "\n";
  }
  return os.str();
}

}  // namespace kestrel
