// Pooling as graph ops: global average pooling and 2x2 max pooling, forward and backward.
#include "kestrel/core/error.h"
#include "kestrel/core/ops/nn_ops.h"
#include "kestrel/kernels/cpu/pooling.h"
#include "kestrel/kernels/pooling.h"

namespace kestrel {
namespace {
// dy [N,C] -> dx [N,C,H,W] in the forward input's type.
class GlobalAvgPoolBackwardOp final : public Op {
 public:
  explicit GlobalAvgPoolBackwardOp(TypeSpec x) : x_(std::move(x)) {}
  std::string type() const override { return "GlobalAvgPoolBackward"; }
  std::vector<TypeSpec> infer(const std::vector<const ValueInfo*>& in, const std::string& node) const override {
    expect_inputs(type(), node, in, 1);
    return {x_};
  }
  void run(const OpRun& r) const override {
    const Tensor& dx = r.out[0];
    const std::int64_t n = dx.shape()[0], c = dx.shape()[1], hw = dx.shape()[2] * dx.shape()[3];
    if (r.on_cpu())
      cpu::global_avg_pool_backward(r.in[0].data(), dx.data(), dx.dtype(), n, c, hw, dx.layout());
    else
      cuda::global_avg_pool_backward(r.in[0].data(), dx.data(), dx.dtype(), n, c, hw, dx.layout(), r.stream());
  }

 private:
  TypeSpec x_;
};

class GlobalAvgPoolOp final : public Op {
 public:
  std::string type() const override { return "GlobalAvgPool"; }
  std::vector<TypeSpec> infer(const std::vector<const ValueInfo*>& in, const std::string& node) const override {
    expect_inputs(type(), node, in, 1);
    expect_activation(type(), node, *in[0], 4, "[N, C, H, W]");
    return {TypeSpec{Shape{in[0]->shape()[0], in[0]->shape()[1]}, in[0]->dtype(), Layout::kNCHW}};
  }
  void run(const OpRun& r) const override {
    const Tensor& x = r.in[0];
    const std::int64_t n = x.shape()[0], c = x.shape()[1], hw = x.shape()[2] * x.shape()[3];
    if (r.on_cpu())
      cpu::global_avg_pool_forward(x.data(), r.out[0].data(), x.dtype(), n, c, hw, x.layout());
    else
      cuda::global_avg_pool_forward(x.data(), r.out[0].data(), x.dtype(), n, c, hw, x.layout(), r.stream());
  }
  std::vector<Value> backward(Graph& g, const Node& n, const std::vector<Value>& grad_out,
                              const std::vector<bool>&) const override {
    return {g.append_node(std::make_shared<GlobalAvgPoolBackwardOp>(g.info(n.inputs[0]).type),
                          n.name + ".backward", {grad_out[0]}, true)[0]};
  }
};

// (dy, x) -> dx: the window maximum is found again in x, no indices are stored.
class MaxPool2x2BackwardOp final : public Op {
 public:
  std::string type() const override { return "MaxPool2x2Backward"; }
  std::vector<TypeSpec> infer(const std::vector<const ValueInfo*>& in, const std::string& node) const override {
    expect_inputs(type(), node, in, 2);
    return {in[1]->type};
  }
  void run(const OpRun& r) const override {
    const Tensor& x = r.in[1];
    const std::int64_t n = x.shape()[0], c = x.shape()[1], h = x.shape()[2], w = x.shape()[3];
    if (r.on_cpu())
      cpu::max_pool2x2_backward(r.in[0].data(), x.data(), r.out[0].data(), x.dtype(), n, c, h, w, x.layout());
    else
      cuda::max_pool2x2_backward(r.in[0].data(), x.data(), r.out[0].data(), x.dtype(), n, c, h, w, x.layout(),
                                 r.stream());
  }
};

class MaxPool2x2Op final : public Op {
 public:
  std::string type() const override { return "MaxPool2x2"; }
  std::vector<TypeSpec> infer(const std::vector<const ValueInfo*>& in, const std::string& node) const override {
    expect_inputs(type(), node, in, 1);
    const ValueInfo& x = *in[0];
    expect_activation(type(), node, x, 4, "[N, C, H, W]");
    if (x.shape()[2] < 2 || x.shape()[3] < 2)
      shape_error(type(), node, "input " + x.describe(), "height and width >= 2", x.shape().to_string());
    return {TypeSpec{Shape{x.shape()[0], x.shape()[1], x.shape()[2] / 2, x.shape()[3] / 2}, x.dtype(), x.layout()}};
  }
  void run(const OpRun& r) const override {
    const Tensor& x = r.in[0];
    const std::int64_t n = x.shape()[0], c = x.shape()[1], h = x.shape()[2], w = x.shape()[3];
    if (r.on_cpu())
      cpu::max_pool2x2_forward(x.data(), r.out[0].data(), x.dtype(), n, c, h, w, x.layout());
    else
      cuda::max_pool2x2_forward(x.data(), r.out[0].data(), x.dtype(), n, c, h, w, x.layout(), r.stream());
  }
  std::vector<Value> backward(Graph& g, const Node& n, const std::vector<Value>& grad_out,
                              const std::vector<bool>&) const override {
    return {g.append_node(std::make_shared<MaxPool2x2BackwardOp>(), n.name + ".backward",
                          {grad_out[0], Value{n.inputs[0]}}, true)[0]};
  }
};
}  // namespace

std::shared_ptr<const Op> make_global_avg_pool_op() { return std::make_shared<GlobalAvgPoolOp>(); }
std::shared_ptr<const Op> make_max_pool2x2_op() { return std::make_shared<MaxPool2x2Op>(); }

}  // namespace kestrel
