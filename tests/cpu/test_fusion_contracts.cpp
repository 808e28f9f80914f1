// What core/fusion.h promises, checked on the pass itself where a mutation of core/fusion.cpp went
// unseen: value_uses' consumers and pins, and the BN patterns that must not be fused (another
// activation than ReLU, a second reader, a reader of the running mean before the ReLU, a BN that
// is already fused, an Add followed by something else), and backward nodes left to themselves by
// both passes.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "grad_check.h"
#include "kestrel/core/fusion.h"
#include "kestrel/core/ops/batchnorm_op.h"
#include "kestrel/core/ops/elementwise_ops.h"
#include "kestrel/core/recompute.h"
#include "kestrel/layers/nn.h"

using namespace kestrel;
using kestrel::testing::graph_options;

namespace {

struct BnGraph {
  Graph g{graph_options(2)};
  Value x, residual, running_mean, y;
};

// x -> BatchNorm2d "bn" (running statistics as states), with `op` as the BN op.
BnGraph bn_graph(std::shared_ptr<const Op> op = make_batchnorm_op({1e-5f, 0.1f})) {
  BnGraph b;
  Graph& g = b.g;
  b.x = nn::image_input(g, "x", 2, 3, 3);
  b.residual = nn::image_input(g, "r", 2, 3, 3);
  const Value gamma = g.parameter("bn.weight", {Shape{2}}, Init::ones());
  const Value beta = g.parameter("bn.bias", {Shape{2}}, Init::zeros());
  b.running_mean = g.state("bn.running_mean", {Shape{2}}, Init::zeros());
  const Value rv = g.state("bn.running_var", {Shape{2}}, Init::ones());
  b.y = g.add_node(std::move(op), "bn", {b.x, gamma, beta, b.running_mean, rv})[0];
  return b;
}

// The five inputs of the graph's first node, the BN: x, gamma, beta, running mean and variance.
std::vector<Value> bn_inputs(const BnGraph& b) {
  std::vector<Value> in;
  for (int id : b.g.nodes()[0].inputs) in.push_back(Value{id});
  return in;
}

}  // namespace

// Consumers per value in node order, once per input slot; outputs and the loss pinned.
TEST(FusionContracts, ValueUsesListsConsumersAndPinsOutputsAndTheLoss) {
  Graph g(graph_options(2));
  const Value x = g.input("x", {Shape{2, 3}});
  const Value s = nn::add(g, x, x);
  const Value r = nn::relu(g, s);
  g.mark_output(r, "r");
  const Value loss = nn::softmax_cross_entropy(g, nn::linear(g, "fc", s, 3), nn::label_input(g, "labels"));
  const ValueUses u = value_uses(g);
  ASSERT_EQ(u.consumers.size(), g.values().size());
  EXPECT_EQ(u.consumers[static_cast<std::size_t>(x.id)], (std::vector<int>{0, 0}));  // the Add, twice
  EXPECT_EQ(u.consumers[static_cast<std::size_t>(s.id)], (std::vector<int>{1, 2}));  // ReLU, Linear
  EXPECT_TRUE(u.consumers[static_cast<std::size_t>(loss.id)].empty());
  EXPECT_TRUE(u.pinned[static_cast<std::size_t>(r.id)]);
  EXPECT_TRUE(u.pinned[static_cast<std::size_t>(loss.id)]);
  EXPECT_FALSE(u.pinned[static_cast<std::size_t>(s.id)]);
  EXPECT_FALSE(u.pinned[static_cast<std::size_t>(x.id)]);
}

TEST(FusionContracts, OnlyReluFuses) {
  BnGraph b = bn_graph();
  b.g.mark_output(b.g.add_node1(make_sigmoid_op(), "act", {b.y}), "out");
  EXPECT_EQ(fuse_batchnorm_activations(b.g), 0);
  BnGraph c = bn_graph();
  c.g.mark_output(nn::relu(c.g, c.y), "out");
  EXPECT_EQ(fuse_batchnorm_activations(c.g), 1);
  EXPECT_EQ(c.g.nodes().size(), 1u);
}

// A BN output that the ReLU and another node both read stays as it is.
TEST(FusionContracts, ABatchNormOutputWithASecondReaderIsNotFused) {
  BnGraph b = bn_graph();
  b.g.mark_output(nn::relu(b.g, b.y), "out");
  b.g.mark_output(nn::scale(b.g, b.y, 2.f), "scaled");
  EXPECT_EQ(fuse_batchnorm_activations(b.g), 0);
  EXPECT_EQ(b.g.nodes().size(), 3u);
}

// A reader of the running mean between the BN and its ReLU blocks the fusion, as one of the
// running variance does (fusing would move the in-place update past it).
TEST(FusionContracts, AReaderOfTheRunningMeanBeforeTheReluBlocksFusion) {
  for (const bool with_add : {false, true}) {
    SCOPED_TRACE(with_add ? "bn + add + relu" : "bn + relu");
    BnGraph b = bn_graph();
    const Value y = with_add ? nn::add(b.g, b.y, b.residual) : b.y;
    b.g.mark_output(nn::scale(b.g, b.running_mean, 1.f), "mean_seen");
    b.g.mark_output(nn::relu(b.g, y), "out");
    EXPECT_EQ(fuse_batchnorm_activations(b.g), 0);
  }
}

// A BN that already has its activation is left alone: fusing it again with an Add and a ReLU
// would drop the ReLU it has.
TEST(FusionContracts, ABatchNormThatHasAnActivationIsNotFusedAgain) {
  const auto plain = std::dynamic_pointer_cast<const BatchNormOp>(make_batchnorm_op({1e-5f, 0.1f}));
  ASSERT_NE(plain, nullptr);
  BnGraph b = bn_graph(plain->with_activation(BnActivation::kRelu));
  b.g.mark_output(nn::relu(b.g, nn::add(b.g, b.y, b.residual)), "out");
  EXPECT_EQ(fuse_batchnorm_activations(b.g), 0);
  EXPECT_EQ(b.g.nodes().size(), 3u);
}

// BN -> Add fuses only when a ReLU reads the sum.
TEST(FusionContracts, AnAddFollowedByAnythingButReluIsNotFused) {
  BnGraph b = bn_graph();
  b.g.mark_output(b.g.add_node1(make_sigmoid_op(), "act", {nn::add(b.g, b.y, b.residual)}), "out");
  EXPECT_EQ(fuse_batchnorm_activations(b.g), 0);
  BnGraph c = bn_graph();
  c.g.mark_output(nn::scale(c.g, nn::add(c.g, c.y, c.residual), 1.f), "out");
  EXPECT_EQ(fuse_batchnorm_activations(c.g), 0);
  EXPECT_EQ(c.g.nodes().size(), 3u);
}

// Both passes rewrite forward nodes only: a BatchNorm2d appended as a backward node (by a
// backward of one's own) is neither fused with a backward ReLU nor rebuilt for its readers.
TEST(FusionContracts, BackwardNodesAreLeftAlone) {
  BnGraph b = bn_graph();
  const Value y = b.g.append_node(make_batchnorm_op({1e-5f, 0.1f}), "bwd_bn", bn_inputs(b), true)[0];
  b.g.append_node(make_relu_op(), "bwd_relu", {y}, true);
  EXPECT_EQ(fuse_batchnorm_activations(b.g), 0);

  const auto plain = std::dynamic_pointer_cast<const BatchNormOp>(make_batchnorm_op({1e-5f, 0.1f}));
  ASSERT_NE(plain, nullptr);
  BnGraph c = bn_graph();
  const Value z = c.g.append_node(plain->with_activation(BnActivation::kRelu), "bwd_bn_relu", bn_inputs(c), true)[0];
  c.g.append_node(make_scale_op(1.f), "bwd_reader", {z}, true);
  EXPECT_EQ(recompute_batchnorm_relu(c.g), 0);
}
