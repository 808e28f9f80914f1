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

// Checks the sequence and returns the type of one step.
const ValueInfo& check_steps(const Graph& g, const std::string& layer, const std::vector<Value>& xs,
                             const RecurrentOptions& o) {
  KESTREL_CHECK(!xs.empty(), layer, " '", g.scoped(""), "': the sequence has no time steps");
  KESTREL_CHECK(o.hidden > 0, layer, " '", g.scoped(""), "': hidden size must be positive, got ", o.hidden);
  const ValueInfo& first = g.info(xs[0]);
  KESTREL_CHECK(first.shape().rank() == 2, layer, " '", g.scoped(""), "': step 0 ", first.describe(),
                " is not [N, features] (unstack a [N, T, F] sequence first)");
  for (std::size_t t = 1; t < xs.size(); ++t) {
    const ValueInfo& x = g.info(xs[t]);
    KESTREL_CHECK(x.shape() == first.shape() && x.dtype() == first.dtype(), layer, " '", g.scoped(""), "': step ",
                  t, " ", x.describe(), " differs from step 0 ", first.describe());
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

// A given initial state, checked, or a zero-holding graph input named `name`.
Value initial_state(Graph& g, const std::string& layer, const std::string& name, Value given,
                    const ValueInfo& step, std::int64_t hidden) {
  const TypeSpec want{Shape{step.shape()[0], hidden}, step.dtype(), Layout::kNCHW};
  if (!given.valid()) return g.input(name, want);
  const ValueInfo& v = g.info(given);
  KESTREL_CHECK(v.shape() == want.shape && v.dtype() == want.dtype, layer, " '", g.scoped(""), "': initial state ",
                name, " ", v.describe(), " is not ", want.shape.to_string(), " ", dtype_name(want.dtype));
  return given;
}

// x_t W_ih^T + b_ih + h W_hh^T + b_hh
Value preactivation(Graph& g, const Weights& w, Value x, Value h) {
  const Value a = g.add_node1(make_linear_op(), "ih", {x, w.w_ih, w.b_ih});
  const Value b = g.add_node1(make_linear_op(), "hh", {h, w.w_hh, w.b_hh});
  return add(g, a, b);
}
}  // namespace

RecurrentOutput rnn(Graph& g, const std::string& name, const std::vector<Value>& xs, const RecurrentOptions& o) {
  Graph::Scope scope(g, name);
  const ValueInfo step = check_steps(g, "rnn", xs, o);
  KESTREL_CHECK(!o.forget_bias && !o.c0.valid(), "rnn '", g.scoped(""), "': forget_bias and c0 are LSTM options");
  const Weights w = make_weights(g, step.shape()[1], o.hidden, 1, std::nullopt);
  Value h = initial_state(g, "rnn", "h0", o.h0, step, o.hidden);
  RecurrentOutput out;
  for (std::size_t t = 0; t < xs.size(); ++t) {
    Graph::Scope s(g, "t" + std::to_string(t));
    h = tanh(g, preactivation(g, w, xs[t], h));
    out.h.push_back(h);
  }
  return out;
}

RecurrentOutput lstm(Graph& g, const std::string& name, const std::vector<Value>& xs, const RecurrentOptions& o) {
  Graph::Scope scope(g, name);
  const ValueInfo step = check_steps(g, "lstm", xs, o);
  const std::int64_t hd = o.hidden;
  const Weights w = make_weights(g, step.shape()[1], hd, 4, o.forget_bias);
  Value h = initial_state(g, "lstm", "h0", o.h0, step, hd);
  Value c = initial_state(g, "lstm", "c0", o.c0, step, hd);
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
  return out;
}

}  // namespace kestrel::nn
