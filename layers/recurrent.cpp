#include "kestrel/layers/recurrent.h"

#include <cmath>

#include "kestrel/core/error.h"
#include "kestrel/core/ops/nn_ops.h"
#include "kestrel/layers/nn.h"

namespace kestrel::nn {
namespace {
struct Weights {
  Value w_ih, w_hh, b_ih, b_hh;
};

// Checks the sequence and the initial states before anything is added to the graph; returns the
// type of one step. `what` is "rnn 'name'" for messages.
ValueInfo check_inputs(const Graph& g, const std::string& what, const std::vector<Value>& xs,
                       const RecurrentOptions& o, bool lstm) {
  KESTREL_CHECK(!xs.empty(), what, ": the sequence has no time steps");
  KESTREL_CHECK(o.hidden > 0, what, ": hidden size must be positive, got ", o.hidden);
  KESTREL_CHECK(lstm || (!o.forget_bias && !o.c0.valid()), what, ": forget_bias and c0 are LSTM options");
  const ValueInfo first = g.info(xs[0]);
  KESTREL_CHECK(first.shape().rank() != 1, what, ": step 0 ", first.describe(),
                " is not [N, features]: a sequence of scalars needs a feature axis (reshape [N, T] to [N, T, 1], then unstack)");
  KESTREL_CHECK(first.shape().rank() == 2, what, ": step 0 ", first.describe(),
                " is not [N, features] (unstack a [N, T, F] sequence first)");
  for (std::size_t t = 1; t < xs.size(); ++t) {
    const ValueInfo& x = g.info(xs[t]);
    KESTREL_CHECK(x.shape() == first.shape() && x.dtype() == first.dtype(), what, ": step ", t, " ", x.describe(),
                  " differs from step 0 ", first.describe());
  }
  const Shape want{first.shape()[0], o.hidden};
  for (const auto& [name, v] : {std::make_pair("h0", o.h0), std::make_pair("c0", o.c0)}) {
    if (!v.valid()) continue;
    const ValueInfo& s = g.info(v);
    KESTREL_CHECK(s.shape() == want && s.dtype() == first.dtype(), what, ": initial state ", name, " ", s.describe(),
                  " is not ", want.to_string(), " ", dtype_name(first.dtype()));
  }
  return first;
}

// Weights of `gates` stacked gates, PyTorch's names and initialisation.
Weights make_weights(Graph& g, std::int64_t features, std::int64_t hidden, std::int64_t gates,
                     const std::optional<float>& forget_bias) {
  const float bound = 1.0f / std::sqrt(static_cast<float>(hidden));
  const Init u = Init::uniform(bound);
  const DType compute = g.options().dtype;
  Weights w;
  w.w_ih = g.parameter("weight_ih_l0", {Shape{gates * hidden, features}}, u, true, compute);
  w.w_hh = g.parameter("weight_hh_l0", {Shape{gates * hidden, hidden}}, u, true, compute);
  Init bias_ih = u, bias_hh = u;
  if (forget_bias) {  // gate order i, f, g, o: the forget gate is the second quarter
    bias_ih = u.with_range(hidden, 2 * hidden, *forget_bias);
    bias_hh = u.with_range(hidden, 2 * hidden, 0.f);
  }
  w.b_ih = g.parameter("bias_ih_l0", {Shape{gates * hidden}}, bias_ih, true);
  w.b_hh = g.parameter("bias_hh_l0", {Shape{gates * hidden}}, bias_hh, true);
  return w;
}

// The given initial state, or a zero-holding graph input named `name` [N, H].
Value initial_state(Graph& g, const std::string& name, Value given, const ValueInfo& step, std::int64_t hidden) {
  if (given.valid()) return given;
  return g.zero_input(name, {Shape{step.shape()[0], hidden}, step.dtype(), Layout::kNCHW});
}

// x_t W_ih^T + b_ih + h W_hh^T + b_hh
Value preactivation(Graph& g, const Weights& w, Value x, Value h) {
  const Value a = g.add_node1(make_linear_op(), "ih", {x, w.w_ih, w.b_ih});
  const Value b = g.add_node1(make_linear_op(), "hh", {h, w.w_hh, w.b_hh});
  return add(g, a, b);
}
}  // namespace

RecurrentOutput rnn(Graph& g, const std::string& name, const std::vector<Value>& xs, const RecurrentOptions& o) {
  const ValueInfo step = check_inputs(g, "rnn '" + g.scoped(name) + "'", xs, o, false);
  Graph::Transaction tx(g);  // a refused step takes the layer's weights and earlier steps with it
  Graph::Scope scope(g, name);
  const Weights w = make_weights(g, step.shape()[1], o.hidden, 1, std::nullopt);
  Value h = initial_state(g, "h0", o.h0, step, o.hidden);
  RecurrentOutput out;
  for (std::size_t t = 0; t < xs.size(); ++t) {
    Graph::Scope s(g, "t" + std::to_string(t));
    h = tanh(g, preactivation(g, w, xs[t], h));
    out.h.push_back(h);
  }
  tx.commit();
  return out;
}

RecurrentOutput lstm(Graph& g, const std::string& name, const std::vector<Value>& xs, const RecurrentOptions& o) {
  const ValueInfo step = check_inputs(g, "lstm '" + g.scoped(name) + "'", xs, o, true);
  Graph::Transaction tx(g);  // a refused step takes the layer's weights and earlier steps with it
  Graph::Scope scope(g, name);
  const std::int64_t hd = o.hidden;
  const Weights w = make_weights(g, step.shape()[1], hd, 4, o.forget_bias);
  Value h = initial_state(g, "h0", o.h0, step, hd);
  Value c = initial_state(g, "c0", o.c0, step, hd);
  RecurrentOutput out;
  for (std::size_t t = 0; t < xs.size(); ++t) {
    Graph::Scope s(g, "t" + std::to_string(t));
    const std::vector<Value> gates = split(g, preactivation(g, w, xs[t], h), {hd, hd, hd, hd});
    const Value i = sigmoid(g, gates[0]);
    const Value f = sigmoid(g, gates[1]);
    const Value cand = tanh(g, gates[2]);
    const Value og = sigmoid(g, gates[3]);
    c = add(g, mul(g, f, c), mul(g, i, cand));
    h = mul(g, og, tanh(g, c));
    out.h.push_back(h);
  }
  out.c = c;
  tx.commit();
  return out;
}

}  // namespace kestrel::nn
