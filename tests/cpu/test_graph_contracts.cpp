// What core/graph.h promises about building a graph, each checked where a mutation of
// core/graph.cpp went unseen: option and value-type refusals, the kinds and types the graph gives
// its values, node and scope names, find_value's hints, summary(), moves and transactions.
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "error_text.h"
#include "grad_check.h"
#include "kestrel/core/autodiff.h"
#include "kestrel/core/ops/elementwise_ops.h"
#include "kestrel/core/ops/nn_ops.h"
#include "kestrel/layers/nn.h"

using namespace kestrel;
using kestrel::testing::contains;
using kestrel::testing::error_of;
using kestrel::testing::graph_options;

namespace {

// An op of one's own with two outputs ("a", "b"), each of its input's type; `extra` makes infer
// return one type more than it names.
class TwoOutputOp final : public Op {
 public:
  explicit TwoOutputOp(bool extra = false) : extra_(extra) {}
  std::string type() const override { return "TwoOutput"; }
  std::vector<std::string> output_names() const override { return {"a", "b"}; }
  std::vector<TypeSpec> infer(const std::vector<const ValueInfo*>& in, const std::string&) const override {
    return std::vector<TypeSpec>(extra_ ? 3 : 2, in[0]->type);
  }
  void run(const OpRun&) const override {}

 private:
  bool extra_;
};

}  // namespace

TEST(GraphContracts, OptionsOutsideWhatAGraphCanHoldAreRefused) {
  GraphOptions o;
  o.batch = 0;
  EXPECT_TRUE(contains(error_of([&] { Graph g(o); }), "graph batch size must be positive, got 0"));
  o.batch = 1;
  EXPECT_NO_THROW(Graph g(o));
  for (DType d : {DType::kInt32, DType::kUInt8}) {
    o.dtype = d;
    EXPECT_TRUE(contains(error_of([&] { Graph g(o); }), "graph activation dtype must be fp32 or bf16, got "))
        << dtype_name(d);
  }
  o.dtype = DType::kBFloat16;
  EXPECT_NO_THROW(Graph g(o));
}

// nhwc describes a 4-D activation only: a rank-3 (or rank-5) value in it is refused, by name.
TEST(GraphContracts, NhwcNeedsRankFourForEveryValue) {
  Graph g;
  for (const Shape& s : {Shape{2, 3, 4}, Shape{1, 2, 3, 4, 5}}) {
    TypeSpec t{s};
    t.layout = Layout::kNHWC;
    EXPECT_TRUE(contains(error_of([&] { g.input("x", t); }), "value 'x': layout nhwc needs rank 4, got shape " +
                                                            s.to_string()));
  }
  TypeSpec four{Shape{1, 2, 3, 4}};
  four.layout = Layout::kNHWC;
  EXPECT_EQ(g.info(g.input("x", four)).type.layout, Layout::kNHWC);  // the name stayed free
}

// describe() names the layout of 4-D values only (the others have none).
TEST(GraphContracts, DescribeNamesTheLayoutOfFourDimensionalValuesOnly) {
  Graph g;
  EXPECT_EQ(g.info(g.input("seq", {Shape{2, 3, 4}})).describe(), "'seq' [2, 3, 4] fp32");
  EXPECT_EQ(g.info(g.input("img", {Shape{2, 3, 4, 5}})).describe(), "'img' [2, 3, 4, 5] fp32 nchw");
}

TEST(GraphContracts, EveryValueKindHasItsOwnName) {
  EXPECT_STREQ(value_kind_name(ValueKind::kInput), "input");
  EXPECT_STREQ(value_kind_name(ValueKind::kParameter), "parameter");
  EXPECT_STREQ(value_kind_name(ValueKind::kParameterShadow), "parameter (bf16 copy)");
  EXPECT_STREQ(value_kind_name(ValueKind::kState), "state");
  EXPECT_STREQ(value_kind_name(ValueKind::kActivation), "activation");
  EXPECT_STREQ(value_kind_name(ValueKind::kGradient), "gradient");
}

// A parameter's master is fp32 whatever dtype its TypeSpec names (the compute copy is chosen by
// compute_dtype); a compute dtype other than fp32 or bf16 is refused and adds nothing; a state is
// neither trained nor decayed.
TEST(GraphContracts, ParametersKeepAnFp32MasterAndStatesAreNotTrainedOrDecayed) {
  Graph g;
  const Value w = g.parameter("w", {Shape{3}, DType::kBFloat16}, Init::zeros());
  EXPECT_EQ(g.info(w).type.dtype, DType::kFloat32);
  EXPECT_EQ(g.params()[0].type.dtype, DType::kFloat32);
  const Value c = g.parameter("c", {Shape{3}}, Init::zeros(), true, DType::kBFloat16);
  EXPECT_EQ(g.info(c).type.dtype, DType::kBFloat16);
  EXPECT_EQ(g.info(c).kind, ValueKind::kParameterShadow);
  EXPECT_EQ(g.info(g.params()[1].value).type.dtype, DType::kFloat32);
  for (DType d : {DType::kInt32, DType::kUInt8}) {
    EXPECT_TRUE(contains(error_of([&] { g.parameter("bad", {Shape{3}}, Init::zeros(), true, d); }),
                    "parameter 'bad': compute dtype must be fp32 or bf16"))
        << dtype_name(d);
  }
  EXPECT_EQ(g.params().size(), 2u);
  g.state("running_mean", {Shape{3}}, Init::zeros());
  ASSERT_EQ(g.params().size(), 3u);
  EXPECT_FALSE(g.params()[2].trainable);
  EXPECT_FALSE(g.params()[2].decay);
  EXPECT_TRUE(g.params()[0].trainable);
  EXPECT_TRUE(g.params()[0].decay);
}

// A node's name is also kept clear of values that already use "<name>:<output>": an input named
// "act:y" sends a node "act" to "act_1" (without the check the node was refused half-made, as a
// duplicate value name).
TEST(GraphContracts, ANodeNameAvoidsAValueNamedLikeItsOutput) {
  Graph g;
  const Value x = g.input("act:y", {Shape{2, 3}});
  const Value y = g.add_node1(make_relu_op(), "act", {x});
  EXPECT_EQ(g.info(y).name, "act_1:y");
  EXPECT_EQ(g.nodes().back().name, "act_1");
}

TEST(GraphContracts, OutputCountsMustAgree) {
  Graph g;
  const Value x = g.input("x", {Shape{2, 3}});
  EXPECT_TRUE(contains(error_of([&] { g.add_node1(std::make_shared<TwoOutputOp>(), "two", {x}); }),
                  "node 'two' has 2 outputs, expected one"));
  EXPECT_TRUE(contains(error_of([&] { g.add_node(std::make_shared<TwoOutputOp>(true), "three", {x}); }),
                  "TwoOutput 'three': infer returned 3 outputs but the op names 2"));
  EXPECT_EQ(g.add_node(std::make_shared<TwoOutputOp>(), "two", {x}).size(), 2u);
}

// An op given more inputs than it takes is refused like one given fewer.
TEST(GraphContracts, ExtraInputsAreRefused) {
  Graph g;
  const Value x = g.input("x", {Shape{2, 3}});
  const std::string e = error_of([&] { g.add_node1(make_relu_op(), "act", {x, x}); });
  EXPECT_TRUE(contains(e, "number of inputs: expected 1, got 2")) << e;
}

// Values made by backward nodes are gradients; forward nodes make activations.
TEST(GraphContracts, BackwardNodesMakeGradients) {
  Graph g(graph_options(2));
  const Value x = g.input("x", {Shape{2, 3}});
  const Value logits = nn::linear(g, "fc", x, 4);
  nn::softmax_cross_entropy(g, logits, nn::label_input(g, "labels"));
  EXPECT_EQ(g.info(logits).kind, ValueKind::kActivation);
  const AutodiffResult r = append_backward(g);
  int backward_nodes = 0;
  for (const Node& n : g.nodes()) {
    if (!n.backward) continue;
    ++backward_nodes;
    for (int id : n.outputs) EXPECT_EQ(g.info(id).kind, ValueKind::kGradient) << g.info(id).name;
  }
  EXPECT_GT(backward_nodes, 0);
  ASSERT_GE(r.param_grad.size(), 1u);
  EXPECT_EQ(g.info(r.param_grad[0]).kind, ValueKind::kGradient);
}

// Scope parts are plain words: no '.', no ':', not empty (they become parts of value names).
TEST(GraphContracts, ScopePartsAreRefusedWithDotsColonsOrNothing) {
  Graph g;
  for (const std::string bad : {"a.b", "a:b", ""})
    EXPECT_TRUE(contains(error_of([&] { g.push_scope(bad); }), "scope names are non-empty and contain no '.' or ':', got '" +
                                                              bad + "'"))
        << bad;
  g.push_scope("block");
  EXPECT_EQ(g.scoped("x"), "block.x");
}

// A set_loss of a one-element value of another dtype is refused like a larger one.
TEST(GraphContracts, TheLossMustBeFp32) {
  Graph g;
  const Value b = g.input("b", {Shape{1}, DType::kBFloat16});
  EXPECT_TRUE(contains(error_of([&] { g.set_loss(b); }), "the loss must be a single fp32 value"));
  EXPECT_FALSE(g.loss().valid());
}

// find_value's hints: names containing the one asked for and names it contains, sorted, at most 8.
TEST(GraphContracts, FindValueSuggestsCloseNamesSortedAndAtMostEight) {
  Graph g;
  for (const char* name : {"fc.weight", "zz", "fc:y", "fc.bias", "f"}) g.input(name, {Shape{1}});
  std::string e = error_of([&] { g.find_value("fc"); });
  EXPECT_TRUE(contains(e, "no value named 'fc' (similar: f, fc.bias, fc.weight, fc:y)")) << e;
  e = error_of([&] { g.find_value("zzz"); });
  EXPECT_TRUE(contains(e, "no value named 'zzz' (similar: zz)")) << e;
  e = error_of([&] { g.find_value("qq"); });
  EXPECT_TRUE(contains(e, "no value named 'qq'") && !contains(e, "similar")) << e;
  Graph many;
  for (int i = 0; i < 10; ++i) many.input("h" + std::to_string(i), {Shape{1}});
  e = error_of([&] { many.find_value("h"); });
  EXPECT_TRUE(contains(e, "(similar: h0, h1, h2, h3, h4, h5, h6, h7)")) << e;
}

// summary(): one line per node, its op, name and output shapes; backward nodes marked "bwd".
TEST(GraphContracts, TheSummaryListsEachNodesOutputsAndMarksBackwardNodes) {
  Graph g;
  const Value x = g.input("x", {Shape{2, 3}});
  g.add_node(std::make_shared<TwoOutputOp>(), "two", {x});
  g.append_node(make_relu_op(), "grad", {x}, true);
  EXPECT_EQ(g.summary(), "  TwoOutput 'two' -> [2, 3], [2, 3]\n  bwd ReLU 'grad' -> [2, 3]\n");
}

// A moved graph keeps its options; the moved-from one has no random slots left.
TEST(GraphContracts, AMoveTakesTheOptionsAndTheRandomSlots) {
  GraphOptions o;
  o.batch = 8;
  o.dtype = DType::kBFloat16;
  o.layout = Layout::kNHWC;
  Graph g(o);
  const Value x = g.input("x", {Shape{8, 6}});
  nn::dropout(g, "drop", x, 0.5f);
  ASSERT_EQ(g.rng_slots(), 1);
  Graph h(std::move(g));
  EXPECT_EQ(h.options().batch, 8);
  EXPECT_EQ(h.options().dtype, DType::kBFloat16);
  EXPECT_EQ(h.options().layout, Layout::kNHWC);
  EXPECT_EQ(h.rng_slots(), 1);
  EXPECT_EQ(g.rng_slots(), 0);  // NOLINT(bugprone-use-after-move): the state is the point
}

// An output marked inside a transaction that is not committed goes with it.
TEST(GraphContracts, ARolledBackTransactionTakesItsOutputsBack) {
  Graph g;
  const Value x = g.input("x", {Shape{2, 3}});
  g.mark_output(x, "kept");
  {
    Graph::Transaction tx(g);
    g.mark_output(x, "dropped");
  }
  ASSERT_EQ(g.outputs().size(), 1u);
  EXPECT_EQ(g.outputs()[0].first, "kept");
  g.mark_output(x, "dropped");  // the name is free again
  EXPECT_EQ(g.outputs().size(), 2u);
}
