// The graph and the executor on the CPU backend: error messages, fusion, memory planning,
// inference mode, numerics checks, and training that reduces the loss.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>

#include "error_text.h"
#include "grad_check.h"
#include "test_support.h"
#include "kestrel/core/executor.h"
#include "kestrel/core/ops/batchnorm_op.h"
#include "kestrel/core/ops/elementwise_ops.h"
#include "kestrel/core/ops/nn_ops.h"
#include "kestrel/layers/nn.h"
#include "kestrel/layers/resnet.h"

using namespace kestrel;
using kestrel::testing::error_of;
using kestrel::testing::graph_options;

namespace {
// The activation layout comes from the graph's options.
Value small_resnet(Graph& g, int version) {
  const Value x = nn::image_input(g, "x", 3, 8, 8);
  const Value labels = nn::label_input(g, "labels");
  ResNetConfig cfg;
  cfg.version = version;
  cfg.blocks_per_stage = 1;
  cfg.widths = {8, 12};
  cfg.stem_width = 8;
  cfg.classes = 5;
  const Value logits = build_resnet(g, x, cfg);
  g.mark_output(logits, "logits");
  return nn::softmax_cross_entropy(g, logits, labels);
}
}  // namespace

TEST(GraphErrors, ShapeErrorsNameTheNodeAndShowExpectedAndActual) {
  Graph g(graph_options(8));
  const Value x = nn::image_input(g, "images", 3, 32, 32);
  Value h = nn::conv2d(g, "conv1", x, 16, 3, {1, 1, 1, false});
  {
    Graph::Scope s(g, "layer1");
    // A weight made for 32 input channels applied to a 16-channel activation.
    const Value w = g.parameter("bad.weight", {Shape{16, 32, 3, 3}}, Init::he_normal(288));
    const std::string msg = error_of([&] { g.add_node1(make_conv2d_op({}), "conv", {h, w}); });
    EXPECT_NE(msg.find("Conv2d 'layer1.conv'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("expected 32 input channels"), std::string::npos) << msg;
    EXPECT_NE(msg.find("got 16 channels"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[8, 16, 32, 32]"), std::string::npos) << msg;
  }
  const std::string lin = error_of([&] { nn::linear(g, "fc", h, 10); });
  EXPECT_NE(lin.find("linear 'fc'"), std::string::npos) << lin;
  EXPECT_NE(lin.find("flatten it first"), std::string::npos) << lin;
  const Value other = nn::image_input(g, "other", 16, 16, 16);
  const std::string add = error_of([&] { nn::add(g, h, other); });
  EXPECT_NE(add.find("Add 'add'"), std::string::npos) << add;
  EXPECT_NE(add.find("expected the shape of input 0, [8, 16, 32, 32], got [8, 16, 16, 16]"), std::string::npos) << add;
  const std::string pool = error_of([&] {
    Value t = nn::global_avg_pool(g, h);
    nn::max_pool2x2(g, t);
  });
  EXPECT_NE(pool.find("MaxPool2x2"), std::string::npos) << pool;
  const std::string p = error_of([&] { nn::dropout(g, "d", h, 1.5f); });
  EXPECT_NE(p.find("1.5"), std::string::npos) << p;
  const std::string loss = error_of([&] {
    Graph g2(graph_options(4));
    Context ctx;
    g2.input("x", {Shape{4, 3}});
    ParameterStore store(g2, ctx, 1);
    Executor ex(g2, store, ctx);  // training without a loss
  });
  EXPECT_NE(loss.find("training needs a loss"), std::string::npos) << loss;
}

TEST(GraphErrors, UnknownNamesListTheKnownOnes) {
  Graph g(graph_options(2));
  small_resnet(g, 1);
  Context ctx;
  ParameterStore store(g, ctx, 1);
  Executor ex(g, store, ctx);
  const std::string in = error_of([&] { ex.input("images"); });
  EXPECT_NE(in.find("no input named 'images' (inputs: labels, x)"), std::string::npos) << in;
  const std::string out = error_of([&] { ex.output("probs"); });
  EXPECT_NE(out.find("outputs: logits, loss"), std::string::npos) << out;
  const std::string par = error_of([&] { ex.gradient("conv9.weight"); });
  EXPECT_NE(par.find("no parameter or state named 'conv9.weight' (known: conv1.weight"), std::string::npos) << par;
}

TEST(GraphFusion, FusedAndUnfusedGraphsGiveTheSameOutputsAndGradients) {
  for (int version : {1, 2}) {
    for (Layout layout : {Layout::kNCHW, Layout::kNHWC}) {
      std::vector<float> loss[2], logits[2], grads[2];
      int fusions[2] = {0, 0};
      for (int fused = 0; fused < 2; ++fused) {
        Graph g(graph_options(4, layout));
        small_resnet(g, version);
        Context ctx;
        ParameterStore store(g, ctx, 5);
        CompileOptions co;
        co.fuse = fused == 1;
        co.optimizer = OptimizerKind::kNone;
        Executor ex(g, store, ctx, co);
        kestrel::testing::feed_uniform(ex, "x", 3);
        kestrel::testing::feed_labels(ex, "labels", 5);
        ex.run();
        fusions[fused] = ex.stats().fusions;
        loss[fused] = ex.output("loss").to_float_vector();
        logits[fused] = ex.output("logits").to_float_vector();
        grads[fused] = store.flat_grads().to_float_vector();
      }
      EXPECT_EQ(fusions[0], 0);
      EXPECT_GE(fusions[1], version == 1 ? 4 : 2) << "version " << version;
      // The fused kernels compute the same fp32 arithmetic in a different grouping.
      EXPECT_TRUE(kestrel::testing::all_close(loss[1], loss[0], 1e-6, 1e-5));
      EXPECT_TRUE(kestrel::testing::all_close(logits[1], logits[0], 1e-6, 1e-5));
      EXPECT_TRUE(kestrel::testing::all_close(grads[1], grads[0], 1e-6, 1e-4));
    }
  }
}

TEST(GraphMemory, ResNet20TrainingPlanReusesActivationMemory) {
  GraphOptions o = graph_options(128);
  Graph g(o);
  const Value x = nn::image_input(g, "images", 3, 32, 32);
  const Value labels = nn::label_input(g, "labels");
  nn::softmax_cross_entropy(g, build_resnet(g, x, resnet_config("resnet20")), labels);
  Context ctx;
  ParameterStore store(g, ctx, 1);
  Executor ex(g, store, ctx);  // plans only: no run on the CPU at this size
  const PlanStats& s = ex.stats();
  std::printf("ResNet-20 batch 128 fp32 training plan: arena %.1f MB, sum of all values %.1f MB, "
              "%d forward + %d backward nodes, %d fusions\n",
              s.arena_bytes / 1e6, s.activation_bytes / 1e6, s.forward_nodes, s.backward_nodes, s.fusions);
  EXPECT_LT(s.arena_bytes, s.activation_bytes);
  EXPECT_LT(s.arena_bytes * 2, s.activation_bytes) << "expected at least 2x reuse";
  EXPECT_EQ(s.fusions, 9 + 9 + 1);  // 9 blocks x (BN+ReLU, BN+Add+ReLU) + the stem's BN+ReLU
}

TEST(GraphModes, InferenceUsesRunningStatisticsAndNoDropout) {
  Graph g(graph_options(6));
  const Value x = nn::image_input(g, "x", 2, 4, 4);
  const Value labels = nn::label_input(g, "labels");
  Value h = nn::batch_norm(g, "bn", nn::conv2d(g, "c", x, 3, 1));
  h = nn::dropout(g, "drop", h, 0.5f);
  const Value logits = nn::linear(g, "fc", nn::flatten(g, h), 4);
  g.mark_output(logits, "logits");
  nn::softmax_cross_entropy(g, logits, labels);
  Context ctx;
  ParameterStore store(g, ctx, 3);
  CompileOptions train_o;
  train_o.optimizer = OptimizerKind::kNone;
  Executor train(g, store, ctx, train_o);
  CompileOptions eval_o;
  eval_o.training = false;
  Executor eval(g, store, ctx, eval_o);
  kestrel::testing::feed_uniform(eval, "x", 9);
  kestrel::testing::feed_labels(eval, "labels", 4);
  eval.run();
  const auto a = eval.output("logits").to_float_vector();
  eval.run();
  EXPECT_EQ(eval.output("logits").to_float_vector(), a) << "inference is deterministic (no dropout)";
  // Running statistics start at mean 0 / var 1: inference BN is then y = gamma x / sqrt(1+eps) + beta.
  kestrel::testing::feed_uniform(train, "x", 9);
  kestrel::testing::feed_labels(train, "labels", 4);
  const auto rm_before = store.value("bn.running_mean").to_float_vector();
  train.run();
  const auto rm_after = store.value("bn.running_mean").to_float_vector();
  EXPECT_NE(rm_before, rm_after) << "training updates the running statistics";
  eval.run();
  EXPECT_NE(eval.output("logits").to_float_vector(), a) << "inference reads the updated statistics";
  const auto rm_eval = store.value("bn.running_mean").to_float_vector();
  EXPECT_EQ(rm_eval, rm_after) << "inference does not update them";
}

TEST(GraphNumerics, CheckNumericsNamesTheFirstNonFiniteNode) {
  Graph g(graph_options(2));
  const Value x = g.input("x", {Shape{2, 4}});
  const Value labels = nn::label_input(g, "labels");
  Value h = nn::linear(g, "fc1", x, 4);
  h = nn::linear(g, "fc2", nn::relu(g, h), 3);
  nn::softmax_cross_entropy(g, h, labels);
  Context ctx;
  ParameterStore store(g, ctx, 3);
  CompileOptions co;
  co.check_numerics = true;
  Executor ex(g, store, ctx, co);
  kestrel::testing::feed_uniform(ex, "x", 1);
  kestrel::testing::feed_labels(ex, "labels", 3);
  ex.run();  // all finite
  store.value("fc1.bias").data_as<float>()[2] = INFINITY;
  const std::string msg = error_of([&] { ex.run(); });
  EXPECT_NE(msg.find("non-finite values first appear in output 'fc1:y'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("Linear 'fc1'"), std::string::npos) << msg;
  // The infinite bias entry makes one column of fc1's [2, 4] output infinite.
  EXPECT_NE(msg.find("Linear 'fc1' (2 of 8 elements)"), std::string::npos) << msg;
}

// Batch norm's saved statistics and the loss's fused gradient are written in training only. An
// inference executor gives them no memory: it refuses them as graph outputs and in value() (they
// once held stale arena memory there, readable as if computed), and check_numerics skips them.
namespace {
Graph bn_loss_graph() {
  Graph g(graph_options(2));
  const Value x = nn::image_input(g, "x", 2, 3, 3);
  const Value labels = nn::label_input(g, "labels");
  const Value h = nn::relu(g, nn::batch_norm(g, "bn", x));
  nn::softmax_cross_entropy(g, nn::linear(g, "fc", nn::global_avg_pool(g, h), 3), labels);
  return g;
}
CompileOptions inference_options() {
  CompileOptions co;
  co.training = false;
  co.fuse = false;
  co.check_numerics = true;
  return co;
}
}  // namespace

TEST(GraphNumerics, InferenceRefusesOutputsWrittenOnlyInTraining) {
  for (const char* value : {"bn:invstd", "bn:mean", "loss:dlogits"}) {
    Graph g = bn_loss_graph();
    g.mark_output(g.find_value(value), "pinned");
    Context ctx;
    ParameterStore store(g, ctx, 3);
    const std::string msg = error_of([&] { Executor ex(g, store, ctx, inference_options()); });
    EXPECT_NE(msg.find("output 'pinned' is '" + std::string(value) + "'"), std::string::npos) << msg;
    const std::string op = value[0] == 'b' ? "BatchNorm2d 'bn'" : "SoftmaxCrossEntropy 'loss'";
    EXPECT_NE(msg.find(op + " writes it only in a training executor"), std::string::npos) << msg;
    CompileOptions training;
    training.optimizer = OptimizerKind::kNone;
    EXPECT_NO_THROW(Executor(g, store, ctx, training)) << value;  // written there: a fine output
  }
}

TEST(GraphNumerics, InferenceHandsOutNoValueWrittenOnlyInTraining) {
  Graph g = bn_loss_graph();
  Context ctx;
  ParameterStore store(g, ctx, 3);
  Executor ex(g, store, ctx, inference_options());
  kestrel::testing::feed_uniform(ex, "x", 1);
  kestrel::testing::feed_labels(ex, "labels", 3);
  ex.run();  // check_numerics skips the saved statistics and the fused gradient, which have no memory
  EXPECT_TRUE(std::isfinite(ex.output("loss").to_float_vector()[0]));
  const std::string msg = error_of([&] { ex.value("loss:dlogits"); });
  EXPECT_NE(msg.find("value 'loss:dlogits' is not computed by this executor: SoftmaxCrossEntropy 'loss' writes "
                     "it only in a training executor, and this one is for inference"),
            std::string::npos) << msg;
  EXPECT_NE(error_of([&] { ex.value("bn:invstd"); }).find("BatchNorm2d 'bn' writes it only in a training"),
            std::string::npos);
  EXPECT_EQ(ex.value("bn:y").numel(), 2 * 2 * 3 * 3);  // the statistics' node still hands out its output
}

// A node that reads the fused gradient in the forward pass reads nothing in inference: refused by name.
TEST(GraphNumerics, InferenceRefusesANodeThatReadsAnOutputWrittenOnlyInTraining) {
  Graph g(graph_options(2));
  const Value z = g.input("z", {Shape{2, 3}});
  const std::vector<Value> ce =
      g.add_node(make_softmax_cross_entropy_op(0.f), "ce", {z, nn::label_input(g, "labels")});
  g.mark_output(nn::relu(g, ce[1]), "r");
  Context ctx;
  ParameterStore store(g, ctx, 3);
  const std::string msg = error_of([&] { Executor ex(g, store, ctx, inference_options()); });
  EXPECT_NE(msg.find("reads 'ce:dlogits' [2, 3] fp32, but SoftmaxCrossEntropy 'ce' writes it only in a training "
                     "executor"),
            std::string::npos) << msg;
}

TEST(GraphTraining, SmallCnnLossFallsWithSgd) {
  Graph g(graph_options(16));
  const Value x = nn::image_input(g, "x", 3, 8, 8);
  const Value labels = nn::label_input(g, "labels");
  Value h = nn::relu(g, nn::batch_norm(g, "bn1", nn::conv2d(g, "conv1", x, 8, 3, {1, 1, 1, false})));
  h = nn::max_pool2x2(g, h);
  h = nn::relu(g, nn::batch_norm(g, "bn2", nn::conv2d(g, "conv2", h, 16, 3, {1, 1, 1, false})));
  nn::softmax_cross_entropy(g, nn::linear(g, "fc", nn::global_avg_pool(g, h), 4), labels);
  Context ctx;
  ParameterStore store(g, ctx, 11);
  CompileOptions co;
  co.sgd.momentum = 0.9f;
  co.sgd.nesterov = true;
  co.sgd.weight_decay = 5e-4f;
  Executor ex(g, store, ctx, co);
  store.set_learning_rate(0.1f);
  // A fixed batch whose label is decided by which colour channel is brightest.
  Tensor in = ex.input("x");
  Stream cpu;
  in.fill_uniform(21, 0.f, 1.f, cpu);
  auto* lab = ex.input("labels").data_as<std::int32_t>();
  float* px = in.data_as<float>();
  for (int b = 0; b < 16; ++b) {
    lab[b] = b % 4;
    if (lab[b] < 3)
      for (int i = 0; i < 64; ++i) px[(b * 3 + lab[b]) * 64 + i] += 1.5f;
  }
  ex.run();
  const float first = ex.output("loss").to_float_vector()[0];
  float last = first;
  for (int step = 0; step < 30; ++step) {
    ex.run();
    last = ex.output("loss").to_float_vector()[0];
  }
  EXPECT_LT(last, 0.5f * first) << "loss " << first << " -> " << last;
  EXPECT_EQ(store.read_counters().step, 31);
}

TEST(GraphErrors, DtypeLayoutAndStoreMismatchesAreClearErrors) {
  Graph g(graph_options(2));
  const Value a = g.input("a", {Shape{2, 3, 4, 4}, DType::kFloat32, Layout::kNCHW});
  const Value b = g.input("b", {Shape{2, 3, 4, 4}, DType::kFloat32, Layout::kNHWC});
  const Value c = g.input("c", {Shape{2, 3, 4, 4}, DType::kBFloat16, Layout::kNCHW});
  const std::string layout = error_of([&] { nn::add(g, a, b); });
  EXPECT_NE(layout.find("expected fp32 nchw, got fp32 nhwc"), std::string::npos) << layout;
  const std::string dtype = error_of([&] { nn::mul(g, a, c); });
  EXPECT_NE(dtype.find("expected fp32 nchw, got bf16 nchw"), std::string::npos) << dtype;
  const Value w = g.parameter("w", {Shape{5, 3, 3, 3}, DType::kFloat32, Layout::kNHWC}, Init::he_normal(27));
  const std::string conv = error_of([&] { g.add_node1(make_conv2d_op({}), "conv", {a, w}); });
  EXPECT_NE(conv.find("Conv2d 'conv': weight"), std::string::npos) << conv;
  EXPECT_NE(conv.find("expected layout nchw, got nhwc"), std::string::npos) << conv;
  const Value ints = g.input("ints", {Shape{2, 3}, DType::kInt32});
  const std::string relu = error_of([&] { nn::relu(g, ints); });
  EXPECT_NE(relu.find("expected dtype fp32, bf16 or fp16, got int32"), std::string::npos) << relu;
  EXPECT_NE(error_of([&] { g.input("a", {Shape{2}}); }).find("a value named 'a' already exists"), std::string::npos);
  // A store built from another graph cannot serve this one.
  Graph other(graph_options(2));
  other.parameter("only", {Shape{3}}, Init::zeros());
  Context ctx;
  ParameterStore store(other, ctx, 1);
  const std::string mismatch = error_of([&] { Executor ex(g, store, ctx); });
  EXPECT_NE(mismatch.find("build the store from the same graph"), std::string::npos) << mismatch;
}

// Names and shapes alike are not enough for a store to serve a graph: the layout of the weights
// (a store built from the NCHW graph holds KCRS weights, the NHWC graph reads KRSC), whether a
// value is trainable, and the bf16 copies a bf16 graph computes with must agree too. Before,
// the NHWC executor silently read the NCHW store's weights in the wrong order.
// One batch norm applied to two inputs (a Siamese layer: shared weights and running statistics),
// its ReLUs in the other order: fusing moves each BN to its ReLU, which swapped the two in-place
// updates of the statistics. Fusion now stays out of that, and both give the same statistics.
TEST(GraphFusion, ABatchNormWhoseStatisticsAreReadBeforeItsReluIsNotMoved) {
  GraphOptions o;
  o.batch = 2;
  Graph g(o);
  const Value x1 = nn::image_input(g, "x1", 2, 3, 3), x2 = nn::image_input(g, "x2", 2, 3, 3);
  const Value labels = nn::label_input(g, "labels");
  const Value gamma = g.parameter("bn.weight", {Shape{2}}, Init::ones());
  const Value beta = g.parameter("bn.bias", {Shape{2}}, Init::zeros());
  const Value rm = g.state("bn.running_mean", {Shape{2}}, Init::zeros());
  const Value rv = g.state("bn.running_var", {Shape{2}}, Init::ones());
  const Value ya = g.add_node(make_batchnorm_op({1e-5f, 0.1f}), "bn_a", {x1, gamma, beta, rm, rv})[0];
  const Value yb = g.add_node(make_batchnorm_op({1e-5f, 0.1f}), "bn_b", {x2, gamma, beta, rm, rv})[0];
  const Value rb = nn::relu(g, yb), ra = nn::relu(g, ya);
  const Value f = nn::add(g, nn::global_avg_pool(g, ra), nn::global_avg_pool(g, rb));
  nn::softmax_cross_entropy(g, nn::linear(g, "fc", f, 2), labels);
  std::vector<float> stats[2];
  int fusions[2] = {0, 0};
  for (int fuse = 0; fuse < 2; ++fuse) {
    Context ctx;
    ParameterStore store(g, ctx, 1);
    CompileOptions co;
    co.fuse = fuse == 1;
    co.optimizer = OptimizerKind::kNone;
    Executor ex(g, store, ctx, co);
    ex.input("x1").fill_uniform(1, 0.f, 1.f, ctx.stream());
    ex.input("x2").fill_uniform(2, 4.f, 5.f, ctx.stream());
    ex.input("labels").zero(ctx.stream());  // class 0 throughout
    ex.run();
    stats[fuse] = store.value("bn.running_mean").to_float_vector();
    fusions[fuse] = ex.stats().fusions;
  }
  EXPECT_TRUE(kestrel::testing::bit_equal(stats[0], stats[1]));
  EXPECT_EQ(fusions[1], 1) << "bn_b's ReLU comes first, with no reader between: it still fuses";
}

TEST(GraphErrors, StoreOfTheSameModelInAnotherLayoutDtypeOrRoleIsRefused) {
  auto conv_net = [](Layout layout, DType dtype) {
    GraphOptions o;
    o.batch = 2;
    o.layout = layout;
    o.dtype = dtype;
    auto g = std::make_unique<Graph>(o);
    const Value x = nn::image_input(*g, "images", 3, 8, 8);
    const Value logits = nn::linear(*g, "fc", nn::global_avg_pool(*g, nn::conv2d(*g, "conv1", x, 4, 3)), 10);
    nn::softmax_cross_entropy(*g, logits, nn::label_input(*g, "labels"));
    return g;
  };
  Context ctx;
  const auto nchw = conv_net(Layout::kNCHW, DType::kFloat32), nhwc = conv_net(Layout::kNHWC, DType::kFloat32);
  const auto bf16 = conv_net(Layout::kNCHW, DType::kBFloat16);
  ParameterStore nchw_store(*nchw, ctx, 7), nhwc_store(*nhwc, ctx, 7);
  EXPECT_NO_THROW(Executor ex(*nchw, nchw_store, ctx));
  EXPECT_NO_THROW(Executor ex(*nhwc, nhwc_store, ctx));
  const std::string layout = error_of([&] { Executor ex(*nhwc, nchw_store, ctx); });
  EXPECT_NE(layout.find("parameter 'conv1.weight': the graph wants it in nhwc but the store holds it in nchw"),
            std::string::npos) << layout;
  const std::string shadow = error_of([&] { Executor ex(*bf16, nchw_store, ctx); });
  EXPECT_NE(shadow.find("bf16 copy but the store keeps none"), std::string::npos) << shadow;
  // A state where the graph has a trainable parameter of the same name and shape.
  Graph trained(graph_options(2)), stated(graph_options(2));
  trained.parameter("w", {Shape{3}}, Init::zeros());
  stated.state("w", {Shape{3}}, Init::zeros());
  ParameterStore state_store(stated, ctx, 1);
  const std::string role = error_of([&] { Executor ex(trained, state_store, ctx); });
  EXPECT_NE(role.find("'w' is trainable in the graph but a state in the store"), std::string::npos) << role;
}

// Node names are made unique against every node and value already there (an automatic "a_1"
// once collided with a node the user had named "a_1"), and a refused call leaves the graph as
// it was: a layer whose node is refused takes its parameters with it, so it can be retried
// under the same name (before: "a value named 'conv1.weight' already exists").
TEST(GraphErrors, NamesStayUniqueAndRefusedCallsChangeNothing) {
  Graph g(graph_options(2));
  const Value x = nn::image_input(g, "x", 3, 4, 4);
  const Value a = g.add_node1(make_relu_op(), "a", {x});
  const Value a1 = g.add_node1(make_relu_op(), "a_1", {x});
  const Value again = g.add_node1(make_relu_op(), "a", {x});
  EXPECT_EQ(g.info(a).name, "a:y");
  EXPECT_EQ(g.info(a1).name, "a_1:y");
  EXPECT_EQ(g.info(again).name, "a_2:y");
  auto sizes = [&] { return std::vector<std::size_t>{g.values().size(), g.nodes().size(), g.params().size()}; };
  const auto before = sizes();
  // A 7x7 kernel on a 4x4 image: the convolution is refused after its weight was created.
  const std::string conv = error_of([&] { nn::conv2d(g, "conv1", x, 8, 7); });
  EXPECT_NE(conv.find("Conv2d 'conv1'"), std::string::npos) << conv;
  EXPECT_EQ(sizes(), before) << "the refused convolution left values, nodes or parameters";
  const Value y = nn::conv2d(g, "conv1", x, 8, 3, {1, 1});
  EXPECT_EQ(g.info(y).name, "conv1:y") << "the retry gets the name the refused call would have had";
  // Batch norm of int32 data: refused, its four parameters and states taken back.
  const Value ints = g.input("ints", {Shape{2, 3, 4, 4}, DType::kInt32});
  const auto before_bn = sizes();
  EXPECT_THROW(nn::batch_norm(g, "bn1", ints), Error);
  EXPECT_EQ(sizes(), before_bn);
  EXPECT_NO_THROW(nn::batch_norm(g, "bn1", y));
  // A dense layer on 4-D data is refused before it creates anything; on a mis-sized 2-D input
  // the node is refused after its weights exist.
  const Value flat = nn::flatten(g, y);
  const auto before_fc = sizes();
  const int slots = g.rng_slots();
  EXPECT_THROW(nn::dropout(g, "drop", ints, 0.5f), Error);
  EXPECT_EQ(g.rng_slots(), slots) << "the refused dropout kept its random-stream slot";
  EXPECT_EQ(sizes(), before_fc);
  const Value int_rows = g.input("int_rows", {Shape{2, 5}, DType::kInt32});
  const auto before_int_fc = sizes();
  EXPECT_THROW(nn::linear(g, "fc", int_rows, 10), Error);
  EXPECT_EQ(sizes(), before_int_fc) << "the refused dense layer left its weight or bias";
  EXPECT_NO_THROW(nn::linear(g, "fc", flat, 10));
  EXPECT_EQ(g.params().back().name, "fc.bias");
  // A bf16-computed parameter whose copy's name ("w@bf16") is taken: refused whole (before: the
  // fp32 master stayed, without its copy, and a retry as "w" was refused).
  g.input("w@bf16", {Shape{4}, DType::kFloat32});
  const auto before_w = sizes();
  const TypeSpec w{Shape{4}, DType::kFloat32};
  EXPECT_THROW(g.parameter("w", w, Init::ones(), true, DType::kBFloat16), Error);
  EXPECT_EQ(sizes(), before_w);
  EXPECT_NO_THROW(g.parameter("w", w, Init::ones(), true, DType::kFloat32));
}

// The layer builders refuse, naming the layer, what their ops could not be given: a convolution
// of no output channels or of a 0 kernel, a batch norm of anything but [N, C, H, W] data, a
// dense layer of no outputs.
TEST(GraphErrors, LayerBuildersNameTheirBadArguments) {
  Graph g(graph_options(2));
  const Value x = nn::image_input(g, "x", 3, 8, 8);
  const Value rows = g.input("rows", {Shape{2, 3}});
  const std::string cases[][2] = {
      {error_of([&] { nn::conv2d(g, "c", x, 0, 3); }), "conv2d 'c': out_channels and kernel must be positive (got 0, 3)"},
      {error_of([&] { nn::conv2d(g, "c", x, 4, 0); }), "conv2d 'c': out_channels and kernel must be positive (got 4, 0)"},
      {error_of([&] { nn::batch_norm(g, "bn", rows); }), "batch_norm 'bn': input "},
      {error_of([&] { nn::linear(g, "fc", rows, 0); }), "linear 'fc': out_features must be positive"},
  };
  for (const auto& [error, want] : cases) EXPECT_NE(error.find(want), std::string::npos) << error;
  EXPECT_NE(cases[2][0].find("is not [N, C, H, W]"), std::string::npos) << cases[2][0];
}

// A graph moved from (or assigned to) inside a Transaction is not "rolled back" into shape: the
// destructor grew the moved-from graph's vectors back to the old sizes, leaving a value with an
// empty name and a node without an op (and allocated in a destructor).
TEST(GraphTransaction, AGraphMovedAwayInsideATransactionIsLeftAlone) {
  Graph g;
  (void)g.input("x", {Shape{2, 3}});
  Graph moved;
  {
    Graph::Transaction tx(g);
    (void)nn::relu(g, g.find_value("x"));
    moved = std::move(g);
  }
  EXPECT_TRUE(g.values().empty() && g.nodes().empty());  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(moved.values().size(), 2u) << "the moved-to graph keeps what it was given";
  Graph h;
  (void)h.input("y", {Shape{2, 3}});
  {
    Graph::Transaction tx(h);
    (void)nn::relu(h, h.find_value("y"));
    h = Graph();  // assigned to: another graph now
  }
  EXPECT_TRUE(h.values().empty());
}

// A Transaction that is not committed takes back what was made inside it: a node's name (so the
// same name is free again, "a", not "a_1") and a loss set inside it.
TEST(GraphTransaction, RollbackFreesNodeNamesAndUnsetsTheLoss) {
  Graph g;
  const Value x = g.input("x", {Shape{2, 3}});
  const Value l = g.input("l", {Shape{1}});
  {
    Graph::Transaction tx(g);
    EXPECT_EQ(g.info(g.add_node1(make_relu_op(), "a", {x})).name, "a:y");
    g.set_loss(l);
  }
  EXPECT_EQ(g.nodes().size(), 0u);
  EXPECT_FALSE(g.loss().valid());
  EXPECT_EQ(g.info(g.add_node1(make_relu_op(), "a", {x})).name, "a:y");
  EXPECT_EQ(g.info(g.add_node1(make_relu_op(), "a", {x})).name, "a_1:y");
}

// A graph assigned another, larger graph inside a Transaction is that graph now: the rollback
// leaves it alone (it would otherwise cut it back to the old graph's sizes).
TEST(GraphTransaction, AGraphAssignedALargerOneInsideATransactionKeepsIt) {
  Graph big;
  const Value p = big.input("p", {Shape{2}});
  (void)big.input("q", {Shape{2}});
  (void)big.add_node1(make_relu_op(), "r", {p});
  (void)big.add_node1(make_relu_op(), "s", {p});
  Graph g;
  const Value y = g.input("y", {Shape{2}});
  {
    Graph::Transaction tx(g);
    (void)g.add_node1(make_relu_op(), "t", {y});
    g = std::move(big);
  }
  EXPECT_EQ(g.values().size(), 4u);
  EXPECT_EQ(g.nodes().size(), 2u);
  EXPECT_NO_THROW(g.find_value("s:y"));
}

// A second output of the same name, a loss that is not one fp32 value and a value id past the
// graph's are refused, and the refused calls change nothing.
TEST(GraphErrors, DuplicateOutputsNonScalarLossesAndOutOfRangeIdsAreRefused) {
  Graph g;
  const Value x = g.input("x", {Shape{2, 3}});
  g.mark_output(x, "o");
  EXPECT_NE(error_of([&] { g.mark_output(x, "o"); }).find("an output named 'o' already exists"), std::string::npos);
  EXPECT_EQ(g.outputs().size(), 1u);
  const Value two = g.input("two", {Shape{2}});
  EXPECT_NE(error_of([&] { g.set_loss(two); }).find("the loss must be a single fp32 value"), std::string::npos);
  EXPECT_FALSE(g.loss().valid());
  const int n = static_cast<int>(g.values().size());
  EXPECT_THROW(g.info(Value{n}), Error);
  EXPECT_NO_THROW(g.info(Value{n - 1}));
}

namespace {
// Inference (running statistics 0 and 1, gamma 1, beta 0): batch norm is x / sqrt(1 + eps),
// fused or not; the fused and unfused executors must agree exactly on every output.
std::vector<std::vector<float>> bn_outputs(bool fuse, bool bn_output, bool bn_second, int* fusions) {
  Graph g(graph_options(2));
  const Value x = nn::image_input(g, "x", 3, 4, 4);
  const Value r = nn::image_input(g, "r", 3, 4, 4);
  const Value h = nn::batch_norm(g, "bn", x);
  if (bn_output) g.mark_output(h, "bn");
  const Value s = bn_second ? nn::add(g, r, h) : h;
  g.mark_output(nn::relu(g, s), "out");
  Context ctx;
  ParameterStore store(g, ctx, 1);
  CompileOptions co;
  co.training = false;
  co.fuse = fuse;
  Executor ex(g, store, ctx, co);
  kestrel::testing::feed_uniform(ex, "x", 3);
  kestrel::testing::feed_uniform(ex, "r", 4);
  ex.run();
  *fusions = ex.stats().fusions;
  std::vector<std::vector<float>> out = {ex.output("out").to_float_vector(), ex.input("x").to_float_vector(),
                                         ex.input("r").to_float_vector()};
  if (bn_output) out.push_back(ex.output("bn").to_float_vector());
  return out;
}
}  // namespace

// A batch norm whose output is itself a graph output is not fused into its ReLU: the output must
// keep its negative values.
TEST(GraphFusion, ABatchNormThatIsAnOutputIsNotFused) {
  int fusions = -1;
  const auto o = bn_outputs(true, true, false, &fusions);
  EXPECT_EQ(fusions, 0);
  const float k = 1.f / std::sqrt(1.f + 1e-5f);
  bool negative = false;
  for (std::size_t i = 0; i < o[1].size(); ++i) {
    EXPECT_NEAR(o[3][i], o[1][i] * k, 1e-5f) << i;
    EXPECT_NEAR(o[0][i], std::max(0.f, o[1][i] * k), 1e-5f) << i;
    negative = negative || o[3][i] < 0.f;
  }
  EXPECT_TRUE(negative);
}

// relu(r + bn(x)) with the batch norm as the Add's second operand fuses into BN+Add+ReLU with r
// as the residual, and computes the same as unfused.
TEST(GraphFusion, AddWithTheBatchNormSecondFusesWithTheOtherOperandAsResidual) {
  int fused_count = -1, unfused_count = -1;
  const auto f = bn_outputs(true, false, true, &fused_count);
  const auto u = bn_outputs(false, false, true, &unfused_count);
  EXPECT_EQ(fused_count, 1);
  EXPECT_EQ(unfused_count, 0);
  const float k = 1.f / std::sqrt(1.f + 1e-5f);
  for (std::size_t i = 0; i < f[0].size(); ++i) {
    EXPECT_NEAR(f[0][i], std::max(0.f, f[2][i] + f[1][i] * k), 1e-5f) << i;
    EXPECT_NEAR(f[0][i], u[0][i], 1e-5f) << i;
  }
}

// A node between a batch norm and its ReLU that reads either running statistic (here the
// variance only) keeps the batch norm where it is, for BN+ReLU and for BN+Add+ReLU (reader
// between the Add and the ReLU) alike: fusing would move the statistics update past it.
TEST(GraphFusion, AReaderOfTheRunningVarianceBeforeTheReluAlsoBlocksFusion) {
  for (const bool with_add : {false, true}) {
    SCOPED_TRACE(with_add ? "bn + add + relu" : "bn + relu");
    Graph g(graph_options(2));
    const Value x = nn::image_input(g, "x", 2, 3, 3), r = nn::image_input(g, "r", 2, 3, 3);
    const Value gamma = g.parameter("bn.weight", {Shape{2}}, Init::ones());
    const Value beta = g.parameter("bn.bias", {Shape{2}}, Init::zeros());
    const Value rm = g.state("bn.running_mean", {Shape{2}}, Init::zeros());
    const Value rv = g.state("bn.running_var", {Shape{2}}, Init::ones());
    Value y = g.add_node(make_batchnorm_op({1e-5f, 0.1f}), "bn", {x, gamma, beta, rm, rv})[0];
    if (with_add) y = nn::add(g, y, r);
    g.mark_output(nn::scale(g, rv, 1.f), "var_seen");
    g.mark_output(nn::relu(g, y), "out");
    Context ctx;
    ParameterStore store(g, ctx, 1);
    CompileOptions co;
    co.training = false;
    Executor ex(g, store, ctx, co);
    EXPECT_EQ(ex.stats().fusions, 0);
  }
}

namespace {
// An op whose inferred output is nhwc but rank 2: refused by the graph.
class BadLayoutOp final : public Op {
 public:
  std::string type() const override { return "BadLayout"; }
  std::vector<TypeSpec> infer(const std::vector<const ValueInfo*>&, const std::string&) const override {
    TypeSpec t{Shape{2, 3}};
    t.layout = Layout::kNHWC;
    return {t};
  }
  void run(const OpRun&) const override {}
};
}  // namespace

namespace {
// An op of one's own whose backward gets the gradient's dtype wrong: y = x forward, and a bf16
// cast of dy handed back as the fp32 input's gradient.
class BadGradientOp final : public Op {
 public:
  std::string type() const override { return "BadGradient"; }
  std::vector<TypeSpec> infer(const std::vector<const ValueInfo*>& in, const std::string&) const override {
    return {in[0]->type};
  }
  void run(const OpRun& r) const override { Tensor(r.out[0]).copy_from(r.in[0], r.ctx.stream()); }
  std::vector<Value> backward(Graph& g, const Node& n, const std::vector<Value>& grad_out,
                              const std::vector<bool>&) const override {
    return {g.append_node(make_cast_op(DType::kBFloat16), n.name + ".backward", {grad_out[0]}, true)[0]};
  }
};
}  // namespace

// Autodiff checks what each backward hands back against the input it is for: a gradient of
// another dtype is refused at compile, naming the op, the input and the gradient, instead of
// being read downstream (here by Linear's backward) as fp32.
TEST(GraphErrors, ABackwardThatGivesAGradientOfAnotherTypeIsRefused) {
  Graph g(graph_options(2));
  const Value x = g.input("x", {Shape{2, 4}});
  const Value h = g.add_node1(std::make_shared<BadGradientOp>(), "bad", {nn::linear(g, "fc", x, 3)});
  nn::softmax_cross_entropy(g, h, nn::label_input(g, "labels"));
  Context ctx;
  ParameterStore store(g, ctx, 1);
  const std::string e = error_of([&] { Executor ex(g, store, ctx, CompileOptions{}); });
  EXPECT_NE(e.find("BadGradient 'bad': backward gave input 0 ('fc:y' [2, 3] fp32) the gradient "
                   "'bad.backward:y' [2, 3] bf16; a gradient must have its input's shape, dtype and layout"),
            std::string::npos) << e;
  CompileOptions inference;
  inference.training = false;
  Executor ex(g, store, ctx, inference);  // no backward pass, nothing to refuse
  kestrel::testing::feed_uniform(ex, "x", 2);
  kestrel::testing::feed_labels(ex, "labels", 3);
  EXPECT_NO_THROW(ex.run());
}

// A node refused for an output type (nhwc needs rank 4) changes nothing: not even its name, which
// a retry with a good op gets unchanged.
TEST(GraphErrors, ANodeRefusedForItsOutputLayoutKeepsItsNameFree) {
  Graph g;
  const Value x = g.input("x", {Shape{2, 3}});
  const std::string e = error_of([&] { g.add_node1(std::make_shared<BadLayoutOp>(), "n", {x}); });
  EXPECT_NE(e.find("layout nhwc needs rank 4"), std::string::npos) << e;
  EXPECT_EQ(g.nodes().size(), 0u);
  EXPECT_EQ(g.values().size(), 1u);
  EXPECT_EQ(g.info(g.add_node1(make_relu_op(), "n", {x})).name, "n:y");
}
