#include "kestrel/core/ops/elementwise_ops.h"

#include "kestrel/core/error.h"
#include "kestrel/kernels/cpu/elementwise.h"
#include "kestrel/kernels/elementwise.h"

namespace kestrel {
namespace {

void expect_floating(const std::string& op, const std::string& node, const ValueInfo& v) {
  if (!is_floating(v.dtype()))
    shape_error(op, node, "input " + v.describe(), "dtype fp32, bf16 or fp16", dtype_name(v.dtype()));
}

// Checks that all inputs share shape, dtype and layout; returns that type.
TypeSpec same_types(const std::string& op, const std::string& node, const std::vector<const ValueInfo*>& in,
                    std::size_t count) {
  expect_inputs(op, node, in, count);
  expect_floating(op, node, *in[0]);
  for (std::size_t i = 1; i < in.size(); ++i) {
    const ValueInfo& a = *in[0];
    const ValueInfo& b = *in[i];
    if (a.shape() != b.shape())
      shape_error(op, node, "input " + std::to_string(i) + " " + b.describe(),
                  "the shape of input 0, " + a.shape().to_string(), b.shape().to_string());
    if (a.dtype() != b.dtype() || a.layout() != b.layout())
      shape_error(op, node, "input " + std::to_string(i) + " " + b.describe(),
                  std::string(dtype_name(a.dtype())) + " " + layout_name(a.layout()),
                  std::string(dtype_name(b.dtype())) + " " + layout_name(b.layout()));
  }
  return in[0]->type;
}

const char* activation_name(Activation a) {
  return a == Activation::kRelu ? "ReLU" : a == Activation::kSigmoid ? "Sigmoid" : "Tanh";
}

// dx = f'(y) * dy from the forward output y: inputs (dy, y).
class ActivationBackwardOp final : public Op {
 public:
  explicit ActivationBackwardOp(Activation a) : act_(a) {}
  std::string type() const override { return std::string(activation_name(act_)) + "Backward"; }
  std::vector<TypeSpec> infer(const std::vector<const ValueInfo*>& in, const std::string& node) const override {
    return {same_types(type(), node, in, 2)};
  }
  void run(const OpRun& r) const override {
    const Tensor &dy = r.in[0], &y = r.in[1], &dx = r.out[0];
    const std::int64_t n = dy.numel();
    const DType t = dy.dtype();
    switch (act_) {
      case Activation::kRelu:
        if (r.on_cpu()) cpu::relu_backward(dy.data(), y.data(), dx.data(), n, t);
        else cuda::relu_backward(dy.data(), y.data(), dx.data(), n, t, r.stream());
        break;
      case Activation::kSigmoid:
        if (r.on_cpu()) cpu::sigmoid_backward(dy.data(), y.data(), dx.data(), n, t);
        else cuda::sigmoid_backward(dy.data(), y.data(), dx.data(), n, t, r.stream());
        break;
      case Activation::kTanh:
        if (r.on_cpu()) cpu::tanh_backward(dy.data(), y.data(), dx.data(), n, t);
        else cuda::tanh_backward(dy.data(), y.data(), dx.data(), n, t, r.stream());
        break;
    }
  }

 private:
  Activation act_;
};

class MulBackwardOp final : public Op {
 public:
  std::string type() const override { return "MulBackward"; }
  std::vector<std::string> output_names() const override { return {"da", "db"}; }
  std::vector<TypeSpec> infer(const std::vector<const ValueInfo*>& in, const std::string& node) const override {
    const TypeSpec t = same_types(type(), node, in, 3);  // (dy, a, b)
    return {t, t};
  }
  void run(const OpRun& r) const override {
    const std::int64_t n = r.in[0].numel();
    if (r.on_cpu())
      cpu::mul_backward(r.in[0].data(), r.in[1].data(), r.in[2].data(), r.out[0].data(), r.out[1].data(), n,
                        r.in[0].dtype());
    else
      cuda::mul_backward(r.in[0].data(), r.in[1].data(), r.in[2].data(), r.out[0].data(), r.out[1].data(), n,
                         r.in[0].dtype(), r.stream());
  }
};

class MulOp final : public Op {
 public:
  std::string type() const override { return "Mul"; }
  std::vector<TypeSpec> infer(const std::vector<const ValueInfo*>& in, const std::string& node) const override {
    return {same_types(type(), node, in, 2)};
  }
  void run(const OpRun& r) const override {
    const std::int64_t n = r.in[0].numel();
    if (r.on_cpu()) cpu::mul(r.in[0].data(), r.in[1].data(), r.out[0].data(), n, r.in[0].dtype());
    else cuda::mul(r.in[0].data(), r.in[1].data(), r.out[0].data(), n, r.in[0].dtype(), r.stream());
  }
  std::vector<Value> backward(Graph& g, const Node& n, const std::vector<Value>& grad_out,
                              const std::vector<bool>&) const override {
    return g.append_node(std::make_shared<MulBackwardOp>(), n.name + ".backward",
                         {grad_out[0], Value{n.inputs[0]}, Value{n.inputs[1]}}, true);
  }
};

class ScaleOp final : public Op {
 public:
  explicit ScaleOp(float alpha) : alpha_(alpha) {}
  std::string type() const override { return "Scale"; }
  std::vector<TypeSpec> infer(const std::vector<const ValueInfo*>& in, const std::string& node) const override {
    return {same_types(type(), node, in, 1)};
  }
  void run(const OpRun& r) const override {
    const std::int64_t n = r.in[0].numel();
    if (r.on_cpu()) cpu::scale(r.in[0].data(), r.out[0].data(), n, r.in[0].dtype(), alpha_);
    else cuda::scale(r.in[0].data(), r.out[0].data(), n, r.in[0].dtype(), alpha_, r.stream());
  }
  std::vector<Value> backward(Graph& g, const Node& n, const std::vector<Value>& grad_out,
                              const std::vector<bool>&) const override {
    return {g.append_node(std::make_shared<ScaleOp>(alpha_), n.name + ".backward", {grad_out[0]}, true)[0]};
  }

 private:
  float alpha_;
};

class CastOp final : public Op {
 public:
  explicit CastOp(DType to) : to_(to) {
    KESTREL_CHECK(is_floating(to), "cast target must be fp32, bf16 or fp16, got ", dtype_name(to));
  }
  std::string type() const override { return std::string("Cast<") + dtype_name(to_) + ">"; }
  std::vector<TypeSpec> infer(const std::vector<const ValueInfo*>& in, const std::string& node) const override {
    expect_inputs(type(), node, in, 1);
    expect_floating(type(), node, *in[0]);
    TypeSpec t = in[0]->type;
    t.dtype = to_;
    return {t};
  }
  void run(const OpRun& r) const override {
    const std::int64_t n = r.in[0].numel();
    if (r.on_cpu()) cpu::cast(r.in[0].data(), r.in[0].dtype(), r.out[0].data(), to_, n);
    else cuda::cast(r.in[0].data(), r.in[0].dtype(), r.out[0].data(), to_, n, r.stream());
  }
  std::vector<Value> backward(Graph& g, const Node& n, const std::vector<Value>& grad_out,
                              const std::vector<bool>&) const override {
    const DType from = g.info(n.inputs[0]).dtype();
    return {g.append_node(std::make_shared<CastOp>(from), n.name + ".backward", {grad_out[0]}, true)[0]};
  }

 private:
  DType to_;
};
}  // namespace

std::vector<TypeSpec> AddOp::infer(const std::vector<const ValueInfo*>& in, const std::string& node) const {
  return {same_types(type(), node, in, 2)};
}

void AddOp::run(const OpRun& r) const {
  const std::int64_t n = r.in[0].numel();
  if (r.on_cpu()) cpu::add(r.in[0].data(), r.in[1].data(), r.out[0].data(), n, r.in[0].dtype());
  else cuda::add(r.in[0].data(), r.in[1].data(), r.out[0].data(), n, r.in[0].dtype(), r.stream());
}

std::vector<Value> AddOp::backward(Graph&, const Node&, const std::vector<Value>& grad_out,
                                   const std::vector<bool>&) const {
  return {grad_out[0], grad_out[0]};  // d(a+b)/da = d(a+b)/db = 1: both share the gradient
}

std::string ActivationOp::type() const { return activation_name(act_); }

std::vector<TypeSpec> ActivationOp::infer(const std::vector<const ValueInfo*>& in, const std::string& node) const {
  return {same_types(type(), node, in, 1)};
}

void ActivationOp::run(const OpRun& r) const {
  const Tensor &x = r.in[0], &y = r.out[0];
  const std::int64_t n = x.numel();
  const DType t = x.dtype();
  switch (act_) {
    case Activation::kRelu:
      if (r.on_cpu()) cpu::relu(x.data(), y.data(), n, t);
      else cuda::relu(x.data(), y.data(), n, t, r.stream());
      break;
    case Activation::kSigmoid:
      if (r.on_cpu()) cpu::sigmoid(x.data(), y.data(), n, t);
      else cuda::sigmoid(x.data(), y.data(), n, t, r.stream());
      break;
    case Activation::kTanh:
      if (r.on_cpu()) cpu::tanh_forward(x.data(), y.data(), n, t);
      else cuda::tanh_forward(x.data(), y.data(), n, t, r.stream());
      break;
  }
}

std::vector<Value> ActivationOp::backward(Graph& g, const Node& n, const std::vector<Value>& grad_out,
                                          const std::vector<bool>&) const {
  return {g.append_node(std::make_shared<ActivationBackwardOp>(act_), n.name + ".backward",
                        {grad_out[0], Value{n.outputs[0]}}, true)[0]};
}

std::shared_ptr<const Op> make_add_op() { return std::make_shared<AddOp>(); }
std::shared_ptr<const Op> make_mul_op() { return std::make_shared<MulOp>(); }
std::shared_ptr<const Op> make_relu_op() { return std::make_shared<ActivationOp>(Activation::kRelu); }
std::shared_ptr<const Op> make_sigmoid_op() { return std::make_shared<ActivationOp>(Activation::kSigmoid); }
std::shared_ptr<const Op> make_tanh_op() { return std::make_shared<ActivationOp>(Activation::kTanh); }
std::shared_ptr<const Op> make_scale_op(float alpha) { return std::make_shared<ScaleOp>(alpha); }
std::shared_ptr<const Op> make_cast_op(DType to) { return std::make_shared<CastOp>(to); }

}  // namespace kestrel
