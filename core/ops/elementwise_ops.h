// Elementwise graph ops: Add, Mul, ReLU, Sigmoid, Tanh, Scale, Cast and their backward ops.
// The classes are visible so graph passes can recognise them (fusion looks for ReLU and Add).
#pragma once

#include <memory>

#include "kestrel/core/op.h"

namespace kestrel {

class AddOp final : public Op {
 public:
  std::string type() const override { return "Add"; }
  std::vector<TypeSpec> infer(const std::vector<const ValueInfo*>& in, const std::string& node) const override;
  void run(const OpRun& r) const override;
  std::vector<Value> backward(Graph& g, const Node& n, const std::vector<Value>& grad_out,
                              const std::vector<bool>& needs_grad) const override;
};

// y = f(x) for f in {ReLU, sigmoid, tanh}; backward uses the output y (dx = f'(y) dy).
enum class Activation : std::uint8_t { kRelu, kSigmoid, kTanh };

class ActivationOp final : public Op {
 public:
  explicit ActivationOp(Activation a) : act_(a) {}
  Activation activation() const noexcept { return act_; }
  std::string type() const override;
  std::vector<TypeSpec> infer(const std::vector<const ValueInfo*>& in, const std::string& node) const override;
  void run(const OpRun& r) const override;
  std::vector<Value> backward(Graph& g, const Node& n, const std::vector<Value>& grad_out,
                              const std::vector<bool>& needs_grad) const override;

 private:
  Activation act_;
};

std::shared_ptr<const Op> make_add_op();
std::shared_ptr<const Op> make_mul_op();
std::shared_ptr<const Op> make_relu_op();
std::shared_ptr<const Op> make_sigmoid_op();
std::shared_ptr<const Op> make_tanh_op();
std::shared_ptr<const Op> make_scale_op(float alpha);
std::shared_ptr<const Op> make_cast_op(DType to);

}  // namespace kestrel
