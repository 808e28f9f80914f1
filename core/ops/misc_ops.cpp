// Flatten, Dropout, Softmax and softmax cross-entropy as graph ops.
#include <cuda_runtime.h>

#include <cstring>

#include "kestrel/core/cuda_check_internal.h"
#include "kestrel/core/error.h"
#include "kestrel/core/ops/nn_ops.h"
#include "kestrel/kernels/cpu/dropout.h"
#include "kestrel/kernels/cpu/layout_convert.h"
#include "kestrel/kernels/cpu/loss.h"
#include "kestrel/kernels/layout_convert.h"
#include "kestrel/kernels/loss.h"

namespace kestrel {
namespace {
void copy_bytes(const OpRun& r, void* dst, const void* src, std::size_t bytes) {
  if (bytes == 0 || dst == src) return;
  if (r.on_cpu())
    std::memcpy(dst, src, bytes);
  else
    KESTREL_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, r.stream()));
}

// Between [N,C,H,W] (in `image` type) and [N,C*H*W] in logical order. NHWC with H*W > 1 and
// C > 1 needs a permutation; otherwise memory order already is the logical order.
bool needs_permute(const TypeSpec& image) {
  return image.layout == Layout::kNHWC && image.shape[1] > 1 && image.shape[2] * image.shape[3] > 1;
}

class UnflattenOp final : public Op {
 public:
  explicit UnflattenOp(TypeSpec image) : image_(std::move(image)) {}
  std::string type() const override { return "Unflatten"; }
  std::vector<TypeSpec> infer(const std::vector<const ValueInfo*>& in, const std::string& node) const override {
    expect_inputs(type(), node, in, 1);
    return {image_};
  }
  void run(const OpRun& r) const override {
    const Shape& s = image_.shape;
    if (!needs_permute(image_)) return copy_bytes(r, r.out[0].data(), r.in[0].data(), r.in[0].nbytes());
    if (r.on_cpu())
      cpu::nchw_to_nhwc(r.in[0].data(), r.out[0].data(), image_.dtype, s[0], s[1], s[2], s[3]);
    else
      cuda::nchw_to_nhwc(r.in[0].data(), r.out[0].data(), image_.dtype, s[0], s[1], s[2], s[3], r.stream());
  }

 private:
  TypeSpec image_;
};

class FlattenOp final : public Op {
 public:
  std::string type() const override { return "Flatten"; }
  std::vector<TypeSpec> infer(const std::vector<const ValueInfo*>& in, const std::string& node) const override {
    expect_inputs(type(), node, in, 1);
    const ValueInfo& x = *in[0];
    if (x.shape().rank() != 4) shape_error(type(), node, "input " + x.describe(), "[N, C, H, W]", x.shape().to_string());
    const Shape& s = x.shape();
    return {TypeSpec{Shape{s[0], s[1] * s[2] * s[3]}, x.dtype(), Layout::kNCHW}};
  }
  void run(const OpRun& r) const override {
    const Tensor& x = r.in[0];
    const TypeSpec t{x.shape(), x.dtype(), x.layout()};
    if (!needs_permute(t)) return copy_bytes(r, r.out[0].data(), x.data(), x.nbytes());
    const Shape& s = x.shape();
    if (r.on_cpu())
      cpu::nhwc_to_nchw(x.data(), r.out[0].data(), x.dtype(), s[0], s[1], s[2], s[3]);
    else
      cuda::nhwc_to_nchw(x.data(), r.out[0].data(), x.dtype(), s[0], s[1], s[2], s[3], r.stream());
  }
  std::vector<Value> backward(Graph& g, const Node& n, const std::vector<Value>& grad_out,
                              const std::vector<bool>&) const override {
    return {g.append_node(std::make_shared<UnflattenOp>(g.info(n.inputs[0]).type), n.name + ".backward",
                          {grad_out[0]}, true)[0]};
  }
};

// Dropout forward (backward = false) or backward (true); the mask is regenerated from
// (seed, step offset + slot, index) in both.
class DropoutOp final : public Op {
 public:
  DropoutOp(float p, DropoutMode mode, int slot, bool backward)
      : p_(p), mode_(mode), slot_(slot), backward_(backward) {
    DropoutParams check;
    check.p = p;
    validate_dropout(check);
  }
  std::string type() const override { return backward_ ? "DropoutBackward" : "Dropout"; }
  std::vector<TypeSpec> infer(const std::vector<const ValueInfo*>& in, const std::string& node) const override {
    expect_inputs(type(), node, in, 1);
    if (!is_floating(in[0]->dtype()))
      shape_error(type(), node, "input " + in[0]->describe(), "a floating dtype", dtype_name(in[0]->dtype()));
    return {in[0]->type};
  }
  void run(const OpRun& r) const override {
    DropoutParams p;
    p.p = p_;
    p.mode = mode_;
    p.training = r.sample_dropout;
    p.seed = r.state.seed;
    p.offset = static_cast<std::uint64_t>(slot_);
    p.offset_ptr = r.state.rng_offset;
    const Tensor &x = r.in[0], &y = r.out[0];
    if (r.on_cpu()) {
      if (backward_) cpu::dropout_backward(x.data(), y.data(), x.numel(), x.dtype(), p);
      else cpu::dropout_forward(x.data(), y.data(), x.numel(), x.dtype(), p);
    } else {
      if (backward_) cuda::dropout_backward(x.data(), y.data(), x.numel(), x.dtype(), p, r.stream());
      else cuda::dropout_forward(x.data(), y.data(), x.numel(), x.dtype(), p, r.stream());
    }
  }
  std::vector<Value> backward(Graph& g, const Node& n, const std::vector<Value>& grad_out,
                              const std::vector<bool>&) const override {
    return {g.append_node(std::make_shared<DropoutOp>(p_, mode_, slot_, true), n.name + ".backward",
                          {grad_out[0]}, true)[0]};
  }

 private:
  float p_;
  DropoutMode mode_;
  int slot_;
  bool backward_;
};


class SoftmaxBackwardOp final : public Op {
 public:
  std::string type() const override { return "SoftmaxBackward"; }
  std::vector<TypeSpec> infer(const std::vector<const ValueInfo*>& in, const std::string& node) const override {
    expect_inputs(type(), node, in, 2);
    return {in[1]->type};
  }
  void run(const OpRun& r) const override {
    const Tensor& y = r.in[1];
    if (r.on_cpu())
      cpu::softmax_backward(r.in[0].data(), y.data(), r.out[0].data(), y.dtype(), y.shape()[0], y.shape()[1]);
    else
      cuda::softmax_backward(r.in[0].data(), y.data(), r.out[0].data(), y.dtype(), y.shape()[0], y.shape()[1],
                             r.stream());
  }
};

class SoftmaxOp final : public Op {
 public:
  std::string type() const override { return "Softmax"; }
  std::vector<TypeSpec> infer(const std::vector<const ValueInfo*>& in, const std::string& node) const override {
    expect_inputs(type(), node, in, 1);
    expect_activation(type(), node, *in[0], 2, "[N, classes]");
    return {in[0]->type};
  }
  void run(const OpRun& r) const override {
    const Tensor& x = r.in[0];
    if (r.on_cpu())
      cpu::softmax_forward(x.data(), r.out[0].data(), x.dtype(), x.shape()[0], x.shape()[1]);
    else
      cuda::softmax_forward(x.data(), r.out[0].data(), x.dtype(), x.shape()[0], x.shape()[1], r.stream());
  }
  std::vector<Value> backward(Graph& g, const Node& n, const std::vector<Value>& grad_out,
                              const std::vector<bool>&) const override {
    return {g.append_node(std::make_shared<SoftmaxBackwardOp>(), n.name + ".backward",
                          {grad_out[0], Value{n.outputs[0]}}, true)[0]};
  }
};

class SoftmaxCrossEntropyOp final : public Op {
 public:
  explicit SoftmaxCrossEntropyOp(float smoothing) : smoothing_(smoothing) {
    KESTREL_CHECK(smoothing >= 0.f && smoothing < 1.f, "label smoothing must be in [0, 1), got ", smoothing);
  }
  std::string type() const override { return "SoftmaxCrossEntropy"; }
  // The fused gradient (output 1) is written in training only.
  bool writes_output(std::size_t i, bool training) const override { return i == 0 || training; }
  std::vector<std::string> output_names() const override { return {"loss", "dlogits"}; }
  std::vector<TypeSpec> infer(const std::vector<const ValueInfo*>& in, const std::string& node) const override {
    expect_inputs(type(), node, in, 2);
    expect_activation(type(), node, *in[0], 2, "[N, classes]");
    const ValueInfo& labels = *in[1];
    if (labels.shape() != Shape{in[0]->shape()[0]} || labels.dtype() != DType::kInt32)
      shape_error(type(), node, "labels " + labels.describe(), "[" + std::to_string(in[0]->shape()[0]) + "] int32",
                  labels.shape().to_string() + " " + dtype_name(labels.dtype()));
    return {TypeSpec{Shape{1}, DType::kFloat32, Layout::kNCHW}, in[0]->type};
  }
  std::size_t workspace_bytes(const PlanQuery& q) const override {
    if (q.ctx.device().is_cpu()) return 0;
    return cuda::softmax_cross_entropy_workspace_bytes(q.in[0]->shape()[0], q.in[0]->shape()[1]);
  }
  void run(const OpRun& r) const override {
    const Tensor& z = r.in[0];
    const std::int64_t n = z.shape()[0], k = z.shape()[1];
    const auto* labels = r.in[1].data_as<std::int32_t>();
    float* loss = r.out[0].data_as<float>();
    void* dz = r.training ? r.out[1].data() : nullptr;  // the fused gradient, only when training
    if (r.on_cpu())
      cpu::softmax_cross_entropy(z.data(), z.dtype(), labels, n, k, smoothing_, loss, dz, nullptr, r.workspace);
    else
      cuda::softmax_cross_entropy(z.data(), z.dtype(), labels, n, k, smoothing_, loss, dz, nullptr, r.workspace,
                                  r.stream());
  }
  std::vector<Value> backward(Graph&, const Node& n, const std::vector<Value>& grad_out,
                              const std::vector<bool>&) const override {
    KESTREL_CHECK(grad_out[0].is_seed() && !grad_out[1].valid(), type(), " '", n.name,
                  "': the cross-entropy loss must be the graph's loss and nothing may consume it");
    return {Value{n.outputs[1]}, Value{}};
  }
  bool takes_loss_seed() const override { return true; }

 private:
  float smoothing_;
};
}  // namespace

std::shared_ptr<const Op> make_flatten_op() { return std::make_shared<FlattenOp>(); }
std::shared_ptr<const Op> make_dropout_op(float p, DropoutMode mode, int rng_slot) {
  return std::make_shared<DropoutOp>(p, mode, rng_slot, false);
}
std::shared_ptr<const Op> make_softmax_cross_entropy_op(float label_smoothing) {
  return std::make_shared<SoftmaxCrossEntropyOp>(label_smoothing);
}
std::shared_ptr<const Op> make_softmax_op() { return std::make_shared<SoftmaxOp>(); }

}  // namespace kestrel
