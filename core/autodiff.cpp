#include "kestrel/core/autodiff.h"

#include <algorithm>

#include "kestrel/core/error.h"
#include "kestrel/core/op.h"
#include "kestrel/core/ops/elementwise_ops.h"

namespace kestrel {

// `name` by value: callers pass a value's name, a reference into the graph's values, which each
// appended Add may reallocate.
Value sum_gradients(Graph& g, const std::vector<Value>& parts, std::string name) {
  KESTREL_CHECK(!parts.empty(), "sum_gradients of nothing for '", name, "'");
  Value acc = parts[0];
  for (std::size_t i = 1; i < parts.size(); ++i) {
    KESTREL_CHECK(!parts[i].is_seed() && !acc.is_seed(), "the loss '", name, "' is used by other nodes");
    acc = g.append_node(make_add_op(), name + ".grad_sum", {acc, parts[i]}, true)[0];
  }
  return acc;
}

namespace {
// d loss / d loss enters the backward pass as a symbolic seed that only ops with
// Op::takes_loss_seed() accept (softmax_cross_entropy; a sum of losses is not supported). A loss
// made another way gets this error, naming the node, instead of an op's complaint about input
// id -2 deep in the backward pass.
void check_loss_takes_the_seed(const Graph& g, const std::vector<bool>& requires_grad,
                               const std::vector<int>& producer) {
  const int v = g.loss().id;
  if (!requires_grad[static_cast<std::size_t>(v)]) return;  // no gradient flows from it
  const std::string& loss = g.info(g.loss()).name;
  const int n = producer[static_cast<std::size_t>(v)];
  KESTREL_CHECK(n >= 0, "the loss '", loss, "' is made by no node (it is a graph ", value_kind_name(g.info(g.loss()).kind),
                "): make it the output of softmax_cross_entropy");
  const Node& node = g.nodes()[static_cast<std::size_t>(n)];
  KESTREL_CHECK(node.op->takes_loss_seed(), "the loss '", loss, "' must be the output of softmax_cross_entropy "
                "(the only op where d loss / d loss enters the backward pass; sums of losses are not supported); it "
                "comes from ", node.op->type(), " '", node.name, "'");
}
}  // namespace

AutodiffResult append_backward(Graph& g, const std::vector<Value>& inputs) {
  KESTREL_CHECK(g.loss().valid(), "training needs a loss: call Graph::set_loss");
  for (Value v : inputs) {
    const ValueInfo& info = g.info(v);
    KESTREL_CHECK(info.kind == ValueKind::kInput && is_floating(info.dtype()), "a gradient was asked for ",
                  info.describe(), ", which is not a floating-point graph input (it is a ",
                  value_kind_name(info.kind), ")");
  }
  const std::size_t nvalues = g.values().size();
  const std::size_t nforward = g.nodes().size();

  // requires[v]: v depends on a trainable parameter.
  std::vector<bool> requires_grad(nvalues, false);
  for (const ParamInfo& p : g.params()) {
    if (!p.trainable) continue;
    requires_grad[p.value] = true;
    if (p.shadow >= 0) requires_grad[p.shadow] = true;
  }
  for (Value v : inputs) requires_grad[v.id] = true;
  for (std::size_t n = 0; n < nforward; ++n) {
    const Node& node = g.nodes()[n];
    bool any = false;
    for (int i : node.inputs) any = any || requires_grad[i];
    for (int o : node.outputs) requires_grad[o] = any;
  }
  std::vector<int> producer(nvalues, -1);
  for (std::size_t n = 0; n < nforward; ++n)
    for (int o : g.nodes()[n].outputs) producer[static_cast<std::size_t>(o)] = static_cast<int>(n);
  check_loss_takes_the_seed(g, requires_grad, producer);
  // leads[v]: the loss depends on v.
  std::vector<bool> leads(nvalues, false);
  leads[g.loss().id] = true;
  for (std::size_t n = nforward; n-- > 0;) {
    const Node& node = g.nodes()[n];
    bool any = false;
    for (int o : node.outputs) any = any || leads[o];
    if (any)
      for (int i : node.inputs) leads[i] = true;
  }

  std::vector<std::vector<Value>> contrib(nvalues);
  contrib[g.loss().id].push_back(Value::seed());
  for (std::size_t n = nforward; n-- > 0;) {
    const Node node = g.nodes()[n];  // copy: appending nodes may reallocate the vector
    std::vector<Value> grad_out(node.outputs.size());
    bool any_out = false;
    for (std::size_t i = 0; i < node.outputs.size(); ++i) {
      const auto& parts = contrib[node.outputs[i]];
      if (parts.empty()) continue;
      grad_out[i] = sum_gradients(g, parts, g.info(node.outputs[i]).name);
      any_out = true;
    }
    if (!any_out) continue;
    std::vector<bool> needs(node.inputs.size());
    bool any_in = false;
    for (std::size_t i = 0; i < node.inputs.size(); ++i) {
      needs[i] = requires_grad[node.inputs[i]] && leads[node.inputs[i]];
      any_in = any_in || needs[i];
    }
    if (!any_in) continue;
    const std::vector<Value> grad_in = node.op->backward(g, node, grad_out, needs);
    KESTREL_CHECK(grad_in.size() == node.inputs.size(), node.op->type(), " '", node.name,
                  "': backward returned ", grad_in.size(), " gradients for ", node.inputs.size(),
                  " inputs");
    for (std::size_t i = 0; i < node.inputs.size(); ++i) {
      if (!needs[i]) continue;
      KESTREL_CHECK(grad_in[i].valid(), node.op->type(), " '", node.name,
                    "': backward gave no gradient for input ", i, " (",
                    g.info(node.inputs[i]).name, ")");
      // An op of one's own (core/op.h) may get this wrong; the ops downstream would then read
      // a gradient of another size or element type as if it were right.
      const TypeSpec& want = g.info(node.inputs[i]).type;
      const TypeSpec& got = g.info(grad_in[i]).type;
      KESTREL_CHECK(got.shape == want.shape && got.dtype == want.dtype && got.layout == want.layout,
                    node.op->type(), " '", node.name, "': backward gave input ", i, " (",
                    g.info(node.inputs[i]).describe(), ") the gradient ", g.info(grad_in[i]).describe(),
                    "; a gradient must have its input's shape, dtype and layout");
      contrib[node.inputs[i]].push_back(grad_in[i]);
    }
  }

  AutodiffResult r;
  r.param_grad.assign(g.params().size(), -1);
  for (std::size_t p = 0; p < g.params().size(); ++p) {
    const ParamInfo info = g.params()[p];
    if (!info.trainable) continue;
    const int consumed = info.shadow >= 0 ? info.shadow : info.value;
    Value grad;
    if (!contrib[consumed].empty()) {
      grad = sum_gradients(g, contrib[consumed], info.name);
      if (g.info(grad).dtype() != DType::kFloat32)
        grad = g.append_node(make_cast_op(DType::kFloat32), info.name + ".grad_cast", {grad}, true)[0];
    }
    if (info.shadow >= 0 && !contrib[info.value].empty()) {
      // The fp32 master may also be consumed directly (rare): its fp32 parts join the shadow's
      // sum after that is cast to fp32 (an Add takes one dtype).
      std::vector<Value> parts = contrib[info.value];
      if (grad.valid()) parts.insert(parts.begin(), grad);
      grad = sum_gradients(g, parts, info.name);
    }
    if (!grad.valid()) continue;
    // Each parameter's gradient gets a value of its own (the executor binds it to the parameter's
    // slot in the store): an Add passes one upstream gradient to both of its inputs, so a + b of
    // two parameters would otherwise hand the second the first's value. A copy (x * 1, exact)
    // gives it its own.
    if (std::find(r.param_grad.begin(), r.param_grad.end(), grad.id) != r.param_grad.end())
      grad = g.append_node(make_scale_op(1.f), info.name + ".grad_copy", {grad}, true)[0];
    r.param_grad[p] = grad.id;
  }
  for (Value v : inputs) {
    const std::string name = g.info(v).name;  // a copy: sum_gradients appends nodes
    KESTREL_CHECK(!contrib[v.id].empty(), "a gradient was asked for input '", name,
                  "', but the loss does not depend on it");
    const Value grad = sum_gradients(g, contrib[v.id], name);
    KESTREL_CHECK(!grad.is_seed(), "input '", name, "' is the loss itself");
    r.input_grad.push_back(grad.id);
  }
  return r;
}

}  // namespace kestrel
