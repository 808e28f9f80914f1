// Promises of the public API beyond the happy path, each found broken by a review: moved-from
// objects stay safe, a refused call leaves what it was given as it was, contexts keep their own
// statistics, and an output path is checked for the name its atomic write really uses.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "error_text.h"
#include "temp_dir.h"
#include "kestrel/core/executor.h"
#include "kestrel/layers/nn.h"
#include "kestrel/layers/output_files.h"
#include "kestrel/layers/resnet.h"

using namespace kestrel;
using kestrel::testing::error_of;

namespace {
Graph linear_graph(std::int64_t batch) {
  GraphOptions o;
  o.batch = batch;
  Graph g(o);
  const Value x = g.input("x", {Shape{batch, 3}});
  nn::softmax_cross_entropy(g, nn::linear(g, "fc", x, 4), nn::label_input(g, "labels"));
  return g;
}
}  // namespace

// A moved-from tensor is undefined like a default one: its shape went with it (the strides did,
// the shape stayed, and is_contiguous, reshape and narrow read past the empty strides).
TEST(ApiContracts, AMovedFromTensorIsUndefinedAndSafe) {
  Tensor a = Tensor::empty_cpu(Shape{2, 3, 4, 4}, DType::kFloat32);
  Tensor b = std::move(a);
  EXPECT_TRUE(b.defined());
  EXPECT_EQ(b.shape(), (Shape{2, 3, 4, 4}));
  EXPECT_FALSE(a.defined());  // NOLINT(bugprone-use-after-move): the state is the point
  EXPECT_EQ(a.shape(), Shape{});
  EXPECT_EQ(a.numel(), Tensor().numel());
  EXPECT_TRUE(a.is_contiguous());
  EXPECT_NE(error_of([&] { a.narrow(0, 0, 1); }), "(no error)");
  Tensor c;
  c = std::move(b);
  EXPECT_FALSE(b.defined());  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(c.numel(), 96);
}

// A moved-from graph is empty: an executor over it is refused with an Error (it kept its loss id
// and crashed reading the values that had moved away).
TEST(ApiContracts, AMovedFromGraphIsEmpty) {
  Graph g = linear_graph(2);
  Graph h = std::move(g);
  EXPECT_TRUE(g.values().empty() && g.nodes().empty() && g.params().empty());  // NOLINT(bugprone-use-after-move)
  EXPECT_FALSE(g.loss().valid());
  EXPECT_EQ(g.rng_slots(), 0);
  EXPECT_TRUE(h.loss().valid());
  Context ctx;
  ParameterStore store(h, ctx, 1);
  EXPECT_NE(error_of([&] { Executor ex(g, store, ctx); }), "(no error)");
  Executor ok(h, store, ctx);
}

// Popping a scope by hand inside a Graph::Scope no longer ends the program from its destructor.
TEST(ApiContracts, AScopeEmptiedByHandIsNotAnAbort) {
  Graph g;
  {
    Graph::Scope s(g, "block");
    g.pop_scope();
  }
  EXPECT_EQ(g.scoped("x"), "x");
  EXPECT_NE(error_of([&] { g.pop_scope(); }).find("pop_scope without a matching push_scope"), std::string::npos);
}

// A refused executor leaves its store as it was: the optimizer state comes last (an AdamW executor
// refused for its memory left AdamW state behind, and every SGD executor was refused after it).
TEST(ApiContracts, ARefusedExecutorLeavesTheStoreAsItWas) {
  Context ctx;
  const Graph huge = linear_graph(std::int64_t{1} << 40);  // activations no allocator can give
  ParameterStore store(huge, ctx, 1);
  CompileOptions adamw;
  adamw.optimizer = OptimizerKind::kAdamW;
  EXPECT_NE(error_of([&] { Executor ex(huge, store, ctx, adamw); }), "(no error)");
  EXPECT_EQ(store.optimizer_kind(), OptimizerKind::kNone);
  const Graph small = linear_graph(2);
  ParameterStore small_store(small, ctx, 1);
  Executor with_adamw(small, small_store, ctx, adamw);
  CompileOptions sgd;
  sgd.optimizer = OptimizerKind::kSgd;
  EXPECT_NE(error_of([&] { Executor other(small, small_store, ctx, sgd); }).find("already holds state for another optimizer"),
            std::string::npos);
}

// A network refused part-way leaves the graph as it was and can be built again (the layers of
// the stages before the refused one stayed, and the retry found 'conv1.weight' taken).
TEST(ApiContracts, ARefusedNetworkLeavesTheGraphAsItWas) {
  Graph g;
  const Value x = nn::image_input(g, "images", 3, 32, 32);
  const std::size_t values = g.values().size(), params = g.params().size(), nodes = g.nodes().size();
  ResNetConfig bad = resnet_config("resnet20");
  bad.classes = std::int64_t{1} << 62;  // refused at the last layer: fc's weight has more elements than int64 holds
  EXPECT_NE(error_of([&] { build_resnet(g, x, bad); }), "(no error)");
  EXPECT_EQ(g.values().size(), values);
  EXPECT_EQ(g.params().size(), params);
  EXPECT_EQ(g.nodes().size(), nodes);
  ResNetConfig dropout = resnet_config("resnet20");
  dropout.dropout = 1.5f;
  EXPECT_NE(error_of([&] { build_resnet(g, x, dropout); }).find("dropout must be in [0, 1)"), std::string::npos);
  EXPECT_EQ(g.values().size(), values);
  build_resnet(g, x, resnet_config("resnet20"));  // the retry under the same names
}

// Each CPU context counts its own memory (they shared one process-wide allocator, so a run's
// reported peak included whatever other contexts had allocated).
TEST(ApiContracts, CpuContextsKeepTheirOwnMemoryStatistics) {
  Context a, b;
  {
    const Tensor big = Tensor::empty(Shape{1 << 20}, DType::kFloat32, a);
    EXPECT_GE(a.allocator()->stats().peak_bytes, std::size_t{4} << 20);
  }
  EXPECT_EQ(b.allocator()->stats().peak_bytes, 0u);
  EXPECT_NE(a.allocator(), b.allocator());
}

// The probe uses the name an atomic write's temporary file gets, so a name that fits but leaves
// no room for ".tmp.<pid>.<n>" is refused before the run, not when the checkpoint is written.
TEST(ApiContracts, AnOutputNameTooLongForItsTemporaryFileIsRefusedFirst) {
  kestrel::testing::TempDir dir("long_output");
  const std::string name(248, 'c');
  const std::string path = dir / name;
  const std::string e = error_of([&] { check_output_file(path, "--checkpoint"); });
  EXPECT_NE(e.find("the file name is too long (248 characters"), std::string::npos) << e;
  check_output_file(dir / std::string(200, 'c'), "--checkpoint");
  EXPECT_TRUE(std::filesystem::is_empty(dir.path())) << "the probe leaves nothing behind";
}

// An input nobody gave data is refused by run() with its name (it ran on zero-filled buffers and
// reported a plausible loss); a refused bind_input does not count as data; a zero_input (RNN
// initial states, probes) and an input no step reads need none; handing out input()'s buffer
// counts, as the trainer fills it in place.
TEST(ApiContracts, AnInputNeverGivenDataIsRefusedByRun) {
  Graph g = linear_graph(2);
  const Value probe = g.zero_input("probe", {Shape{2, 4}});
  (void)nn::relu(g, probe);  // read, but zeros unless filled
  (void)g.input("unread", {Shape{2, 4}});
  Context ctx;
  ParameterStore store(g, ctx, 1);
  Executor ex(g, store, ctx);
  const std::string unbound = error_of([&] { ex.run(); });
  EXPECT_NE(unbound.find("input 'labels' was never given data"), std::string::npos) << unbound;
  EXPECT_NE(error_of([&] { ex.bind_input("x", Tensor::empty_cpu(Shape{2, 4}, DType::kFloat32)); }), "(no error)");
  ex.bind_input("labels", Tensor::from_vector({1.f, 3.f}, Shape{2}, DType::kInt32));
  const std::string x_missing = error_of([&] { ex.run(); });
  EXPECT_NE(x_missing.find("input 'x' was never given data"), std::string::npos) << x_missing;
  ex.input("x").fill_uniform(3, -1.f, 1.f, ctx.stream());
  EXPECT_EQ(error_of([&] { ex.run(); }), "(no error)") << "the zero_input needs no data";
}

// Misuse messages that named the wrong thing: a state's gradient ("the loss does not depend on
// parameter") and a device tensor bound on the CPU ("copy_from: stream is on cpu").
TEST(ApiContracts, MisuseMessagesNameTheRealProblem) {
  GraphOptions o;
  o.batch = 4;
  Graph g(o);
  const Value x = nn::image_input(g, "images", 3, 4, 4);
  nn::softmax_cross_entropy(g, nn::linear(g, "fc", nn::flatten(g, nn::batch_norm(g, "bn", x)), 4),
                            nn::label_input(g, "labels"));
  Context ctx;
  ParameterStore store(g, ctx, 1);
  Executor ex(g, store, ctx);
  const std::string state = error_of([&] { (void)ex.gradient("bn.running_mean"); });
  EXPECT_NE(state.find("'bn.running_mean' is a state"), std::string::npos) << state;
  float fake = 0.f;  // never read: the bind is refused before any copy
  const Tensor on_gpu = Tensor::wrap(&fake, Shape{4}, DType::kInt32, Device::cuda(0));
  const std::string device = error_of([&] { ex.bind_input("labels", on_gpu); });
  EXPECT_NE(device.find("bind_input('labels'): the source is on cuda:0 but this executor runs on the CPU"),
            std::string::npos)
      << device;
}

// A value of one graph given to another is refused, even where its index exists there (it was
// taken as whatever value had that index); a copy of the graph accepts it, and the refused call
// adds nothing.
TEST(ApiContracts, AValueOfAnotherGraphIsRefused) {
  Graph a;
  const Value x = a.input("x", {Shape{2, 7}});
  const Value hx = nn::relu(a, x);
  Graph b;
  const Value y = b.input("y", {Shape{2, 3}});
  (void)nn::relu(b, y);
  const std::size_t nodes = b.nodes().size();
  const std::string refused = error_of([&] { (void)nn::relu(b, hx); });
  EXPECT_NE(refused.find("belongs to another graph"), std::string::npos) << refused;
  EXPECT_EQ(b.nodes().size(), nodes);
  EXPECT_NE(error_of([&] { b.mark_output(x, "out"); }).find("belongs to another graph"), std::string::npos);
  Graph copy = a;
  EXPECT_EQ(copy.info(nn::relu(copy, hx)).shape(), (Shape{2, 7}));
  Graph moved = std::move(a);
  EXPECT_EQ(moved.info(hx).name, copy.info(hx).name) << "a moved graph keeps its values";
  // The moved-from graph is a new one: refilled, it refuses the old values even where their
  // indices exist again.
  (void)a.input("z", {Shape{2, 7}});  // NOLINT(bugprone-use-after-move)
  (void)nn::relu(a, a.find_value("z"));
  EXPECT_NE(error_of([&] { (void)a.info(hx); }).find("belongs to another graph"), std::string::npos);
}
