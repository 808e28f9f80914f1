// The refused-run check shared by the CPU test (test_executor_options.cpp) and the CUDA one
// (test_executor_rollback_cuda.cpp): two stores of one seed each take a good training step; the
// first then gets a step that is refused part-way (a label out of range, which only the CPU's
// loss raises on; or a NaN image that check_numerics finds in the output of bn0, after bn0 has
// updated its running statistics and dropout has taken its offset); its statistics and offset
// must be as before, and after one more good step each, both stores must hold the same bits.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <string>

#include "device_copy.h"
#include "error_text.h"
#include "kestrel/core/executor.h"
#include "kestrel/layers/nn.h"
#include "test_support.h"

namespace kestrel::testing {

enum class Refusal { kBadLabel, kNaNImage };

// Batch norm straight on the images, a convolution, batch norm + ReLU, dropout, pooling, a dense
// layer and the loss.
inline Graph refusable_net(std::int64_t batch) {
  GraphOptions o;
  o.batch = batch;
  Graph g(o);
  const Value x = nn::image_input(g, "images", 3, 6, 6);
  const Value labels = nn::label_input(g, "labels");
  const Value normed = nn::batch_norm(g, "bn0", x);
  Value h = nn::relu(g, nn::batch_norm(g, "bn1", nn::conv2d(g, "conv1", normed, 4, 3, {1, 1})));
  h = nn::dropout(g, "drop", h, 0.5f);
  nn::softmax_cross_entropy(g, nn::linear(g, "fc", nn::global_avg_pool(g, h), 10), labels);
  return g;
}

// Host images (seed 5; a NaN at element 7 when asked) and labels (label 42 in the last row when
// asked), bound to the executor's inputs.
inline void feed_refusable(Executor& ex, Context& ctx, bool nan_image, bool bad_label) {
  Stream cpu;
  Tensor images = Tensor::empty_cpu(ex.input("images").shape(), DType::kFloat32);
  images.fill_uniform(5, -1.f, 1.f, cpu);
  if (nan_image) images.data_as<float>()[7] = std::nanf("");
  ex.bind_input("images", images);
  Tensor labels = Tensor::empty_cpu(ex.input("labels").shape(), DType::kInt32);
  auto* l = labels.data_as<std::int32_t>();
  for (std::int64_t i = 0; i < labels.numel(); ++i) l[i] = static_cast<std::int32_t>((i * 3) % 10);
  if (bad_label) l[labels.numel() - 1] = 42;
  ex.bind_input("labels", labels);
  ctx.stream().synchronize();
}

inline void check_refused_run_changes_nothing(Context& ctx, Refusal refusal) {
  const Graph g = refusable_net(4);
  ParameterStore a(g, ctx, 3), b(g, ctx, 3);
  CompileOptions co;
  co.check_numerics = refusal == Refusal::kNaNImage;
  Executor ea(g, a, ctx, co), eb(g, b, ctx, co);
  for (Executor* e : {&ea, &eb}) {
    e->store().set_learning_rate(0.1f);
    feed_refusable(*e, ctx, false, false);
    e->run();
  }
  const std::vector<float> states = host_floats(a.flat_states(), ctx);
  const ParameterStore::Counters before = a.read_counters();
  feed_refusable(ea, ctx, refusal == Refusal::kNaNImage, refusal == Refusal::kBadLabel);
  const std::string refused = error_of([&] { ea.run(); });
  EXPECT_NE(refused.find(refusal == Refusal::kNaNImage ? "bn0" : "label 42"), std::string::npos) << refused;
  EXPECT_TRUE(bit_equal(host_floats(a.flat_states(), ctx), states));
  EXPECT_EQ(a.read_counters().rng_offset, before.rng_offset);
  EXPECT_EQ(a.read_counters().step, before.step);
  feed_refusable(ea, ctx, false, false);
  ea.run();
  eb.run();
  ctx.stream().synchronize();
  EXPECT_TRUE(bit_equal(host_floats(a.flat_params(), ctx), host_floats(b.flat_params(), ctx)));
  EXPECT_TRUE(bit_equal(host_floats(a.flat_states(), ctx), host_floats(b.flat_states(), ctx)));
  EXPECT_EQ(a.read_counters().rng_offset, b.read_counters().rng_offset);
}

}  // namespace kestrel::testing
