// BatchNorm2d as a graph op: inputs (x, gamma, beta, running_mean, running_var[, residual]),
// outputs (y, saved mean, saved inverse std). Training normalises with batch statistics and
// updates the running statistics in place (PyTorch's momentum and unbiased variance);
// inference uses the running statistics. act = relu / add_relu makes it the fused
// BN+ReLU / BN+Add+ReLU kernel (the fusion pass creates those).
#pragma once

#include <memory>

#include "kestrel/core/op.h"
#include "kestrel/kernels/batchnorm.h"

namespace kestrel {

struct BatchNormAttrs {
  float eps = 1e-5f;
  float momentum = 0.1f;
};

class BatchNormOp final : public Op {
 public:
  BatchNormOp(BatchNormAttrs attrs, BnActivation act);
  std::string type() const override;
  std::vector<std::string> output_names() const override { return {"y", "mean", "invstd"}; }
  // The saved mean and inverse std are written in training only.
  bool writes_output(std::size_t i, bool training) const override { return i == 0 || training; }
  std::vector<TypeSpec> infer(const std::vector<const ValueInfo*>& in, const std::string& node) const override;
  void run(const OpRun& r) const override;
  std::size_t workspace_bytes(const PlanQuery& q) const override;
  std::vector<Value> backward(Graph& g, const Node& n, const std::vector<Value>& grad_out,
                              const std::vector<bool>& needs_grad) const override;

  BnActivation activation() const noexcept { return act_; }
  const BatchNormAttrs& attrs() const noexcept { return attrs_; }
  std::shared_ptr<const Op> with_activation(BnActivation act) const;

 private:
  BatchNormAttrs attrs_;
  BnActivation act_;
};

std::shared_ptr<const Op> make_batchnorm_op(BatchNormAttrs attrs);

// Recomputes a training BN+ReLU output for backward from the forward's input and the statistics
// it saved: inputs (x, gamma, beta, saved mean, saved invstd), output y, bit-identical to the
// forward's y (batchnorm_forward_apply). Created by recompute_batchnorm_relu (core/recompute.h)
// after autodiff; it has no backward of its own.
std::shared_ptr<const Op> make_batchnorm_relu_recompute_op();

}  // namespace kestrel
