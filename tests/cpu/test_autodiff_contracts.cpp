// What core/autodiff.h promises, each checked where a mutation of core/autodiff.cpp went unseen:
// sum_gradients' refusals, a loss made by no node, a loss that no gradient flows from, side
// branches that do not lead to the loss, and what a backward of one's own must hand back.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "error_text.h"
#include "grad_check.h"
#include "kestrel/core/autodiff.h"
#include "kestrel/core/ops/elementwise_ops.h"
#include "kestrel/layers/nn.h"

using namespace kestrel;
using kestrel::testing::contains;
using kestrel::testing::error_of;
using kestrel::testing::graph_options;

namespace {

std::size_t backward_nodes(const Graph& g) {
  std::size_t n = 0;
  for (const Node& node : g.nodes()) n += node.backward ? 1 : 0;
  return n;
}

// y = x; its backward hands back `count` gradients (dy itself for each), or, with `none`, no
// gradient at all for the one input.
class OwnBackwardOp final : public Op {
 public:
  OwnBackwardOp(std::size_t count, bool none) : count_(count), none_(none) {}
  std::string type() const override { return "OwnBackward"; }
  std::vector<TypeSpec> infer(const std::vector<const ValueInfo*>& in, const std::string&) const override {
    return {in[0]->type};
  }
  void run(const OpRun&) const override {}
  std::vector<Value> backward(Graph&, const Node&, const std::vector<Value>& grad_out,
                              const std::vector<bool>&) const override {
    if (none_) return {Value{}};
    return std::vector<Value>(count_, grad_out[0]);
  }

 private:
  std::size_t count_;
  bool none_;
};

// A loss of one's own (it takes the seed) whose backward must not be asked for: it hands back no
// gradient at all, which autodiff would refuse.
class SeedTakingOp final : public Op {
 public:
  std::string type() const override { return "SeedTaking"; }
  std::vector<TypeSpec> infer(const std::vector<const ValueInfo*>&, const std::string&) const override {
    return {TypeSpec{Shape{1}}};
  }
  void run(const OpRun&) const override {}
  bool takes_loss_seed() const override { return true; }
  std::vector<Value> backward(Graph&, const Node&, const std::vector<Value>&,
                              const std::vector<bool>&) const override {
    return {};
  }
};

// A batch of 2 through x -> fc (a parameter) -> [op] -> softmax cross-entropy.
std::string backward_refusal(std::shared_ptr<const Op> op) {
  Graph g(graph_options(2));
  const Value h = g.add_node1(std::move(op), "own", {nn::linear(g, "fc", g.input("x", {Shape{2, 4}}), 3)});
  nn::softmax_cross_entropy(g, h, nn::label_input(g, "labels"));
  return error_of([&] { append_backward(g); });
}

}  // namespace

TEST(AutodiffContracts, SumGradientsRefusesNothingAndTheSeedWithAnotherPart) {
  Graph g;
  const Value a = g.input("a", {Shape{3}});
  const Value b = g.input("b", {Shape{3}});
  EXPECT_TRUE(contains(error_of([&] { sum_gradients(g, {}, "w"); }), "sum_gradients of nothing for 'w'"));
  EXPECT_TRUE(contains(error_of([&] { sum_gradients(g, {Value::seed(), a}, "loss"); }), "the loss 'loss' is used by other nodes"));
  EXPECT_TRUE(contains(error_of([&] { sum_gradients(g, {a, Value::seed()}, "loss"); }), "the loss 'loss' is used by other nodes"));
  EXPECT_EQ(g.nodes().size(), 0u);
  EXPECT_EQ(sum_gradients(g, {a}, "w").id, a.id);  // one part: itself, no node
  EXPECT_TRUE(sum_gradients(g, {Value::seed()}, "loss").is_seed());
  const Value s = sum_gradients(g, {a, b, a}, "w");
  EXPECT_EQ(g.nodes().size(), 2u);  // a chain of two Adds
  EXPECT_EQ(g.info(s).name, "w.grad_sum_1:y");
}

// A loss that gradients flow from but that no node makes (a parameter, an input asked for) is
// refused naming what it is.
TEST(AutodiffContracts, ALossMadeByNoNodeIsRefusedNamingWhatItIs) {
  Graph g;
  const Value w = g.parameter("w", {Shape{1}}, Init::zeros());
  g.set_loss(w);
  std::string e = error_of([&] { append_backward(g); });
  EXPECT_TRUE(contains(e, "the loss 'w' is made by no node (it is a graph parameter): make it the output of softmax_cross_entropy"))
      << e;
  Graph h;
  const Value x = h.input("x", {Shape{1}});
  h.set_loss(x);
  e = error_of([&] { append_backward(h, {x}); });
  EXPECT_TRUE(contains(e, "the loss 'x' is made by no node (it is a graph input)")) << e;
}

// A loss that depends on no trainable parameter (and no input asked for) gives no gradients; it
// need not be softmax cross-entropy's output, since d loss / d loss enters nowhere.
TEST(AutodiffContracts, ALossNoGradientFlowsFromGivesNoGradients) {
  Graph g;
  nn::linear(g, "fc", g.input("x", {Shape{1, 4}}), 3);  // parameters the loss does not use
  g.set_loss(g.input("l", {Shape{1}}));
  const AutodiffResult r = append_backward(g);
  EXPECT_EQ(r.param_grad, (std::vector<int>{-1, -1}));
  EXPECT_EQ(backward_nodes(g), 0u);
  // The same for softmax cross-entropy of logits that no parameter makes: the seed enters it,
  // but none of its inputs needs a gradient, so its backward is not asked for.
  Graph plain(graph_options(2));
  nn::linear(plain, "fc", plain.input("x", {Shape{2, 4}}), 3);
  nn::softmax_cross_entropy(plain, plain.input("logits", {Shape{2, 3}}), nn::label_input(plain, "labels"));
  EXPECT_EQ(append_backward(plain).param_grad, (std::vector<int>{-1, -1}));
  EXPECT_EQ(backward_nodes(plain), 0u);
}

// A backward is asked for only when one of its inputs needs a gradient: a loss of one's own over
// an input (no parameter upstream) gets the seed, and its backward is not called.
TEST(AutodiffContracts, ABackwardIsNotAskedForWhenNoInputNeedsAGradient) {
  Graph g;
  nn::linear(g, "fc", g.input("x", {Shape{1, 4}}), 3);
  g.set_loss(g.add_node1(std::make_shared<SeedTakingOp>(), "loss", {g.input("y", {Shape{1, 3}})}));
  EXPECT_EQ(append_backward(g).param_grad, (std::vector<int>{-1, -1}));
  EXPECT_EQ(backward_nodes(g), 0u);
}

// A side branch (an output marked for reading, not part of the loss) gets no backward nodes and
// its parameters no gradient, though its input leads to the loss.
TEST(AutodiffContracts, ASideBranchThatDoesNotLeadToTheLossGetsNoBackward) {
  Graph g(graph_options(2));
  const Value h = nn::relu(g, nn::linear(g, "fc1", g.input("x", {Shape{2, 4}}), 5));
  g.mark_output(nn::linear(g, "aux", h, 2), "aux");
  nn::softmax_cross_entropy(g, nn::linear(g, "fc2", h, 3), nn::label_input(g, "labels"));
  const AutodiffResult r = append_backward(g);
  ASSERT_EQ(g.params().size(), 6u);  // fc1, aux, fc2: weight and bias each
  for (std::size_t p = 0; p < g.params().size(); ++p) {
    const bool aux = g.params()[p].name.rfind("aux.", 0) == 0;
    EXPECT_EQ(r.param_grad[p] < 0, aux) << g.params()[p].name;
  }
  for (const Node& n : g.nodes()) {
    if (n.backward) {
      EXPECT_FALSE(contains(n.name, "aux")) << n.name;
    }
  }
}

// What a backward of one's own hands back is checked: one gradient per input, and one for each
// input that needs it.
TEST(AutodiffContracts, ABackwardMustGiveOneGradientPerInput) {
  std::string e = backward_refusal(std::make_shared<OwnBackwardOp>(2, false));
  EXPECT_TRUE(contains(e, "OwnBackward 'own': backward returned 2 gradients for 1 inputs")) << e;
  e = backward_refusal(std::make_shared<OwnBackwardOp>(0, true));
  EXPECT_TRUE(contains(e, "OwnBackward 'own': backward gave no gradient for input 0 (fc:y)")) << e;
  EXPECT_EQ(backward_refusal(std::make_shared<OwnBackwardOp>(1, false)), "(no error)");
}
