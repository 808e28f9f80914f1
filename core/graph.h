// Graph: the define step of define-compile-run. Layers append nodes to a Graph of typed values
// (shape, dtype, layout, name); Executor (core/executor.h) compiles a copy of it into a plan.
//
// Contract:
// - Values are created by inputs, parameters, states and node outputs, and never change type.
// - add_node() checks its inputs through the op's infer(), which raises kestrel::Error naming
//   the node, the input and the expected and actual shapes; nothing is appended on error.
// - Parameters are named hierarchically from the scope stack ("layer2.block0.conv1.weight");
//   names are unique. Parameters are fp32 masters; a parameter whose compute dtype is bf16 is
//   consumed through a bf16 "shadow" value that the optimizer refreshes each step.
// - Batch size is fixed when the graph is built (GraphOptions::batch).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "kestrel/core/dtype.h"
#include "kestrel/core/layout.h"
#include "kestrel/core/shape.h"

namespace kestrel {

class Op;

enum class ValueKind : std::uint8_t {
  kInput,            // bound by name before each run; persistent buffer
  kParameter,        // fp32 master weights: a slot of the parameter buffer
  kParameterShadow,  // bf16 compute copy of a parameter, written by the optimizer
  kState,            // persistent non-trainable state (BN running statistics)
  kActivation,       // produced by a forward node
  kGradient,         // produced by a backward node
};
const char* value_kind_name(ValueKind k) noexcept;

struct TypeSpec {
  Shape shape;
  DType dtype = DType::kFloat32;
  Layout layout = Layout::kNCHW;
};

struct ValueInfo {
  std::string name;
  TypeSpec type;
  ValueKind kind = ValueKind::kActivation;
  int param = -1;     // kParameter / kParameterShadow / kState: index into Graph::params()
  bool zeros_until_filled = false;  // kInput made by Graph::zero_input
  const Shape& shape() const noexcept { return type.shape; }
  DType dtype() const noexcept { return type.dtype; }
  Layout layout() const noexcept { return type.layout; }
  // "'layer1.conv1:y' [128, 16, 32, 32] bf16 nhwc"
  std::string describe() const;
};

// A handle to a value of one graph: its index, and the identity of the graph that handed it out
// (shared by that graph's copies), so that a value of another graph is refused instead of meaning
// whatever has the same index there. Values rebuilt from a node's indices inside the library
// carry identity 0, which every graph accepts. Value::seed() stands for "d loss / d loss = 1"
// during autodiff.
struct Value {
  int id = -1;
  std::uint32_t graph = 0;
  bool valid() const noexcept { return id >= 0; }
  bool is_seed() const noexcept { return id == -2; }
  static Value seed() noexcept { return Value{-2}; }
  bool operator==(const Value& o) const noexcept { return id == o.id; }  // ids only (the graph tag is a check)
};

struct Node {
  std::string name;
  std::shared_ptr<const Op> op;
  std::vector<int> inputs;
  std::vector<int> outputs;
  bool backward = false;  // appended by autodiff
};

// How a parameter is initialised (by ParameterStore, on the host, from the graph's seed).
// with_range() then overwrites one range of elements (logical order) with a constant, e.g. the
// forget-gate quarter of an LSTM bias.
struct Init {
  enum class Kind : std::uint8_t { kZeros, kOnes, kConstant, kHeNormal, kHeUniform, kXavierUniform, kUniform };
  Kind kind = Kind::kZeros;
  float value = 0.f;   // kConstant; kUniform bound (U(-value, value))
  std::int64_t fan_in = 0, fan_out = 0;
  std::int64_t range_begin = 0, range_end = 0;  // [begin, end) set to range_value; empty: none
  float range_value = 0.f;
  static Init zeros() { return {}; }
  static Init ones() { return make(Kind::kOnes, 1.f, 0, 0); }
  static Init constant(float v) { return make(Kind::kConstant, v, 0, 0); }
  static Init he_normal(std::int64_t fan_in) { return make(Kind::kHeNormal, 0.f, fan_in, 0); }
  static Init he_uniform(std::int64_t fan_in) { return make(Kind::kHeUniform, 0.f, fan_in, 0); }
  static Init xavier_uniform(std::int64_t fan_in, std::int64_t fan_out) { return make(Kind::kXavierUniform, 0.f, fan_in, fan_out); }
  static Init uniform(float bound) { return make(Kind::kUniform, bound, 0, 0); }
  Init with_range(std::int64_t begin, std::int64_t end, float v) const {
    Init i = *this;
    i.range_begin = begin;
    i.range_end = end;
    i.range_value = v;
    return i;
  }

 private:
  static Init make(Kind k, float value, std::int64_t fan_in, std::int64_t fan_out) {
    Init i;
    i.kind = k;
    i.value = value;
    i.fan_in = fan_in;
    i.fan_out = fan_out;
    return i;
  }
};

struct ParamInfo {
  std::string name;
  TypeSpec type;          // fp32 master: shape and layout (conv weights: KCRS or KRSC)
  Init init;
  bool trainable = true;  // false for states (BN running statistics)
  bool decay = true;      // weight decay applies (off for BN and biases when requested)
  int value = -1;         // the fp32 master value
  int shadow = -1;        // the bf16 compute value, or -1
};

struct GraphOptions {
  std::int64_t batch = 1;
  DType dtype = DType::kFloat32;   // activation storage
  Layout layout = Layout::kNCHW;   // activation layout
};

class Graph {
 public:
  explicit Graph(GraphOptions options = {});
  // Copies are independent graphs that share the identity their Values carry: a value of the
  // original is valid in the copy (it has it too), and a value made in one copy after copying is
  // not caught if given to the other. A moved-from graph is empty (no values, nodes, loss or
  // random slots), with the same options and a new identity, as a new one.
  Graph(const Graph&) = default;
  Graph& operator=(const Graph&) = default;
  Graph(Graph&& o) noexcept;
  Graph& operator=(Graph&& o) noexcept;

  const GraphOptions& options() const noexcept { return options_; }

  // Leaves.
  // An input: an executor's run() raises until it has been given data (Executor::bind_input, or
  // its buffer handed out by Executor::input).
  Value input(const std::string& name, const TypeSpec& type);
  // An input that holds zeros until something fills it (initial states, additive probes).
  Value zero_input(const std::string& name, const TypeSpec& type);
  // A trainable fp32 parameter named scope + "." + local_name. With compute_dtype bf16 the
  // returned value is the bf16 shadow that nodes consume.
  Value parameter(const std::string& local_name, const TypeSpec& type, const Init& init,
                  bool decay = true, DType compute_dtype = DType::kFloat32);
  // A persistent non-trainable fp32 state (e.g. running statistics).
  Value state(const std::string& local_name, const TypeSpec& type, const Init& init);

  // Appends a node named scope + "." + local_name (made unique). Output types come from
  // op->infer(); outputs are named "<node>:<output_names[i]>".
  std::vector<Value> add_node(std::shared_ptr<const Op> op, const std::string& local_name,
                              const std::vector<Value>& inputs);
  Value add_node1(std::shared_ptr<const Op> op, const std::string& local_name,
                  const std::vector<Value>& inputs);
  // Appends a node whose name is already complete (autodiff and passes use this).
  std::vector<Value> append_node(std::shared_ptr<const Op> op, const std::string& full_name,
                                 const std::vector<Value>& inputs, bool backward);

  // Scopes for hierarchical names.
  void push_scope(const std::string& part);
  void pop_scope();
  std::string scoped(const std::string& local) const;
  class Scope {
   public:
    Scope(Graph& g, const std::string& part) : g_(g) { g_.push_scope(part); }
    // Pops its part, or nothing when the scope stack was emptied by hand inside it (a destructor
    // must not throw: that would end the program).
    ~Scope() {
      if (!g_.scope_.empty()) g_.scope_.pop_back();
    }
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    Graph& g_;
  };

  // Undoes, unless commit() is called, everything added to the graph since it was made: values,
  // parameters and states, nodes, node names, outputs, the loss and random-stream slots. A layer
  // that creates its parameters and then has its node refused (a shape error) leaves the graph
  // as it was, so the call can be retried under the same name. Transactions nest.
  class Transaction {
   public:
    explicit Transaction(Graph& g);
    ~Transaction();
    void commit() noexcept { committed_ = true; }
    Transaction(const Transaction&) = delete;
    Transaction& operator=(const Transaction&) = delete;

   private:
    Graph& g_;
    std::uint32_t identity_;  // a graph moved from or assigned to since is not rolled back
    std::size_t values_, nodes_, params_, outputs_;
    std::unordered_map<std::string, int> node_names_;
    Value loss_;
    int rng_slots_;
    bool committed_ = false;
  };

  // Outputs readable after a run (by name), and the scalar loss that training minimises.
  void mark_output(Value v, const std::string& name);
  void set_loss(Value v);
  Value loss() const noexcept { return loss_; }
  const std::vector<std::pair<std::string, int>>& outputs() const noexcept { return outputs_; }

  // Random nodes (dropout) draw from distinct offsets of the step's Philox stream.
  int next_rng_slot() noexcept { return rng_slots_++; }
  int rng_slots() const noexcept { return rng_slots_; }

  const ValueInfo& info(Value v) const;
  const ValueInfo& info(int id) const { return info(Value{id}); }
  const std::vector<ValueInfo>& values() const noexcept { return values_; }
  const std::vector<Node>& nodes() const noexcept { return nodes_; }
  std::vector<Node>& mutable_nodes() noexcept { return nodes_; }
  const std::vector<ParamInfo>& params() const noexcept { return params_; }
  Value find_value(const std::string& name) const;  // raises with close matches when missing

  // Human-readable listing, one line per node: its op, name and output shapes ("bwd" marks backward
  // nodes).
  std::string summary() const;

 private:
  Value new_value(const std::string& name, const TypeSpec& type, ValueKind kind, int param);
  // The ParamInfo of a parameter or state named `name` (already scoped), registered with its value.
  ParamInfo& add_param(const std::string& name, const TypeSpec& type, const Init& init, ValueKind kind);
  // A node name from `base` ("base", else "base_1", "base_2", ...) that no node has and that
  // gives no output a taken value name; its suffix number goes to *suffix.
  std::string unique_node_name(const std::string& base, const std::vector<std::string>& output_names,
                               int* suffix) const;
  void check_value(Value v, const std::string& where) const;

  GraphOptions options_;
  std::vector<ValueInfo> values_;
  std::vector<Node> nodes_;
  std::vector<ParamInfo> params_;
  std::vector<std::string> scope_;
  std::unordered_map<std::string, int> value_by_name_;
  std::unordered_map<std::string, int> node_names_;  // base -> next suffix to try
  std::unordered_set<std::string> node_name_set_;     // every node's final name
  std::vector<std::pair<std::string, int>> outputs_;
  Value loss_;
  int rng_slots_ = 0;
  std::uint32_t identity_;  // Value::graph of the values this graph and its copies hand out
  Value handle(int id) const noexcept { return Value{id, identity_}; }
};

}  // namespace kestrel
