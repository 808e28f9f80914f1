#include "kestrel/core/ops/batchnorm_op.h"

#include "kestrel/core/error.h"
#include "kestrel/kernels/cpu/batchnorm.h"

namespace kestrel {
namespace {
const char* act_suffix(BnActivation a) {
  return a == BnActivation::kRelu ? "+ReLU" : a == BnActivation::kAddRelu ? "+Add+ReLU" : "";
}

BatchNormDims dims_of(const Tensor& x) {
  return BatchNormDims{x.shape()[0], x.shape()[1], x.shape()[2] * x.shape()[3], x.layout()};
}

BatchNormDims dims_of(const ValueInfo& x) {
  return BatchNormDims{x.shape()[0], x.shape()[1], x.shape()[2] * x.shape()[3], x.layout()};
}

void expect_channel_vector(const std::string& op, const std::string& node, const std::string& role,
                           const ValueInfo& v, std::int64_t c) {
  if (v.shape() != Shape{c} || v.dtype() != DType::kFloat32)
    shape_error(op, node, role + " " + v.describe(), "[" + std::to_string(c) + "] fp32",
                v.shape().to_string() + " " + dtype_name(v.dtype()));
}

// Inputs: (dy, x, [y if act != none], gamma, mean, invstd).
// Outputs: (dx, dgamma, dbeta, [dresidual if act == add_relu]).
class BatchNormBackwardOp final : public Op {
 public:
  explicit BatchNormBackwardOp(BnActivation act) : act_(act) {}
  std::string type() const override { return std::string("BatchNorm2dBackward") + act_suffix(act_); }
  std::vector<std::string> output_names() const override {
    if (act_ == BnActivation::kAddRelu) return {"dx", "dgamma", "dbeta", "dresidual"};
    return {"dx", "dgamma", "dbeta"};
  }
  bool has_y() const { return act_ != BnActivation::kNone; }
  std::vector<TypeSpec> infer(const std::vector<const ValueInfo*>& in, const std::string& node) const override {
    expect_inputs(type(), node, in, has_y() ? 6 : 5);
    const ValueInfo& x = *in[1];
    expect_type(type(), node, "x", x, 4, x.dtype(), x.layout());
    expect_type(type(), node, "dy", *in[0], 4, x.dtype(), x.layout());
    if (in[0]->shape() != x.shape()) shape_error(type(), node, "dy", x.shape().to_string(), in[0]->shape().to_string());
    const int p = has_y() ? 3 : 2;
    const std::int64_t c = x.shape()[1];
    expect_channel_vector(type(), node, "gamma", *in[p], c);
    expect_channel_vector(type(), node, "mean", *in[p + 1], c);
    expect_channel_vector(type(), node, "invstd", *in[p + 2], c);
    std::vector<TypeSpec> out = {x.type, in[p]->type, in[p]->type};
    if (act_ == BnActivation::kAddRelu) out.push_back(x.type);
    return out;
  }
  std::size_t workspace_bytes(const PlanQuery& q) const override {
    return q.ctx.device().is_cpu() ? 0 : cuda::batchnorm_workspace_bytes(dims_of(*q.in[1]));
  }
  void run(const OpRun& r) const override {
    const int p = has_y() ? 3 : 2;
    const Tensor& x = r.in[1];
    const void* y = has_y() ? r.in[2].data() : nullptr;
    void* dres = act_ == BnActivation::kAddRelu ? r.out[3].data() : nullptr;
    const BatchNormDims d = dims_of(x);
    const auto* gamma = r.in[p].data_as<float>();
    const auto* mean = r.in[p + 1].data_as<float>();
    const auto* invstd = r.in[p + 2].data_as<float>();
    if (r.on_cpu())
      cpu::batchnorm_backward(r.in[0].data(), x.data(), y, x.dtype(), d, gamma, mean, invstd, r.out[0].data(),
                              dres, r.out[1].data_as<float>(), r.out[2].data_as<float>(), act_, r.workspace);
    else
      cuda::batchnorm_backward(r.in[0].data(), x.data(), y, x.dtype(), d, gamma, mean, invstd, r.out[0].data(),
                               dres, r.out[1].data_as<float>(), r.out[2].data_as<float>(), act_, r.workspace,
                               r.stream());
  }

 private:
  BnActivation act_;
};
class BatchNormReluRecomputeOp final : public Op {
 public:
  std::string type() const override { return "BatchNorm2dRecompute+ReLU"; }
  std::vector<TypeSpec> infer(const std::vector<const ValueInfo*>& in, const std::string& node) const override {
    expect_inputs(type(), node, in, 5);
    const ValueInfo& x = *in[0];
    expect_activation(type(), node, x, 4, "[N, C, H, W]");
    const std::int64_t c = x.shape()[1];
    const char* roles[] = {"weight (gamma)", "bias (beta)", "mean", "invstd"};
    for (int i = 0; i < 4; ++i) expect_channel_vector(type(), node, roles[i], *in[1 + i], c);
    return {x.type};
  }
  void run(const OpRun& r) const override {
    const Tensor& x = r.in[0];
    const auto* gamma = r.in[1].data_as<float>();
    const auto* beta = r.in[2].data_as<float>();
    const auto* mean = r.in[3].data_as<float>();
    const auto* invstd = r.in[4].data_as<float>();
    if (r.on_cpu())
      cpu::batchnorm_forward_apply(x.data(), nullptr, r.out[0].data(), x.dtype(), dims_of(x), gamma, beta,
                                   mean, invstd, BnActivation::kRelu);
    else
      cuda::batchnorm_forward_apply(x.data(), nullptr, r.out[0].data(), x.dtype(), dims_of(x), gamma, beta,
                                    mean, invstd, BnActivation::kRelu, r.stream());
  }
};
}  // namespace

std::shared_ptr<const Op> make_batchnorm_relu_recompute_op() {
  return std::make_shared<BatchNormReluRecomputeOp>();
}

BatchNormOp::BatchNormOp(BatchNormAttrs attrs, BnActivation act) : attrs_(attrs), act_(act) {
  KESTREL_CHECK(attrs.eps > 0.f, "BatchNorm2d eps must be > 0, got ", attrs.eps);
  KESTREL_CHECK(attrs.momentum >= 0.f && attrs.momentum <= 1.f, "BatchNorm2d momentum must be in [0, 1], got ",
                attrs.momentum);
}

std::string BatchNormOp::type() const { return std::string("BatchNorm2d") + act_suffix(act_); }

std::shared_ptr<const Op> BatchNormOp::with_activation(BnActivation act) const {
  return std::make_shared<BatchNormOp>(attrs_, act);
}

std::vector<TypeSpec> BatchNormOp::infer(const std::vector<const ValueInfo*>& in, const std::string& node) const {
  expect_inputs(type(), node, in, act_ == BnActivation::kAddRelu ? 6 : 5);
  const ValueInfo& x = *in[0];
  expect_activation(type(), node, x, 4, "[N, C, H, W]");
  const std::int64_t c = x.shape()[1];
  const char* roles[] = {"weight (gamma)", "bias (beta)", "running_mean", "running_var"};
  for (int i = 0; i < 4; ++i) expect_channel_vector(type(), node, roles[i], *in[1 + i], c);
  if (act_ == BnActivation::kAddRelu) {
    const ValueInfo& r = *in[5];
    if (r.shape() != x.shape() || r.dtype() != x.dtype() || r.layout() != x.layout())
      shape_error(type(), node, "residual " + r.describe(), x.describe(), r.describe());
  }
  TypeSpec stat{Shape{c}, DType::kFloat32, Layout::kNCHW};
  return {x.type, stat, stat};
}

// Only training reduces statistics (into per-block partials); inference normalises with the
// running statistics and needs no scratch.
std::size_t BatchNormOp::workspace_bytes(const PlanQuery& q) const {
  return q.ctx.device().is_cpu() || !q.training ? 0 : cuda::batchnorm_workspace_bytes(dims_of(*q.in[0]));
}

void BatchNormOp::run(const OpRun& r) const {
  const Tensor& x = r.in[0];
  const BatchNormDims d = dims_of(x);
  const auto* gamma = r.in[1].data_as<float>();
  const auto* beta = r.in[2].data_as<float>();
  auto* rmean = r.in[3].data_as<float>();  // running statistics are updated in place
  auto* rvar = r.in[4].data_as<float>();
  const void* residual = act_ == BnActivation::kAddRelu ? r.in[5].data() : nullptr;
  void* y = r.out[0].data();
  if (r.training) {
    auto* mean = r.out[1].data_as<float>();
    auto* invstd = r.out[2].data_as<float>();
    if (r.on_cpu())
      cpu::batchnorm_forward_training(x.data(), residual, y, x.dtype(), d, gamma, beta, attrs_.eps,
                                      attrs_.momentum, rmean, rvar, mean, invstd, act_, r.workspace);
    else
      cuda::batchnorm_forward_training(x.data(), residual, y, x.dtype(), d, gamma, beta, attrs_.eps,
                                       attrs_.momentum, rmean, rvar, mean, invstd, act_, r.workspace,
                                       r.stream());
  } else {
    if (r.on_cpu())
      cpu::batchnorm_forward_inference(x.data(), residual, y, x.dtype(), d, gamma, beta, rmean, rvar,
                                       attrs_.eps, act_);
    else
      cuda::batchnorm_forward_inference(x.data(), residual, y, x.dtype(), d, gamma, beta, rmean, rvar,
                                        attrs_.eps, act_, r.stream());
  }
}

std::vector<Value> BatchNormOp::backward(Graph& g, const Node& n, const std::vector<Value>& grad_out,
                                         const std::vector<bool>&) const {
  KESTREL_CHECK(!grad_out[1].valid() && !grad_out[2].valid(), type(), " '", n.name,
                "': its saved statistics cannot receive gradients");
  std::vector<Value> in = {grad_out[0], Value{n.inputs[0]}};
  if (act_ != BnActivation::kNone) in.push_back(Value{n.outputs[0]});
  in.push_back(Value{n.inputs[1]});
  in.push_back(Value{n.outputs[1]});
  in.push_back(Value{n.outputs[2]});
  const std::vector<Value> g_out =
      g.append_node(std::make_shared<BatchNormBackwardOp>(act_), n.name + ".backward", in, true);
  std::vector<Value> grads(n.inputs.size());
  grads[0] = g_out[0];
  grads[1] = g_out[1];
  grads[2] = g_out[2];
  if (act_ == BnActivation::kAddRelu) grads[5] = g_out[3];
  return grads;
}

std::shared_ptr<const Op> make_batchnorm_op(BatchNormAttrs attrs) {
  return std::make_shared<BatchNormOp>(attrs, BnActivation::kNone);
}

}  // namespace kestrel
