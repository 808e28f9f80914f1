// RNN and LSTM layers (layers/recurrent.h) on the CPU backend: every hidden state against a
// double-precision recurrence written here from the textbook equations, PyTorch's parameter
// names, shapes and initialisation (and the forget-gate bias option), zero initial states,
// finite-difference gradients of the weights, the sequence input and the initial states, and the
// errors.
#include <gtest/gtest.h>

#include <cmath>

#include "error_text.h"
#include "grad_check.h"
#include "test_support.h"
#include "kestrel/core/executor.h"
#include "kestrel/layers/nn.h"
#include "kestrel/layers/recurrent.h"

using namespace kestrel;
using kestrel::testing::error_of;
using kestrel::testing::graph_options;

namespace {
constexpr std::int64_t kN = 3, kT = 5, kF = 4, kH = 6;

double sigm(double v) { return 1.0 / (1.0 + std::exp(-v)); }

// Reference recurrence in double precision. x [N, T, F]; weights as PyTorch stores them.
struct Reference {
  std::vector<std::vector<double>> h;  // per step, [N, H]
  std::vector<double> c;
};
Reference reference(bool lstm, const std::vector<float>& x, const std::vector<float>& h0, const std::vector<float>& c0,
                    const std::vector<float>& w_ih, const std::vector<float>& w_hh, const std::vector<float>& b_ih,
                    const std::vector<float>& b_hh) {
  const std::int64_t gates = lstm ? 4 : 1;
  std::vector<double> h(h0.begin(), h0.end()), c(c0.begin(), c0.end());
  Reference r;
  for (std::int64_t t = 0; t < kT; ++t) {
    std::vector<double> nh(h.size()), nc(c.size());
    for (std::int64_t n = 0; n < kN; ++n) {
      std::vector<double> a(static_cast<std::size_t>(gates * kH));
      for (std::int64_t o = 0; o < gates * kH; ++o) {
        double s = b_ih[o] + b_hh[o];
        for (std::int64_t f = 0; f < kF; ++f) s += x[(n * kT + t) * kF + f] * static_cast<double>(w_ih[o * kF + f]);
        for (std::int64_t k = 0; k < kH; ++k) s += h[n * kH + k] * static_cast<double>(w_hh[o * kH + k]);
        a[o] = s;
      }
      for (std::int64_t k = 0; k < kH; ++k) {
        if (!lstm) {
          nh[n * kH + k] = std::tanh(a[k]);
          continue;
        }
        const double i = sigm(a[k]), f = sigm(a[kH + k]), g = std::tanh(a[2 * kH + k]), o = sigm(a[3 * kH + k]);
        nc[n * kH + k] = f * c[n * kH + k] + i * g;
        nh[n * kH + k] = o * std::tanh(nc[n * kH + k]);
      }
    }
    h = nh;
    c = nc;
    r.h.push_back(h);
  }
  r.c = c;
  return r;
}

// Builds x [N, T, F] -> layer -> every h_t (and the last c) marked as outputs.
void build(Graph& g, bool lstm, const nn::RecurrentOptions& base) {
  const Value x = g.input("x", {Shape{kN, kT, kF}});
  nn::RecurrentOptions o = base;
  o.hidden = kH;
  const nn::RecurrentOutput out = lstm ? nn::lstm(g, "lstm", nn::unstack(g, x), o) : nn::rnn(g, "rnn", nn::unstack(g, x), o);
  for (std::int64_t t = 0; t < kT; ++t) g.mark_output(out.h[static_cast<std::size_t>(t)], "h" + std::to_string(t));
  if (lstm) g.mark_output(out.c, "c");
}

void check_forward(bool lstm, bool given_states) {
  Graph g(graph_options(kN));
  nn::RecurrentOptions o;
  if (given_states) {
    o.h0 = g.input("h_init", {Shape{kN, kH}});
    if (lstm) o.c0 = g.input("c_init", {Shape{kN, kH}});
  }
  build(g, lstm, o);
  const std::string p = lstm ? "lstm." : "rnn.";
  Context ctx;
  ParameterStore store(g, ctx, 12);
  CompileOptions co;
  co.training = false;
  Executor ex(g, store, ctx, co);
  kestrel::testing::feed_uniform(ex, "x", 1, -2.f, 2.f);
  std::vector<float> h0(kN * kH, 0.f), c0(kN * kH, 0.f);
  if (given_states) {
    kestrel::testing::feed_uniform(ex, "h_init", 2);
    h0 = ex.input("h_init").to_float_vector();
    if (lstm) {
      kestrel::testing::feed_uniform(ex, "c_init", 3, -2.f, 2.f);
      c0 = ex.input("c_init").to_float_vector();
    }
  }
  ex.run();
  const Reference r = reference(lstm, ex.input("x").to_float_vector(), h0, c0,
                                store.value(p + "weight_ih_l0").to_float_vector(),
                                store.value(p + "weight_hh_l0").to_float_vector(),
                                store.value(p + "bias_ih_l0").to_float_vector(),
                                store.value(p + "bias_hh_l0").to_float_vector());
  // fp32 kernels (libm tanh/exp) against double: a few ulps per step, compounding over T steps.
  for (std::int64_t t = 0; t < kT; ++t)
    EXPECT_TRUE(kestrel::testing::all_close(ex.output("h" + std::to_string(t)).to_float_vector(), r.h[t], 2e-6, 2e-5))
        << (lstm ? "lstm" : "rnn") << " step " << t;
  if (lstm) {
    EXPECT_TRUE(kestrel::testing::all_close(ex.output("c").to_float_vector(), r.c, 2e-6, 2e-5));
  }
}

kestrel::testing::GradCheckOptions grad_options(bool states) {
  kestrel::testing::GradCheckOptions o;
  o.inputs = {"x"};
  if (states) o.inputs.push_back("h_init");
  o.coords_per_param = 16;
  return o;
}
}  // namespace

TEST(Recurrent, RnnMatchesTheRecurrence) {
  check_forward(false, false);
  check_forward(false, true);
}

TEST(Recurrent, LstmMatchesTheRecurrence) {
  check_forward(true, false);
  check_forward(true, true);
}

TEST(Recurrent, ParametersFollowPyTorch) {
  for (bool lstm : {false, true}) {
    Graph g(graph_options(kN));
    nn::RecurrentOptions o;
    if (lstm) o.forget_bias = 1.f;
    build(g, lstm, o);
    const std::string p = lstm ? "lstm." : "rnn.";
    const std::int64_t rows = (lstm ? 4 : 1) * kH;
    Context ctx;
    ParameterStore store(g, ctx, 5);
    EXPECT_EQ(store.value(p + "weight_ih_l0").shape(), (Shape{rows, kF}));
    EXPECT_EQ(store.value(p + "weight_hh_l0").shape(), (Shape{rows, kH}));
    EXPECT_EQ(store.value(p + "bias_ih_l0").shape(), (Shape{rows}));
    EXPECT_EQ(store.value(p + "bias_hh_l0").shape(), (Shape{rows}));
    EXPECT_EQ(g.info(g.find_value(p + "h0")).kind, ValueKind::kInput);
    EXPECT_EQ(g.info(g.find_value(p + "h0")).shape(), (Shape{kN, kH}));
    const double bound = 1.0 / std::sqrt(static_cast<double>(kH));
    for (const char* name : {"weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"}) {
      const std::vector<float> v = store.value(p + name).to_float_vector();
      double max_abs = 0;
      for (std::size_t i = 0; i < v.size(); ++i) {
        const bool forget = lstm && std::string(name).rfind("bias", 0) == 0 && i >= static_cast<std::size_t>(kH) &&
                            i < static_cast<std::size_t>(2 * kH);
        if (forget) {
          EXPECT_EQ(v[i], std::string(name) == "bias_ih_l0" ? 1.f : 0.f) << name << "[" << i << "]";
          continue;
        }
        EXPECT_LE(std::fabs(v[i]), bound) << name << "[" << i << "]";
        max_abs = std::max(max_abs, static_cast<double>(std::fabs(v[i])));
      }
      EXPECT_GT(max_abs, 0.5 * bound) << name << ": U(-1/sqrt(H), 1/sqrt(H)) should come near its bound";
    }
  }
}

TEST(Recurrent, RnnGradientsOfWeightsInputsAndInitialState) {
  EXPECT_TRUE(kestrel::testing::check_gradients(graph_options(kN), [](Graph& g) {
    nn::RecurrentOptions o;
    o.hidden = kH;
    o.h0 = g.input("h_init", {Shape{kN, kH}});
    const Value x = g.input("x", {Shape{kN, kT, kF}});
    const Value labels = nn::label_input(g, "labels");
    const nn::RecurrentOutput out = nn::rnn(g, "rnn", nn::unstack(g, x), o);
    // The loss reads the last state and an earlier one, so gradients arrive at two steps.
    nn::softmax_cross_entropy(g, nn::linear(g, "head", nn::concat(g, {out.h[1], out.h.back()}), 3), labels);
  }, [](Executor& ex) {
    kestrel::testing::feed_uniform(ex, "x", 4, -1.5f, 1.5f);
    kestrel::testing::feed_uniform(ex, "h_init", 5);
    kestrel::testing::feed_labels(ex, "labels", 3);
  }, grad_options(true)));
}

TEST(Recurrent, LstmGradientsOfWeightsInputsAndInitialStates) {
  kestrel::testing::GradCheckOptions o = grad_options(true);
  o.inputs.push_back("c_init");
  EXPECT_TRUE(kestrel::testing::check_gradients(graph_options(kN), [](Graph& g) {
    nn::RecurrentOptions ro;
    ro.hidden = kH;
    ro.forget_bias = 1.f;
    ro.h0 = g.input("h_init", {Shape{kN, kH}});
    ro.c0 = g.input("c_init", {Shape{kN, kH}});
    const Value x = g.input("x", {Shape{kN, kT, kF}});
    const Value labels = nn::label_input(g, "labels");
    const nn::RecurrentOutput out = nn::lstm(g, "lstm", nn::unstack(g, x), ro);
    nn::softmax_cross_entropy(g, nn::linear(g, "head", nn::concat(g, {out.h.back(), out.c}), 3), labels);
  }, [](Executor& ex) {
    kestrel::testing::feed_uniform(ex, "x", 4, -1.5f, 1.5f);
    kestrel::testing::feed_uniform(ex, "h_init", 5);
    kestrel::testing::feed_uniform(ex, "c_init", 6);
    kestrel::testing::feed_labels(ex, "labels", 3);
  }, o));
}

// The zero initial states the layers make for themselves (inputs <name>.h0 / <name>.c0, zeroed by
// the executor) and an LSTM without forget_bias: the path the gradient-flow experiment takes.
TEST(Recurrent, GradientsWithTheLayersOwnZeroStates) {
  for (bool lstm : {false, true}) {
    SCOPED_TRACE(lstm ? "lstm" : "rnn");
    EXPECT_TRUE(kestrel::testing::check_gradients(graph_options(kN), [lstm](Graph& g) {
      nn::RecurrentOptions o;
      o.hidden = kH;
      const Value x = g.input("x", {Shape{kN, kT, kF}});
      const Value labels = nn::label_input(g, "labels");
      const std::vector<Value> steps = nn::unstack(g, x);
      const nn::RecurrentOutput out = lstm ? nn::lstm(g, "seq", steps, o) : nn::rnn(g, "seq", steps, o);
      nn::softmax_cross_entropy(g, nn::linear(g, "head", out.h.back(), 3), labels);
    }, [](Executor& ex) {
      kestrel::testing::feed_uniform(ex, "x", 4, -1.5f, 1.5f);
      kestrel::testing::feed_labels(ex, "labels", 3);
    }, grad_options(false)));
  }
}

TEST(Recurrent, ErrorsNameTheLayer) {
  Graph g(graph_options(2));
  const Value x = g.input("x", {Shape{2, 4}});
  nn::RecurrentOptions o;
  o.hidden = 3;
  EXPECT_NE(error_of([&] { nn::rnn(g, "r", {}, o); }).find("rnn 'r': the sequence has no time steps"), std::string::npos);
  nn::RecurrentOptions zero;
  EXPECT_NE(error_of([&] { nn::lstm(g, "l", {x}, zero); }).find("hidden size must be positive"), std::string::npos);
  const std::string steps = error_of([&] { nn::rnn(g, "r2", {x, g.input("y", {Shape{2, 5}})}, o); });
  EXPECT_NE(steps.find("step 1 'y' [2, 5] fp32 differs from step 0 'x' [2, 4] fp32"), std::string::npos) << steps;
  const std::string rank = error_of([&] { nn::rnn(g, "r3", {g.input("seq", {Shape{2, 3, 4}})}, o); });
  EXPECT_NE(rank.find("unstack a [N, T, F] sequence first"), std::string::npos) << rank;
  const std::string scalars = error_of([&] { nn::rnn(g, "r5", nn::unstack(g, g.input("s", {Shape{2, 7}})), o); });
  EXPECT_NE(scalars.find("needs a feature axis (reshape [N, T] to [N, T, 1]"), std::string::npos) << scalars;
  nn::RecurrentOptions bad_h0 = o;
  bad_h0.h0 = g.input("h_wrong", {Shape{2, 4}});
  const std::string h0 = error_of([&] { nn::lstm(g, "l2", {x}, bad_h0); });
  EXPECT_NE(h0.find("initial state h0 'h_wrong' [2, 4] fp32 is not [2, 3] fp32"), std::string::npos) << h0;
  nn::RecurrentOptions forget = o;
  forget.forget_bias = 1.f;
  EXPECT_NE(error_of([&] { nn::rnn(g, "r4", {x}, forget); }).find("are LSTM options"), std::string::npos);
}

// Initial states are checked like h0 whatever their role (c0's shape, either state's dtype), c0
// is refused on an RNN, every step must share step 0's dtype as well as its shape, and messages
// name the layer with its scope.
TEST(Recurrent, StatesAndStepsAreCheckedInDtypeAndKind) {
  Graph g(graph_options(2));
  const Value x = g.input("x", {Shape{2, 4}});
  nn::RecurrentOptions o;
  o.hidden = 3;
  nn::RecurrentOptions bad_c0 = o;
  bad_c0.c0 = g.input("c_wrong", {Shape{2, 4}});
  const std::string c0 = error_of([&] { nn::lstm(g, "l", {x}, bad_c0); });
  EXPECT_NE(c0.find("initial state c0 'c_wrong' [2, 4] fp32 is not [2, 3] fp32"), std::string::npos) << c0;
  nn::RecurrentOptions rnn_c0 = o;
  rnn_c0.c0 = g.input("c_ok", {Shape{2, 3}});
  const std::string lstm_only = error_of([&] { nn::rnn(g, "r", {x}, rnn_c0); });
  EXPECT_NE(lstm_only.find("rnn 'r': forget_bias and c0 are LSTM options"), std::string::npos) << lstm_only;
  nn::RecurrentOptions half_h0 = o;
  half_h0.h0 = g.input("h_half", {Shape{2, 3}, DType::kFloat16, Layout::kNCHW});
  const std::string h0 = error_of([&] { nn::rnn(g, "r2", {x}, half_h0); });
  EXPECT_NE(h0.find("initial state h0 'h_half' [2, 3] fp16 is not [2, 3] fp32"), std::string::npos) << h0;
  const Value half = g.input("x_half", {Shape{2, 4}, DType::kFloat16, Layout::kNCHW});
  const std::string steps = error_of([&] { nn::lstm(g, "l2", {x, half}, o); });
  EXPECT_NE(steps.find("lstm 'l2': step 1 'x_half' [2, 4] fp16 differs from step 0 'x' [2, 4] fp32"), std::string::npos)
      << steps;
  Graph::Scope scope(g, "enc");
  EXPECT_NE(error_of([&] { nn::lstm(g, "l3", {}, o); }).find("lstm 'enc.l3': the sequence has no time steps"),
            std::string::npos);
  EXPECT_NE(error_of([&] { nn::rnn(g, "r3", {}, o); }).find("rnn 'enc.r3': the sequence has no time steps"),
            std::string::npos);
}

// A layer refused part-way (here its last parameter's name is taken) leaves none of its
// parameters behind (the Graph::Transaction the layers open), so no half-built layer stays.
TEST(Recurrent, ARefusedLayerLeavesNoParameters) {
  for (bool lstm : {false, true}) {
    SCOPED_TRACE(lstm ? "lstm" : "rnn");
    Graph g(graph_options(2));
    const Value x = g.input("x", {Shape{2, 4}});
    {
      Graph::Scope s(g, "seq");
      g.parameter("bias_hh_l0", {Shape{1}}, Init::uniform(0.1f), true);
    }
    nn::RecurrentOptions o;
    o.hidden = 3;
    const std::string e = error_of([&] { lstm ? nn::lstm(g, "seq", {x}, o) : nn::rnn(g, "seq", {x}, o); });
    EXPECT_NE(e.find("seq.bias_hh_l0"), std::string::npos) << e;
    for (const char* name : {"seq.weight_ih_l0", "seq.weight_hh_l0", "seq.bias_ih_l0"})
      EXPECT_THROW(g.find_value(name), Error) << name << " left behind";
  }
}
