#include "kestrel/core/graph.h"

#include <algorithm>
#include <atomic>
#include <sstream>
#include <utility>

#include "kestrel/core/error.h"
#include "kestrel/core/op.h"

namespace kestrel {

const char* value_kind_name(ValueKind k) noexcept {
  switch (k) {
    case ValueKind::kInput: return "input";
    case ValueKind::kParameter: return "parameter";
    case ValueKind::kParameterShadow: return "parameter (bf16 copy)";
    case ValueKind::kState: return "state";
    case ValueKind::kActivation: return "activation";
    case ValueKind::kGradient: return "gradient";
  }
  return "?";
}

std::string ValueInfo::describe() const {
  std::string s = "'" + name + "' " + type.shape.to_string() + " " + dtype_name(type.dtype);
  if (type.shape.rank() == 4) s += std::string(" ") + layout_name(type.layout);
  return s;
}

namespace {
std::uint32_t new_graph_identity() noexcept {
  static std::atomic<std::uint32_t> next{1};
  std::uint32_t id = next.fetch_add(1, std::memory_order_relaxed);
  if (id == 0) id = next.fetch_add(1, std::memory_order_relaxed);  // 0 is "unchecked"; after 2^32 graphs
  return id;
}
}  // namespace

Graph::Graph(GraphOptions options) : options_(options), identity_(new_graph_identity()) {
  KESTREL_CHECK(options.batch > 0, "graph batch size must be positive, got ", options.batch);
  KESTREL_CHECK(options.dtype == DType::kFloat32 || options.dtype == DType::kBFloat16,
                "graph activation dtype must be fp32 or bf16, got ", dtype_name(options.dtype));
}

Value Graph::new_value(const std::string& name, const TypeSpec& type, ValueKind kind, int param) {
  KESTREL_CHECK(value_by_name_.count(name) == 0, "a value named '", name, "' already exists");
  KESTREL_CHECK(type.layout == Layout::kNCHW || type.shape.rank() == 4, "value '", name,
                "': layout nhwc needs rank 4, got shape ", type.shape.to_string());
  ValueInfo v;
  v.name = name;
  v.type = type;
  v.kind = kind;
  v.param = param;
  values_.push_back(std::move(v));
  const int id = static_cast<int>(values_.size()) - 1;
  value_by_name_[name] = id;
  return handle(id);
}

Value Graph::input(const std::string& name, const TypeSpec& type) {
  return new_value(scoped(name), type, ValueKind::kInput, -1);
}

Value Graph::zero_input(const std::string& name, const TypeSpec& type) {
  const Value v = input(name, type);
  values_[static_cast<std::size_t>(v.id)].zeros_until_filled = true;
  return v;
}

Value Graph::parameter(const std::string& local_name, const TypeSpec& type, const Init& init,
                       bool decay, DType compute_dtype) {
  KESTREL_CHECK(compute_dtype == DType::kFloat32 || compute_dtype == DType::kBFloat16,
                "parameter '", scoped(local_name), "': compute dtype must be fp32 or bf16");
  Transaction tx(*this);  // a refused bf16 copy takes its master back
  ParamInfo& p = add_param(scoped(local_name), type, init, ValueKind::kParameter);
  p.decay = decay;
  if (compute_dtype == DType::kBFloat16) {
    TypeSpec t = p.type;
    t.dtype = DType::kBFloat16;
    p.shadow = new_value(p.name + "@bf16", t, ValueKind::kParameterShadow, static_cast<int>(params_.size()) - 1).id;
  }
  tx.commit();
  return handle(p.shadow >= 0 ? p.shadow : p.value);
}

Value Graph::state(const std::string& local_name, const TypeSpec& type, const Init& init) {
  ParamInfo& p = add_param(scoped(local_name), type, init, ValueKind::kState);
  p.trainable = false;
  p.decay = false;
  return handle(p.value);
}

ParamInfo& Graph::add_param(const std::string& name, const TypeSpec& type, const Init& init, ValueKind kind) {
  ParamInfo p;
  p.name = name;
  p.type = type;
  p.type.dtype = DType::kFloat32;
  p.init = init;
  p.value = new_value(name, p.type, kind, static_cast<int>(params_.size())).id;
  params_.push_back(p);
  return params_.back();
}

std::string Graph::unique_node_name(const std::string& base, const std::vector<std::string>& output_names,
                                    int* suffix) const {
  const auto hint = node_names_.find(base);
  for (int n = hint == node_names_.end() ? 0 : hint->second;; ++n) {
    const std::string name = n == 0 ? base : base + "_" + std::to_string(n);
    bool taken = node_name_set_.count(name) > 0;
    for (const std::string& o : output_names) taken = taken || value_by_name_.count(name + ":" + o) > 0;
    if (!taken) {
      *suffix = n;
      return name;
    }
  }
}

void Graph::check_value(Value v, const std::string& where) const {
  KESTREL_CHECK(v.graph == 0 || v.graph == identity_, where, ": the value (id ", v.id,
                ") belongs to another graph (values are handed out by one graph and its copies)");
  KESTREL_CHECK(v.valid() && v.id < static_cast<int>(values_.size()), where,
                ": input is not a value of this graph (id ", v.id, ")");
}

std::vector<Value> Graph::add_node(std::shared_ptr<const Op> op, const std::string& local_name,
                                   const std::vector<Value>& inputs) {
  return append_node(std::move(op), scoped(local_name), inputs, false);
}

Value Graph::add_node1(std::shared_ptr<const Op> op, const std::string& local_name,
                       const std::vector<Value>& inputs) {
  std::vector<Value> out = add_node(std::move(op), local_name, inputs);
  KESTREL_CHECK(out.size() == 1, "node '", scoped(local_name), "' has ", out.size(),
                " outputs, expected one");
  return out[0];
}

std::vector<Value> Graph::append_node(std::shared_ptr<const Op> op, const std::string& full_name,
                                      const std::vector<Value>& inputs, bool backward) {
  KESTREL_CHECK(op != nullptr, "node '", full_name, "' has no op");
  std::vector<const ValueInfo*> in;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    check_value(inputs[i], op->type() + " '" + full_name + "' input " + std::to_string(i));
    in.push_back(&values_[inputs[i].id]);
  }
  const std::vector<TypeSpec> types = op->infer(in, full_name);  // raises before any change
  const std::vector<std::string> names = op->output_names();
  KESTREL_CHECK(types.size() == names.size(), op->type(), " '", full_name, "': infer returned ",
                types.size(), " outputs but the op names ", names.size());
  int suffix = 0;
  const std::string name = unique_node_name(full_name, names, &suffix);
  // Every check new_value makes, made before the first output is created: a refused node adds
  // nothing to the graph.
  for (std::size_t i = 0; i < types.size(); ++i)
    KESTREL_CHECK(types[i].layout == Layout::kNCHW || types[i].shape.rank() == 4, "value '", name, ":", names[i],
                  "': layout nhwc needs rank 4, got shape ", types[i].shape.to_string());
  node_names_[full_name] = suffix + 1;
  node_name_set_.insert(name);
  Node n;
  n.name = name;
  n.op = std::move(op);
  n.backward = backward;
  for (Value v : inputs) n.inputs.push_back(v.id);
  std::vector<Value> out;
  for (std::size_t i = 0; i < types.size(); ++i) {
    const Value v = new_value(name + ":" + names[i], types[i],
                              backward ? ValueKind::kGradient : ValueKind::kActivation, -1);
    n.outputs.push_back(v.id);
    out.push_back(v);
  }
  nodes_.push_back(std::move(n));
  return out;
}

Graph::Transaction::Transaction(Graph& g)
    : g_(g),
      identity_(g.identity_),
      values_(g.values_.size()),
      nodes_(g.nodes_.size()),
      params_(g.params_.size()),
      outputs_(g.outputs_.size()),
      node_names_(g.node_names_),
      loss_(g.loss_),
      rng_slots_(g.rng_slots_) {}

Graph::Transaction::~Transaction() {
  // A graph moved from or assigned to inside the transaction is another graph now: putting the
  // sizes back would grow its vectors with empty values and nodes (and allocate in a destructor).
  if (committed_ || g_.identity_ != identity_ || g_.values_.size() < values_ || g_.nodes_.size() < nodes_ ||
      g_.params_.size() < params_ || g_.outputs_.size() < outputs_)
    return;
  for (std::size_t v = values_; v < g_.values_.size(); ++v) g_.value_by_name_.erase(g_.values_[v].name);
  for (std::size_t n = nodes_; n < g_.nodes_.size(); ++n) g_.node_name_set_.erase(g_.nodes_[n].name);
  g_.values_.resize(values_);
  g_.nodes_.resize(nodes_);
  g_.params_.resize(params_);
  g_.outputs_.resize(outputs_);
  g_.node_names_ = std::move(node_names_);
  g_.loss_ = loss_;
  g_.rng_slots_ = rng_slots_;
}

void Graph::push_scope(const std::string& part) {
  KESTREL_CHECK(!part.empty() && part.find('.') == std::string::npos && part.find(':') == std::string::npos,
                "scope names are non-empty and contain no '.' or ':', got '", part, "'");
  scope_.push_back(part);
}

Graph::Graph(Graph&& o) noexcept : identity_(0) { *this = std::move(o); }

Graph& Graph::operator=(Graph&& o) noexcept {
  if (this == &o) return *this;
  options_ = o.options_;
  values_ = std::move(o.values_);
  nodes_ = std::move(o.nodes_);
  params_ = std::move(o.params_);
  scope_ = std::move(o.scope_);
  value_by_name_ = std::move(o.value_by_name_);
  node_names_ = std::move(o.node_names_);
  node_name_set_ = std::move(o.node_name_set_);
  outputs_ = std::move(o.outputs_);
  loss_ = std::exchange(o.loss_, Value{});
  identity_ = std::exchange(o.identity_, new_graph_identity());  // the empty graph is a new one
  rng_slots_ = std::exchange(o.rng_slots_, 0);
  // Moved-from containers are valid but unspecified: make them empty.
  o.values_.clear();
  o.nodes_.clear();
  o.params_.clear();
  o.scope_.clear();
  o.value_by_name_.clear();
  o.node_names_.clear();
  o.node_name_set_.clear();
  o.outputs_.clear();
  return *this;
}

void Graph::pop_scope() {
  KESTREL_CHECK(!scope_.empty(), "pop_scope without a matching push_scope");
  scope_.pop_back();
}

std::string Graph::scoped(const std::string& local) const {
  std::string s;
  for (const std::string& p : scope_) s += p + ".";
  return s + local;
}

void Graph::mark_output(Value v, const std::string& name) {
  check_value(v, "mark_output('" + name + "')");
  for (const auto& o : outputs_)
    KESTREL_CHECK(o.first != name, "an output named '", name, "' already exists");
  outputs_.emplace_back(name, v.id);
}

void Graph::set_loss(Value v) {
  check_value(v, "set_loss");
  const ValueInfo& i = values_[v.id];
  KESTREL_CHECK(i.type.shape.numel() == 1 && i.type.dtype == DType::kFloat32,
                "the loss must be a single fp32 value (the output of nn::softmax_cross_entropy, the one loss "
                "Kestrel has), got ", i.describe());
  loss_ = v;
}

const ValueInfo& Graph::info(Value v) const {
  check_value(v, "info");
  return values_[v.id];
}

Value Graph::find_value(const std::string& name) const {
  auto it = value_by_name_.find(name);
  if (it != value_by_name_.end()) return handle(it->second);
  std::vector<std::string> close;
  for (const auto& [n, id] : value_by_name_)
    if (n.find(name) != std::string::npos || name.find(n) != std::string::npos) close.push_back(n);
  std::sort(close.begin(), close.end());
  if (close.size() > 8) close.resize(8);
  std::string hint;
  for (const auto& c : close) hint += (hint.empty() ? "" : ", ") + c;
  KESTREL_FAIL("no value named '", name, "'", hint.empty() ? "" : " (similar: " + hint + ")");
}

std::string Graph::summary() const {
  std::ostringstream os;
  for (const Node& n : nodes_) {
    os << (n.backward ? "  bwd " : "  ") << n.op->type() << " '" << n.name << "'";
    for (std::size_t i = 0; i < n.outputs.size(); ++i)
      os << (i ? ", " : " -> ") << values_[n.outputs[i]].type.shape.to_string();
    os << "\n";
  }
  return os.str();
}

std::vector<Value> Op::backward(Graph&, const Node& n, const std::vector<Value>&,
                                const std::vector<bool>&) const {
  KESTREL_FAIL(type(), " '", n.name, "' is not differentiable");
}

void shape_error(const std::string& op, const std::string& node, const std::string& what,
                 const std::string& expected, const std::string& actual) {
  KESTREL_FAIL(op, " '", node, "': ", what, ": expected ", expected, ", got ", actual);
}

void expect_inputs(const std::string& op, const std::string& node,
                   const std::vector<const ValueInfo*>& in, std::size_t count) {
  if (in.size() != count)
    shape_error(op, node, "number of inputs", std::to_string(count), std::to_string(in.size()));
}

void expect_activation(const std::string& op, const std::string& node, const ValueInfo& x, int rank,
                       const std::string& dims) {
  if (x.shape().rank() != rank) shape_error(op, node, "input " + x.describe(), dims, x.shape().to_string());
  if (x.dtype() != DType::kFloat32 && x.dtype() != DType::kBFloat16)
    shape_error(op, node, "input " + x.describe(), "dtype fp32 or bf16", dtype_name(x.dtype()));
}

void expect_type(const std::string& op, const std::string& node, const std::string& role,
                 const ValueInfo& v, int rank, DType dtype, Layout layout) {
  if (v.type.shape.rank() != rank)
    shape_error(op, node, role + " " + v.describe(), "rank " + std::to_string(rank),
                "rank " + std::to_string(v.type.shape.rank()));
  if (v.type.dtype != dtype)
    shape_error(op, node, role + " " + v.describe(), std::string("dtype ") + dtype_name(dtype),
                dtype_name(v.type.dtype));
  if (rank == 4 && v.type.layout != layout)
    shape_error(op, node, role + " " + v.describe(), std::string("layout ") + layout_name(layout),
                layout_name(v.type.layout));
}

}  // namespace kestrel
