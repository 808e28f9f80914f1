#include "kestrel/layers/nn.h"

#include <cmath>

#include "kestrel/core/error.h"
#include "kestrel/core/ops/batchnorm_op.h"
#include "kestrel/core/ops/elementwise_ops.h"
#include "kestrel/core/ops/nn_ops.h"

namespace kestrel::nn {
namespace {
DType weight_compute_dtype(const Graph& g) { return g.options().dtype; }
}  // namespace

Value image_input(Graph& g, const std::string& name, std::int64_t c, std::int64_t h, std::int64_t w) {
  return g.input(name, {Shape{g.options().batch, c, h, w}, g.options().dtype, g.options().layout});
}

Value label_input(Graph& g, const std::string& name) {
  return g.input(name, {Shape{g.options().batch}, DType::kInt32, Layout::kNCHW});
}

Value conv2d(Graph& g, const std::string& name, Value x, std::int64_t out_channels, int kernel,
             const Conv2dOptions& o) {
  const ValueInfo xi = g.info(x);  // a copy: adding parameters and nodes may move the values
  KESTREL_CHECK(xi.shape().rank() == 4, "conv2d '", g.scoped(name), "': input ", xi.describe(),
                " is not [N, C, H, W]");
  KESTREL_CHECK(out_channels > 0 && kernel > 0, "conv2d '", g.scoped(name),
                "': out_channels and kernel must be positive (got ", out_channels, ", ", kernel, ")");
  const std::int64_t c = xi.shape()[1];
  Graph::Transaction tx(g);  // a refused node takes its parameters with it
  std::vector<Value> in = {x};
  {
    Graph::Scope scope(g, name);  // parameters live inside the layer's name
    Init init = o.init;
    const std::int64_t window = static_cast<std::int64_t>(kernel) * kernel;
    if (init.fan_in == 0) init.fan_in = c * window;
    if (init.kind == Init::Kind::kXavierUniform && init.fan_out == 0) init.fan_out = out_channels * window;
    in.push_back(g.parameter("weight", {Shape{out_channels, c, kernel, kernel}, DType::kFloat32, xi.layout()},
                             init, true, weight_compute_dtype(g)));
    if (o.bias) in.push_back(g.parameter("bias", {Shape{out_channels}}, Init::zeros(), true));
  }
  Conv2dAttrs a;
  a.stride_h = a.stride_w = o.stride;
  a.pad_h = a.pad_w = o.padding;
  a.dil_h = a.dil_w = o.dilation;
  const Value y = g.add_node1(make_conv2d_op(a), name, in);
  tx.commit();
  return y;
}

Value batch_norm(Graph& g, const std::string& name, Value x, const BatchNormOptions& o) {
  const ValueInfo xi = g.info(x);  // a copy: adding parameters and nodes may move the values
  KESTREL_CHECK(xi.shape().rank() == 4, "batch_norm '", g.scoped(name), "': input ", xi.describe(),
                " is not [N, C, H, W]");
  const std::int64_t c = xi.shape()[1];
  Graph::Transaction tx(g);
  std::vector<Value> in = {x};
  {
    Graph::Scope scope(g, name);
    in.push_back(g.parameter("weight", {Shape{c}}, o.zero_init_gamma ? Init::zeros() : Init::ones(), true));
    in.push_back(g.parameter("bias", {Shape{c}}, Init::zeros(), true));
    in.push_back(g.state("running_mean", {Shape{c}}, Init::zeros()));
    in.push_back(g.state("running_var", {Shape{c}}, Init::ones()));
  }
  const Value y = g.add_node(make_batchnorm_op({o.eps, o.momentum}), name, in)[0];
  tx.commit();
  return y;
}

Value linear(Graph& g, const std::string& name, Value x, std::int64_t out_features, const LinearOptions& o) {
  const ValueInfo xi = g.info(x);  // a copy: adding parameters and nodes may move the values
  KESTREL_CHECK(xi.shape().rank() == 2, "linear '", g.scoped(name), "': input ", xi.describe(),
                " is not [N, features] (flatten it first)");
  KESTREL_CHECK(out_features > 0, "linear '", g.scoped(name), "': out_features must be positive");
  const std::int64_t in_features = xi.shape()[1];
  Graph::Transaction tx(g);
  std::vector<Value> in = {x};
  {
    Graph::Scope scope(g, name);
    Init init = o.init;
    if (init.fan_in == 0) init.fan_in = in_features;
    if (init.kind == Init::Kind::kXavierUniform && init.fan_out == 0) init.fan_out = out_features;
    in.push_back(g.parameter("weight", {Shape{out_features, in_features}}, init, true, weight_compute_dtype(g)));
    if (o.bias) {
      // PyTorch's default bias init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
      const float bound = 1.0f / std::sqrt(static_cast<float>(in_features));
      in.push_back(g.parameter("bias", {Shape{out_features}}, Init::uniform(bound), true));
    }
  }
  const Value y = g.add_node1(make_linear_op(), name, in);
  tx.commit();
  return y;
}

Value relu(Graph& g, Value x) { return g.add_node1(make_relu_op(), "relu", {x}); }
Value sigmoid(Graph& g, Value x) { return g.add_node1(make_sigmoid_op(), "sigmoid", {x}); }
Value tanh(Graph& g, Value x) { return g.add_node1(make_tanh_op(), "tanh", {x}); }
Value add(Graph& g, Value a, Value b) { return g.add_node1(make_add_op(), "add", {a, b}); }
Value mul(Graph& g, Value a, Value b) { return g.add_node1(make_mul_op(), "mul", {a, b}); }
Value scale(Graph& g, Value x, float alpha) { return g.add_node1(make_scale_op(alpha), "scale", {x}); }

Value dropout(Graph& g, const std::string& name, Value x, float p, DropoutMode mode) {
  DropoutParams check;
  check.p = p;
  validate_dropout(check);
  Graph::Transaction tx(g);  // a refused node gives its random-stream slot back
  const Value y = g.add_node1(make_dropout_op(p, mode, g.next_rng_slot()), name, {x});
  tx.commit();
  return y;
}

Value max_pool2x2(Graph& g, Value x) { return g.add_node1(make_max_pool2x2_op(), "maxpool", {x}); }
Value global_avg_pool(Graph& g, Value x) { return g.add_node1(make_global_avg_pool_op(), "avgpool", {x}); }
Value flatten(Graph& g, Value x) { return g.add_node1(make_flatten_op(), "flatten", {x}); }
Value softmax(Graph& g, Value x) { return g.add_node1(make_softmax_op(), "softmax", {x}); }

std::vector<Value> split(Graph& g, Value x, const std::vector<std::int64_t>& sizes) {
  return g.add_node(make_split_op(sizes), "split", {x});
}

std::vector<Value> unstack(Graph& g, Value x) {
  const ValueInfo xi = g.info(x);  // a copy: adding parameters and nodes may move the values
  KESTREL_CHECK(xi.shape().rank() >= 2, "unstack: input ", xi.describe(), " has no axis 1 to unstack");
  return g.add_node(make_unstack_op(xi.shape()[1]), "unstack", {x});
}

Value concat(Graph& g, const std::vector<Value>& xs) { return g.add_node1(make_concat_op(), "concat", xs); }
Value stack(Graph& g, const std::vector<Value>& xs) { return g.add_node1(make_stack_op(), "stack", xs); }

Value softmax_cross_entropy(Graph& g, Value logits, Value labels, float label_smoothing) {
  KESTREL_CHECK(label_smoothing >= 0.f && label_smoothing < 1.f,
                "label smoothing must be in [0, 1), got ", label_smoothing);
  const Value loss = g.add_node(make_softmax_cross_entropy_op(label_smoothing), "loss", {logits, labels})[0];
  g.set_loss(loss);
  return loss;
}

}  // namespace kestrel::nn
