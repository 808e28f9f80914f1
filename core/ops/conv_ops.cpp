// Conv2d as graph ops: forward (cuDNN graph API / CPU direct loops), backward-data,
// backward-filter and the optional per-channel bias.
#include "kestrel/core/error.h"
#include "kestrel/core/ops/nn_ops.h"
#include "kestrel/kernels/bias.h"
#include "kestrel/kernels/conv.h"
#include "kestrel/kernels/cpu/bias.h"
#include "kestrel/kernels/cpu/conv.h"

namespace kestrel {
namespace {
Conv2dDesc make_desc(const Conv2dAttrs& a, const ValueInfo& x, const ValueInfo& w) {
  Conv2dDesc d;
  d.n = x.shape()[0];
  d.c = x.shape()[1];
  d.h = x.shape()[2];
  d.w = x.shape()[3];
  d.k = w.shape()[0];
  d.r = w.shape()[2];
  d.s = w.shape()[3];
  d.pad_h = a.pad_h;
  d.pad_w = a.pad_w;
  d.stride_h = a.stride_h;
  d.stride_w = a.stride_w;
  d.dil_h = a.dil_h;
  d.dil_w = a.dil_w;
  d.dtype = x.dtype();
  d.layout = x.layout();
  return d;
}

std::size_t conv_workspace(const PlanQuery& q, ConvOp op, const Conv2dDesc& d) {
  if (q.ctx.device().is_cpu()) return 0;
  // On the context's stream: under ConvPolicy::autotune a cache miss times the candidates there
  // (the handle was on no stream yet: the legacy stream, beside the context's queued work).
  return q.ctx.conv_plans().workspace_bytes(q.ctx.cudnn(), op, d, q.ctx.stream().handle());
}

// Inputs (dy, w) -> dx; attrs and the forward input type fix the shapes.
class Conv2dBackwardDataOp final : public Op {
 public:
  Conv2dBackwardDataOp(Conv2dAttrs a, TypeSpec x) : a_(a), x_(std::move(x)) {}
  std::string type() const override { return "Conv2dBackwardData"; }
  std::vector<TypeSpec> infer(const std::vector<const ValueInfo*>& in, const std::string& node) const override {
    expect_inputs(type(), node, in, 2);
    return {x_};
  }
  Conv2dDesc desc(const ValueInfo& w) const {
    ValueInfo x;
    x.type = x_;
    return make_desc(a_, x, w);
  }
  std::size_t workspace_bytes(const PlanQuery& q) const override {
    return conv_workspace(q, ConvOp::kBackwardData, desc(*q.in[1]));
  }
  void run(const OpRun& r) const override {
    ValueInfo w;
    w.type = {r.in[1].shape(), r.in[1].dtype(), r.in[1].layout()};
    const Conv2dDesc d = desc(w);
    if (r.on_cpu())
      cpu::conv2d_backward_data(d, r.in[0].data(), r.in[1].data(), r.out[0].data());
    else
      cuda::conv2d_backward_data(r.ctx.conv_plans(), r.ctx.cudnn(), d, r.in[0].data(), r.in[1].data(),
                                 r.out[0].data(), r.workspace, r.workspace_bytes, r.stream());
  }

 private:
  Conv2dAttrs a_;
  TypeSpec x_;
};

// Inputs (x, dy) -> dw; the weight type fixes its shape.
class Conv2dBackwardFilterOp final : public Op {
 public:
  Conv2dBackwardFilterOp(Conv2dAttrs a, TypeSpec w) : a_(a), w_(std::move(w)) {}
  std::string type() const override { return "Conv2dBackwardFilter"; }
  std::vector<TypeSpec> infer(const std::vector<const ValueInfo*>& in, const std::string& node) const override {
    expect_inputs(type(), node, in, 2);
    return {w_};
  }
  Conv2dDesc desc(const ValueInfo& x) const {
    ValueInfo w;
    w.type = w_;
    return make_desc(a_, x, w);
  }
  std::size_t workspace_bytes(const PlanQuery& q) const override {
    return conv_workspace(q, ConvOp::kBackwardFilter, desc(*q.in[0]));
  }
  void run(const OpRun& r) const override {
    ValueInfo x;
    x.type = {r.in[0].shape(), r.in[0].dtype(), r.in[0].layout()};
    const Conv2dDesc d = desc(x);
    if (r.on_cpu())
      cpu::conv2d_backward_filter(d, r.in[0].data(), r.in[1].data(), r.out[0].data());
    else
      cuda::conv2d_backward_filter(r.ctx.conv_plans(), r.ctx.cudnn(), d, r.in[0].data(), r.in[1].data(),
                                   r.out[0].data(), r.workspace, r.workspace_bytes, r.stream());
  }

 private:
  Conv2dAttrs a_;
  TypeSpec w_;
};

// dy [N,K,P,Q] -> dbias [K] fp32.
class ChannelBiasBackwardOp final : public Op {
 public:
  std::string type() const override { return "ChannelBiasBackward"; }
  std::vector<TypeSpec> infer(const std::vector<const ValueInfo*>& in, const std::string& node) const override {
    expect_inputs(type(), node, in, 1);
    return {TypeSpec{Shape{in[0]->shape()[1]}, DType::kFloat32, Layout::kNCHW}};
  }
  void run(const OpRun& r) const override {
    const Tensor& dy = r.in[0];
    const std::int64_t n = dy.shape()[0], c = dy.shape()[1], hw = dy.shape()[2] * dy.shape()[3];
    if (r.on_cpu())
      cpu::channel_bias_backward(dy.data(), r.out[0].data_as<float>(), dy.dtype(), n, c, hw, dy.layout());
    else
      cuda::channel_bias_backward(dy.data(), r.out[0].data_as<float>(), dy.dtype(), n, c, hw, dy.layout(),
                                  r.stream());
  }
};

class Conv2dOp final : public Op {
 public:
  explicit Conv2dOp(Conv2dAttrs a) : a_(a) {
    KESTREL_CHECK(a.stride_h > 0 && a.stride_w > 0 && a.dil_h > 0 && a.dil_w > 0 && a.pad_h >= 0 && a.pad_w >= 0,
                  "Conv2d: stride and dilation must be positive and padding non-negative");
  }
  std::string type() const override { return "Conv2d"; }
  std::vector<TypeSpec> infer(const std::vector<const ValueInfo*>& in, const std::string& node) const override {
    if (in.size() != 2 && in.size() != 3) shape_error(type(), node, "number of inputs", "2 or 3", std::to_string(in.size()));
    const ValueInfo& x = *in[0];
    const ValueInfo& w = *in[1];
    expect_activation(type(), node, x, 4, "[N, C, H, W]");
    expect_type(type(), node, "weight", w, 4, x.dtype(), x.layout());
    if (w.shape()[1] != x.shape()[1])
      shape_error(type(), node,
                  "input " + x.describe() + " for weight " + w.describe(),
                  std::to_string(w.shape()[1]) + " input channels (weight is [K, C, R, S])",
                  std::to_string(x.shape()[1]) + " channels");
    if (in.size() == 3 && (in[2]->shape() != Shape{w.shape()[0]} || in[2]->dtype() != DType::kFloat32))
      shape_error(type(), node, "bias " + in[2]->describe(), "[" + std::to_string(w.shape()[0]) + "] fp32",
                  in[2]->shape().to_string() + " " + dtype_name(in[2]->dtype()));
    const Conv2dDesc d = make_desc(a_, x, w);
    const std::int64_t p = d.out_h(), q = d.out_w();
    if (p <= 0 || q <= 0)
      shape_error(type(), node, "output size for input " + x.describe() + " and window " +
                  std::to_string(d.r) + "x" + std::to_string(d.s), "positive height and width",
                  std::to_string(p) + "x" + std::to_string(q));
    return {TypeSpec{Shape{d.n, d.k, p, q}, x.dtype(), x.layout()}};
  }
  std::size_t workspace_bytes(const PlanQuery& q) const override {
    return conv_workspace(q, ConvOp::kForward, make_desc(a_, *q.in[0], *q.in[1]));
  }
  void run(const OpRun& r) const override {
    ValueInfo x, w;
    x.type = {r.in[0].shape(), r.in[0].dtype(), r.in[0].layout()};
    w.type = {r.in[1].shape(), r.in[1].dtype(), r.in[1].layout()};
    const Conv2dDesc d = make_desc(a_, x, w);
    const Tensor& y = r.out[0];
    const std::int64_t hw = y.shape()[2] * y.shape()[3];
    if (r.on_cpu()) {
      cpu::conv2d_forward(d, r.in[0].data(), r.in[1].data(), y.data());
      if (r.in.size() == 3)
        cpu::channel_bias_add(y.data(), r.in[2].data_as<float>(), y.dtype(), d.n, d.k, hw, y.layout());
    } else {
      cuda::conv2d_forward(r.ctx.conv_plans(), r.ctx.cudnn(), d, r.in[0].data(), r.in[1].data(), y.data(),
                           r.workspace, r.workspace_bytes, r.stream());
      if (r.in.size() == 3)
        cuda::channel_bias_add(y.data(), r.in[2].data_as<float>(), y.dtype(), d.n, d.k, hw, y.layout(), r.stream());
    }
  }
  std::vector<Value> backward(Graph& g, const Node& n, const std::vector<Value>& grad_out,
                              const std::vector<bool>& needs) const override {
    std::vector<Value> grads(n.inputs.size());
    const TypeSpec xt = g.info(n.inputs[0]).type;
    const TypeSpec wt = g.info(n.inputs[1]).type;
    if (needs[0])
      grads[0] = g.append_node(std::make_shared<Conv2dBackwardDataOp>(a_, xt), n.name + ".backward_data",
                               {grad_out[0], Value{n.inputs[1]}}, true)[0];
    if (needs[1])
      grads[1] = g.append_node(std::make_shared<Conv2dBackwardFilterOp>(a_, wt), n.name + ".backward_filter",
                               {Value{n.inputs[0]}, grad_out[0]}, true)[0];
    if (n.inputs.size() == 3 && needs[2])
      grads[2] = g.append_node(std::make_shared<ChannelBiasBackwardOp>(), n.name + ".backward_bias",
                               {grad_out[0]}, true)[0];
    return grads;
  }

 private:
  Conv2dAttrs a_;
};
}  // namespace

std::shared_ptr<const Op> make_conv2d_op(const Conv2dAttrs& attrs) { return std::make_shared<Conv2dOp>(attrs); }

}  // namespace kestrel
