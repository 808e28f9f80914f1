// The network of the refused-run tests (CPU: test_executor_options.cpp, CUDA:
// test_executor_rollback_cuda.cpp): batch norm straight on the images (so a NaN image is found by
// check_numerics in bn0's output, after bn0 updated its statistics), a convolution, a second
// batch norm with ReLU, dropout (a random-stream slot), pooling, a dense layer and the loss.
#pragma once

#include <cstdint>

#include "kestrel/core/graph.h"
#include "kestrel/layers/nn.h"

namespace kestrel::testing {

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

}  // namespace kestrel::testing
