// Linear (dense) as graph ops: y = x w^T + b through cuBLAS (CPU: blocked loops), and its
// backward: dx = dy w, dw = dy^T x, db = column sums of dy.
#include "kestrel/core/error.h"
#include "kestrel/core/ops/nn_ops.h"
#include "kestrel/kernels/bias.h"
#include "kestrel/kernels/cpu/bias.h"
#include "kestrel/kernels/cpu/gemm.h"
#include "kestrel/kernels/gemm.h"

namespace kestrel {
namespace {
constexpr std::size_t kCublasWorkspace = std::size_t(4) << 20;

// C[m,n] = op(A) op(B) on either backend (row-major, beta = 0).
void matmul(const OpRun& r, bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, const void* a,
            std::int64_t lda, const void* b, std::int64_t ldb, void* c, std::int64_t ldc, DType t) {
  if (r.on_cpu())
    cpu::gemm(ta, tb, m, n, k, 1.f, a, lda, b, ldb, 0.f, c, ldc, t, false);
  else {
    // cuBLAS must not allocate while a CUDA Graph is being captured: hand it our workspace.
    // gemm binds it after cublasSetStream (which resets the workspace to cuBLAS's own pool).
    cuda::gemm(r.ctx.cublas(), ta, tb, m, n, k, 1.f, a, lda, b, ldb, 0.f, c, ldc, t, false, r.workspace,
               r.workspace_bytes, r.stream());
  }
}

class LinearBackwardOp final : public Op {
 public:
  enum class Part { kData, kWeight, kBias };
  LinearBackwardOp(Part p, TypeSpec out) : part_(p), out_(std::move(out)) {}
  std::string type() const override {
    return part_ == Part::kData ? "LinearBackwardData" : part_ == Part::kWeight ? "LinearBackwardWeight" : "LinearBackwardBias";
  }
  std::vector<TypeSpec> infer(const std::vector<const ValueInfo*>& in, const std::string& node) const override {
    expect_inputs(type(), node, in, part_ == Part::kBias ? 1 : 2);
    return {out_};
  }
  std::size_t workspace_bytes(const PlanQuery& q) const override {
    return q.ctx.device().is_cpu() || part_ == Part::kBias ? 0 : kCublasWorkspace;
  }
  void run(const OpRun& r) const override {
    const Tensor& dy = r.in[0];
    const std::int64_t n = dy.shape()[0], out = dy.shape()[1];
    const DType t = dy.dtype();
    if (part_ == Part::kData) {  // dx[n,in] = dy[n,out] w[out,in]
      const std::int64_t in = r.out[0].shape()[1];
      matmul(r, false, false, n, in, out, dy.data(), out, r.in[1].data(), in, r.out[0].data(), in, t);
    } else if (part_ == Part::kWeight) {  // dw[out,in] = dy^T[out,n] x[n,in]
      const std::int64_t in = r.out[0].shape()[1];
      matmul(r, true, false, out, in, n, dy.data(), out, r.in[1].data(), in, r.out[0].data(), in, t);
    } else if (r.on_cpu()) {
      cpu::bias_backward_rows(dy.data(), r.out[0].data_as<float>(), n, out, t);
    } else {
      cuda::bias_backward_rows(dy.data(), r.out[0].data_as<float>(), n, out, t, r.stream());
    }
  }

 private:
  Part part_;
  TypeSpec out_;
};

class LinearOp final : public Op {
 public:
  std::string type() const override { return "Linear"; }
  std::vector<TypeSpec> infer(const std::vector<const ValueInfo*>& in, const std::string& node) const override {
    if (in.size() != 2 && in.size() != 3) shape_error(type(), node, "number of inputs", "2 or 3", std::to_string(in.size()));
    const ValueInfo& x = *in[0];
    const ValueInfo& w = *in[1];
    expect_activation(type(), node, x, 2, "[N, features]");
    expect_type(type(), node, "weight", w, 2, x.dtype(), Layout::kNCHW);
    if (w.shape()[1] != x.shape()[1])
      shape_error(type(), node, "input " + x.describe() + " for weight " + w.describe(),
                  std::to_string(w.shape()[1]) + " features (weight is [out, in])",
                  std::to_string(x.shape()[1]));
    if (in.size() == 3 && (in[2]->shape() != Shape{w.shape()[0]} || in[2]->dtype() != DType::kFloat32))
      shape_error(type(), node, "bias " + in[2]->describe(), "[" + std::to_string(w.shape()[0]) + "] fp32",
                  in[2]->shape().to_string() + " " + dtype_name(in[2]->dtype()));
    return {TypeSpec{Shape{x.shape()[0], w.shape()[0]}, x.dtype(), Layout::kNCHW}};
  }
  std::size_t workspace_bytes(const PlanQuery& q) const override {
    return q.ctx.device().is_cpu() ? 0 : kCublasWorkspace;
  }
  void run(const OpRun& r) const override {
    const Tensor &x = r.in[0], &w = r.in[1], &y = r.out[0];
    const std::int64_t n = x.shape()[0], in = x.shape()[1], out = w.shape()[0];
    matmul(r, false, true, n, out, in, x.data(), in, w.data(), in, y.data(), out, x.dtype());
    if (r.in.size() == 3) {
      if (r.on_cpu())
        cpu::bias_add_rows(y.data(), r.in[2].data_as<float>(), n, out, y.dtype());
      else
        cuda::bias_add_rows(y.data(), r.in[2].data_as<float>(), n, out, y.dtype(), r.stream());
    }
  }
  std::vector<Value> backward(Graph& g, const Node& n, const std::vector<Value>& grad_out,
                              const std::vector<bool>& needs) const override {
    using P = LinearBackwardOp::Part;
    std::vector<Value> grads(n.inputs.size());
    if (needs[0])
      grads[0] = g.append_node(std::make_shared<LinearBackwardOp>(P::kData, g.info(n.inputs[0]).type),
                               n.name + ".backward_data", {grad_out[0], Value{n.inputs[1]}}, true)[0];
    if (needs[1])
      grads[1] = g.append_node(std::make_shared<LinearBackwardOp>(P::kWeight, g.info(n.inputs[1]).type),
                               n.name + ".backward_weight", {grad_out[0], Value{n.inputs[0]}}, true)[0];
    if (n.inputs.size() == 3 && needs[2])
      grads[2] = g.append_node(std::make_shared<LinearBackwardOp>(P::kBias, g.info(n.inputs[2]).type),
                               n.name + ".backward_bias", {grad_out[0]}, true)[0];
    return grads;
  }
};
}  // namespace

std::shared_ptr<const Op> make_linear_op() { return std::make_shared<LinearOp>(); }

}  // namespace kestrel
