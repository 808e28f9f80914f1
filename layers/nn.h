// Layer builders: each appends nodes (and creates its named parameters) in a Graph and returns
// the output value. Names follow PyTorch's module naming so checkpoints map one to one:
// "<scope>.<name>.weight", ".bias", ".running_mean", ".running_var".
//
// Weights are fp32 masters; when the graph's activation dtype is bf16, convolutions and dense
// layers consume a bf16 copy refreshed by the optimizer. BN parameters and statistics are fp32.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kestrel/core/graph.h"
#include "kestrel/kernels/dropout.h"

namespace kestrel::nn {

// Inputs: images [batch, c, h, w] in the graph's dtype and layout; labels [batch] int32.
Value image_input(Graph& g, const std::string& name, std::int64_t c, std::int64_t h, std::int64_t w);
Value label_input(Graph& g, const std::string& name);

// Default initialisers, against PyTorch's layers: a convolution's weight is He normal with
// fan_in (kaiming_normal_() defaults; nn.Conv2d's own default is kaiming_uniform_(a=sqrt(5)),
// about 2.4x narrower), its optional bias 0 (nn.Conv2d: U(+-1/sqrt(fan_in))); a dense layer's
// weight is Xavier uniform (nn.Linear: kaiming_uniform_(a=sqrt(5)), i.e. U(+-1/sqrt(fan_in))), its
// bias U(+-1/sqrt(fan_in)) as nn.Linear's. Pass `init` for another.
struct Conv2dOptions {
  int stride = 1;
  int padding = 0;
  int dilation = 1;
  bool bias = false;
  Init init = Init::he_normal(0);  // fan_in 0 = computed (C*R*S)
};
Value conv2d(Graph& g, const std::string& name, Value x, std::int64_t out_channels, int kernel,
             const Conv2dOptions& o = {});

struct BatchNormOptions {
  float eps = 1e-5f;
  float momentum = 0.1f;
  bool zero_init_gamma = false;  // "zero the last BN of each residual branch"
};
Value batch_norm(Graph& g, const std::string& name, Value x, const BatchNormOptions& o = {});

struct LinearOptions {
  bool bias = true;
  Init init = Init::xavier_uniform(0, 0);  // fans 0 = computed
};
Value linear(Graph& g, const std::string& name, Value x, std::int64_t out_features,
             const LinearOptions& o = {});

Value relu(Graph& g, Value x);
Value sigmoid(Graph& g, Value x);
Value tanh(Graph& g, Value x);
Value add(Graph& g, Value a, Value b);
Value mul(Graph& g, Value a, Value b);
Value scale(Graph& g, Value x, float alpha);
// p in [0, 1] is applied in steps of 1/65536 (a 16-bit threshold; kernels/dropout_math.h): p below
// 2^-16 drops nothing, p in (1 - 2^-16, 1) keeps 2^-16 of the elements; the scaling uses the
// quantised p, so the expectation is kept. A dropped element is 0 even when x is NaN.
Value dropout(Graph& g, const std::string& name, Value x, float p,
              DropoutMode mode = DropoutMode::kInverted);
Value max_pool2x2(Graph& g, Value x);
Value global_avg_pool(Graph& g, Value x);
Value flatten(Graph& g, Value x);
Value softmax(Graph& g, Value x);
// Parts along axis 1 of row-major values (core/ops/nn_ops.h): split [N, sum(sizes), ...] into
// [N, sizes[i], ...]; unstack [N, T, ...] into T values [N, ...] (time steps); concat and stack
// are their inverses.
std::vector<Value> split(Graph& g, Value x, const std::vector<std::int64_t>& sizes);
std::vector<Value> unstack(Graph& g, Value x);
Value concat(Graph& g, const std::vector<Value>& xs);
Value stack(Graph& g, const std::vector<Value>& xs);

// Mean softmax cross-entropy over the batch (label smoothing in [0, 1)); sets it as the loss.
Value softmax_cross_entropy(Graph& g, Value logits, Value labels, float label_smoothing = 0.f);

}  // namespace kestrel::nn
