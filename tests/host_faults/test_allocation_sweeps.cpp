// Operations that promise to change nothing when they fail, run with each of their host
// allocations failing in turn (failing_new.h): after every failure the store is as it was before
// the call, and the same call then succeeds. A sweep of this kind found ensure_optimizer_state
// keeping AdamW's first buffer when the second could not be made.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "failing_new.h"
#include "refused_run.h"
#include "temp_dir.h"
#include "kestrel/core/executor.h"
#include "kestrel/core/parameter_store.h"
#include "kestrel/layers/checkpoint.h"
#include "kestrel/layers/nn.h"
#include "kestrel/layers/resnet.h"
#include "kestrel/layers/safetensors.h"

using namespace kestrel;

namespace {

nn::Conv2dOptions conv_options() {
  nn::Conv2dOptions o;
  o.padding = 1;
  return o;
}

Graph small_graph() {
  GraphOptions o;
  o.batch = 2;
  Graph g(o);
  const Value x = g.input("x", {Shape{2, 3, 4, 4}});
  const Value y = nn::conv2d(g, "conv", x, 4, 3, conv_options());
  const Value z = nn::batch_norm(g, "bn", y);
  nn::softmax_cross_entropy(g, nn::linear(g, "fc", nn::flatten(g, z), 5), nn::label_input(g, "labels"));
  return g;
}

// Everything a store holds, read on the host.
struct Snapshot {
  std::vector<float> params, states, opt0, opt1;
  OptimizerKind kind;
  ParameterStore::Counters counters;
  bool operator==(const Snapshot& o) const {
    return params == o.params && states == o.states && opt0 == o.opt0 && opt1 == o.opt1 && kind == o.kind &&
           counters.rng_offset == o.counters.rng_offset && counters.step == o.counters.step &&
           counters.learning_rate == o.counters.learning_rate;
  }
};

Snapshot snapshot(const ParameterStore& s) {
  Snapshot r;
  r.params = s.flat_params().to_float_vector();
  r.states = s.flat_states().to_float_vector();
  if (s.optimizer_kind() != OptimizerKind::kNone) r.opt0 = s.opt_state(0).to_float_vector();
  if (s.optimizer_kind() == OptimizerKind::kAdamW) r.opt1 = s.opt_state(1).to_float_vector();
  r.kind = s.optimizer_kind();
  r.counters = s.read_counters();
  return r;
}

// Runs `call` on a fresh subject with its k-th host allocation failing, for k = 0, 1, ... until a
// call makes fewer than k + 1 allocations; `after_failure(subject, k)` checks each subject whose
// call raised. `exhausted`: every allocation after the k-th fails too (memory that stays short,
// so the clean-up after the first failure cannot allocate either). Returns the number of
// failing calls (0 would mean the sweep tested nothing).
template <typename Subject>
long sweep(const std::function<std::unique_ptr<Subject>()>& make,
           const std::function<void(Subject&)>& call,
           const std::function<void(Subject&, long)>& after_failure, bool exhausted = false) {
  for (long k = 0; k < 100000; ++k) {
    std::unique_ptr<Subject> subject = make();
    kestrel_test::fail_new_after(k, exhausted);
    bool raised = false;
    try {
      call(*subject);
    } catch (const std::exception&) {  // std::bad_alloc, or an Error made from it
      raised = true;
    }
    const bool reached = !kestrel_test::new_failure_pending();
    kestrel_test::fail_new_after(-1);
    if (!reached) {
      EXPECT_FALSE(raised) << "the call raised without an allocation failing";
      return k;
    }
    if (raised) after_failure(*subject, k);  // (a call may also absorb a failure and succeed)
  }
  ADD_FAILURE() << "the call never completed without a failure";
  return 0;
}

struct StoreSubject {
  Context ctx;
  Graph graph = small_graph();
  std::unique_ptr<ParameterStore> store;
};

}  // namespace

TEST(AllocationSweeps, ACreatedOptimizerStateIsAllOrNothing) {
  const long failures = sweep<StoreSubject>(
      [] {
        auto s = std::make_unique<StoreSubject>();
        s->store = std::make_unique<ParameterStore>(s->graph, s->ctx, 3);
        return s;
      },
      [](StoreSubject& s) { s.store->ensure_optimizer_state(OptimizerKind::kAdamW); },
      [](StoreSubject& s, long k) {
        EXPECT_EQ(s.store->optimizer_kind(), OptimizerKind::kNone) << "failure " << k;
        EXPECT_THROW(s.store->opt_state(0), Error) << "a buffer was kept, failure " << k;
        EXPECT_THROW(s.store->opt_state(1), Error) << "a buffer was kept, failure " << k;
        s.store->ensure_optimizer_state(OptimizerKind::kAdamW);  // the retry works
        EXPECT_EQ(s.store->optimizer_kind(), OptimizerKind::kAdamW);
      });
  EXPECT_GE(failures, 2) << "both buffers' allocations were swept";
}

// checkpoint.h: loading validates everything before it writes anything; with a host allocation
// failing anywhere in it, the store keeps its weights, states, optimizer state and counters.
TEST(AllocationSweeps, AFailedCheckpointLoadLeavesTheStoreAsItWas) {
  // The checkpoint: the same graph and seed, every value moved (the padding between slots too,
  // which the file does not hold), other counters.
  Context ctx;
  const Graph g = small_graph();
  ParameterStore source(g, ctx, 5);
  source.ensure_optimizer_state(OptimizerKind::kSgd);
  for (const Tensor& t : {source.flat_params(), source.flat_states(), source.opt_state(0)}) {
    std::vector<float> v = t.to_float_vector();
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = v[i] * 0.5f + 0.25f + static_cast<float>(i % 7);
    std::memcpy(t.data(), v.data(), v.size() * sizeof(float));
  }
  source.write_counters({1234, 56, 0.125f});
  const SafetensorsFile file = checkpoint_from_store(source);
  ParameterStore reference(g, ctx, 5);  // loaded without a failure
  reference.ensure_optimizer_state(OptimizerKind::kSgd);
  load_checkpoint(file, reference);
  const Snapshot loaded = snapshot(reference);

  Snapshot before;
  const long failures = sweep<StoreSubject>(
      [&before] {
        auto s = std::make_unique<StoreSubject>();
        s->store = std::make_unique<ParameterStore>(s->graph, s->ctx, 5);
        s->store->ensure_optimizer_state(OptimizerKind::kSgd);
        before = snapshot(*s->store);
        return s;
      },
      [&file](StoreSubject& s) { load_checkpoint(file, *s.store); },
      [&](StoreSubject& s, long k) {
        EXPECT_TRUE(snapshot(*s.store) == before) << "failure " << k << " left the store changed";
        load_checkpoint(file, *s.store);  // the retry works
        EXPECT_TRUE(snapshot(*s.store) == loaded);
      });
  EXPECT_GE(failures, 10);
  EXPECT_FALSE(before == loaded) << "the checkpoint differs from a fresh store";
}

namespace {
struct RunSubject {
  Context ctx;
  Graph graph = kestrel::testing::refusable_net(4);
  std::unique_ptr<ParameterStore> store;
  std::unique_ptr<Executor> ex;
};

std::unique_ptr<RunSubject> fed_training_executor(const CompileOptions& options) {
  auto s = std::make_unique<RunSubject>();
  s->store = std::make_unique<ParameterStore>(s->graph, s->ctx, 3);
  s->ex = std::make_unique<Executor>(s->graph, *s->store, s->ctx, options);
  s->store->set_learning_rate(0.1f);
  kestrel::testing::feed_refusable(*s->ex, s->ctx, false, false);
  return s;
}
}  // namespace

// LIBRARY.md: a run refused part-way puts back what the nodes before it had moved. With a host
// allocation failing anywhere in a CPU training step (batch norm, dropout, the loss, the update),
// the store is as before and the retried step gives the uninterrupted step's bits: SGD, and AdamW
// with clipping and check_numerics; one failure, and memory that stays exhausted after it (the
// rollback itself must not need any).
class AllocationSweepsRun : public ::testing::TestWithParam<std::tuple<bool, bool>> {};

TEST_P(AllocationSweepsRun, AFailedTrainingStepLeavesTheStoreAsItWas) {
  CompileOptions options;
  if (std::get<0>(GetParam())) {
    options.optimizer = OptimizerKind::kAdamW;
    options.max_grad_norm = 0.5f;
    options.check_numerics = true;
  }
  std::unique_ptr<RunSubject> reference = fed_training_executor(options);
  reference->ex->run();
  const Snapshot after_step = snapshot(*reference->store);

  Snapshot before;
  const long failures = sweep<RunSubject>(
      [&] {
        std::unique_ptr<RunSubject> s = fed_training_executor(options);
        before = snapshot(*s->store);
        return s;
      },
      [](RunSubject& s) { s.ex->run(); },
      [&](RunSubject& s, long k) {
        EXPECT_TRUE(snapshot(*s.store) == before) << "failure " << k << " left the store changed";
        s.ex->run();  // the retry works and continues the run exactly
        EXPECT_TRUE(snapshot(*s.store) == after_step) << "the retry after failure " << k;
      },
      std::get<1>(GetParam()));
  EXPECT_GE(failures, 1);
  EXPECT_FALSE(before == after_step);
}

INSTANTIATE_TEST_SUITE_P(Optimizers, AllocationSweepsRun, ::testing::Combine(::testing::Bool(), ::testing::Bool()),
                         [](const ::testing::TestParamInfo<std::tuple<bool, bool>>& i) {
                           return std::string(std::get<0>(i.param) ? "AdamWClippedChecked" : "Sgd") +
                                  (std::get<1>(i.param) ? "Exhausted" : "");
                         });

namespace {
struct GraphSubject {
  Graph g;
  Value images;
  std::size_t values = 0, nodes = 0, params = 0;
};
}  // namespace

// LIBRARY.md: a network refused part-way leaves the graph as it was (Graph::Transaction), so the
// call can be retried under the same name; with a host allocation failing anywhere in
// build_resnet too.
TEST(AllocationSweeps, AFailedNetworkBuildLeavesTheGraphAsItWas) {
  const long failures = sweep<GraphSubject>(
      [] {
        auto s = std::make_unique<GraphSubject>();
        GraphOptions o;
        o.batch = 2;
        s->g = Graph(o);
        s->images = nn::image_input(s->g, "images", 3, 8, 8);
        s->values = s->g.values().size();
        s->nodes = s->g.nodes().size();
        s->params = s->g.params().size();
        return s;
      },
      [](GraphSubject& s) { build_resnet(s.g, s.images, resnet_config("resnet8", 2)); },
      [](GraphSubject& s, long k) {
        EXPECT_EQ(s.g.values().size(), s.values) << "failure " << k;
        EXPECT_EQ(s.g.nodes().size(), s.nodes) << "failure " << k;
        EXPECT_EQ(s.g.params().size(), s.params) << "failure " << k;
        build_resnet(s.g, s.images, resnet_config("resnet8", 2));  // the retry works, same names
      });
  EXPECT_GE(failures, 100);
}

// An Executor refused while compiling leaves its store as it was (no optimizer state taken),
// with a host allocation failing anywhere in the compile.
TEST(AllocationSweeps, AFailedCompileLeavesTheStoreAsItWas) {
  Snapshot before;
  const long failures = sweep<RunSubject>(
      [&before] {
        auto s = std::make_unique<RunSubject>();
        s->store = std::make_unique<ParameterStore>(s->graph, s->ctx, 3);
        before = snapshot(*s->store);
        return s;
      },
      [](RunSubject& s) { s.ex = std::make_unique<Executor>(s.graph, *s.store, s.ctx); },
      [&](RunSubject& s, long k) {
        EXPECT_TRUE(snapshot(*s.store) == before) << "failure " << k << " left the store changed";
        s.ex = std::make_unique<Executor>(s.graph, *s.store, s.ctx);  // the retry works
        EXPECT_EQ(s.store->optimizer_kind(), OptimizerKind::kSgd);
      });
  EXPECT_GE(failures, 100);
}

// save_checkpoint writes a temporary file and renames it: with a host allocation failing anywhere
// in it, the earlier checkpoint stays whole and no temporary file is left.
TEST(AllocationSweeps, AFailedCheckpointSaveKeepsTheEarlierFile) {
  kestrel::testing::TempDir dir("sweep_save");
  const std::string path = dir / "ckpt.safetensors";
  std::size_t tensors = 0;
  const long failures = sweep<StoreSubject>(
      [&] {  // the earlier checkpoint, written anew: a call that absorbed its failure replaced it
        auto s = std::make_unique<StoreSubject>();
        s->store = std::make_unique<ParameterStore>(s->graph, s->ctx, 2);
        save_checkpoint(*s->store, path, {{"run", "earlier"}});
        tensors = read_safetensors(path).tensors.size();
        return s;
      },
      [&path](StoreSubject& s) { save_checkpoint(*s.store, path, {{"run", "later"}}); },
      [&](StoreSubject&, long k) {
        const SafetensorsFile now = read_safetensors(path);
        EXPECT_EQ(now.metadata.at("run"), "earlier") << "failure " << k;
        EXPECT_EQ(now.tensors.size(), tensors) << "failure " << k;
        EXPECT_EQ(dir.entries(), std::vector<std::string>{"ckpt.safetensors"}) << "failure " << k;
      });
  EXPECT_GE(failures, 10);
  EXPECT_EQ(read_safetensors(path).metadata.at("run"), "later");
}
