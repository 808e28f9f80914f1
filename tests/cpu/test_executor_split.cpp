// Executor::run_forward_backward + apply_update (the trainer's skip-on-non-finite path) against
// run(), and ParameterStore::opt_state(k, i) views.
#include <gtest/gtest.h>

#include "error_text.h"
#include "grad_check.h"
#include "test_support.h"
#include "kestrel/core/executor.h"
#include "kestrel/layers/nn.h"

using namespace kestrel;
using kestrel::testing::error_of;

namespace {
Graph small_net() {
  GraphOptions o;
  o.batch = 6;
  Graph g(o);
  const Value x = nn::image_input(g, "x", 2, 4, 4);
  const Value labels = nn::label_input(g, "labels");
  Value h = nn::relu(g, nn::batch_norm(g, "bn", nn::conv2d(g, "conv", x, 3, 3, {1, 1, 1, false})));
  h = nn::dropout(g, "drop", h, 0.25f);
  nn::softmax_cross_entropy(g, nn::linear(g, "fc", nn::flatten(g, h), 4), labels);
  return g;
}
}  // namespace

TEST(ExecutorSplit, ForwardBackwardThenUpdateEqualsRun) {
  for (OptimizerKind kind : {OptimizerKind::kSgd, OptimizerKind::kAdamW}) {
    const Graph g = small_net();
    Context ctx;
    ParameterStore a(g, ctx, 3), b(g, ctx, 3);
    CompileOptions co;
    co.optimizer = kind;
    co.sgd.weight_decay = 1e-2f;
    Executor ea(g, a, ctx, co), eb(g, b, ctx, co);
    for (Executor* e : {&ea, &eb}) {
      kestrel::testing::feed_uniform(*e, "x", 4);
      kestrel::testing::feed_labels(*e, "labels", 4);
      e->store().set_learning_rate(0.1f);
    }
    for (int step = 0; step < 3; ++step) {
      ea.run();
      const std::vector<float> before = b.flat_params().to_float_vector();
      eb.run_forward_backward();
      EXPECT_EQ(b.flat_params().to_float_vector(), before) << "no update yet";
      EXPECT_TRUE(kestrel::testing::bit_equal(b.flat_grads().to_float_vector(), a.flat_grads().to_float_vector()));
      EXPECT_EQ(eb.output("loss").to_float_vector(), ea.output("loss").to_float_vector());
      eb.apply_update();
      EXPECT_TRUE(kestrel::testing::bit_equal(b.flat_params().to_float_vector(), a.flat_params().to_float_vector()));
    }
    EXPECT_EQ(b.read_counters().step, 3);
    EXPECT_EQ(b.read_counters().rng_offset, a.read_counters().rng_offset);
    // A skipped update leaves the optimizer step where it was; the next one starts from there.
    eb.run_forward_backward();
    EXPECT_EQ(b.read_counters().step, 3);
    // opt_state(k, i) views parameter i's slice of the flat buffer.
    const int fc = b.index_of("fc.weight");
    const std::vector<float> flat = b.opt_state(0).to_float_vector();
    const std::vector<float> view = b.opt_state(0, fc).to_float_vector();
    const std::int64_t offset =
        (static_cast<const float*>(b.opt_state(0, fc).data()) - static_cast<const float*>(b.opt_state(0).data()));
    ASSERT_EQ(view.size(), 4u * 3u * 16u);
    EXPECT_EQ(std::vector<float>(flat.begin() + offset, flat.begin() + offset + 48 * 4), view);
    EXPECT_NE(error_of([&] { b.opt_state(0, b.index_of("bn.running_mean")); }).find("is a state"), std::string::npos);
  }
  EXPECT_EQ(ParameterStore::optimizer_buffers(OptimizerKind::kAdamW), 2);
}

TEST(ExecutorSplit, InferenceExecutorsRefuse) {
  const Graph g = small_net();
  Context ctx;
  ParameterStore s(g, ctx, 1);
  CompileOptions eo;
  eo.training = false;
  Executor e(g, s, ctx, eo);
  EXPECT_NE(error_of([&] { e.run_forward_backward(); }).find("needs a training executor"), std::string::npos);
  EXPECT_NE(error_of([&] { e.apply_update(); }).find("needs a training executor"), std::string::npos);
}

// apply_update applies a run_forward_backward's gradients once: a second call, one after run()
// (which applied its own), or one after a refused run_forward_backward is refused and changes
// nothing (a second call applied the same gradients again; after a refused one the step count
// moved, shifting AdamW's bias correction).
TEST(ExecutorSplit, EachStepsGradientsAreAppliedOnce) {
  const Graph g = small_net();
  Context ctx;
  ParameterStore s(g, ctx, 3);
  CompileOptions co;
  co.optimizer = OptimizerKind::kAdamW;
  Executor e(g, s, ctx, co);
  kestrel::testing::feed_uniform(e, "x", 4);
  kestrel::testing::feed_labels(e, "labels", 4);
  s.set_learning_rate(0.1f);
  const auto refused = [&] {
    const std::vector<float> params = s.flat_params().to_float_vector();
    const std::int64_t step = s.read_counters().step;
    EXPECT_NE(error_of([&] { e.apply_update(); }).find("call run_forward_backward() first"), std::string::npos);
    EXPECT_EQ(s.flat_params().to_float_vector(), params);
    EXPECT_EQ(s.read_counters().step, step);
  };
  refused();  // nothing ran yet
  e.run_forward_backward();
  e.apply_update();
  EXPECT_EQ(s.read_counters().step, 1);
  refused();  // twice
  e.run_forward_backward();
  e.run();
  refused();  // run() applied its own update (and the pending gradients are gone)
  EXPECT_EQ(s.read_counters().step, 2);
  Tensor labels = Tensor::from_vector(std::vector<float>(6, 1.f), Shape{6}, DType::kInt32);
  labels.data_as<std::int32_t>()[5] = 42;  // the CPU loss refuses it
  e.bind_input("labels", labels);
  EXPECT_NE(error_of([&] { e.run_forward_backward(); }).find("label 42"), std::string::npos);
  refused();
  kestrel::testing::feed_labels(e, "labels", 4);
  e.run_forward_backward();
  e.apply_update();
  EXPECT_EQ(s.read_counters().step, 3);
}
