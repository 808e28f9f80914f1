#include "grad_check.h"

#include <cmath>
#include <sstream>

#include "kestrel/core/parameter_store.h"

namespace kestrel::testing {
namespace {
// Which side of every kink the current evaluation is on: ReLU masks of forward nodes whose op
// applies a ReLU, and the argmax of every max-pool window (from the pool's input).
std::vector<std::uint8_t> kink_signature(const Executor& ex) {
  std::vector<std::uint8_t> sig;
  const Graph& g = ex.compiled_graph();
  for (const Node& n : g.nodes()) {
    if (n.backward) continue;
    const std::string type = n.op->type();
    if (type.find("ReLU") != std::string::npos) {
      for (float v : ex.value(g.info(n.outputs[0]).name).to_float_vector()) sig.push_back(v > 0.f);
    } else if (type == "MaxPool2x2") {
      const Tensor x = ex.value(g.info(n.inputs[0]).name);
      const std::vector<float> v = x.to_float_vector();  // logical NCHW order
      const Shape& s = x.shape();
      const std::int64_t h = s[2], w = s[3];
      for (std::int64_t plane = 0; plane < s[0] * s[1]; ++plane)
        for (std::int64_t oy = 0; oy < h / 2; ++oy)
          for (std::int64_t ox = 0; ox < w / 2; ++ox) {
            std::uint8_t best = 0;
            float m = v[(plane * h + 2 * oy) * w + 2 * ox];
            for (std::uint8_t k = 1; k < 4; ++k) {
              const float c = v[(plane * h + 2 * oy + k / 2) * w + 2 * ox + k % 2];
              if (c > m) m = c, best = k;
            }
            sig.push_back(best);
          }
    }
  }
  return sig;
}

double loss_value(Executor& ex) {
  ParameterStore& store = ex.store();
  ParameterStore::Counters c = store.read_counters();
  c.rng_offset = 0;  // same dropout masks in every evaluation
  store.write_counters(c);
  ex.run();
  return ex.output("loss").to_float_vector()[0];
}
}  // namespace

void feed_uniform(Executor& ex, const std::string& name, std::uint64_t seed, float lo, float hi) {
  Tensor t = ex.input(name);
  Stream cpu;
  t.fill_uniform(seed, lo, hi, cpu);
}

void feed_labels(Executor& ex, const std::string& name, int classes) {
  Tensor t = ex.input(name);
  auto* p = t.data_as<std::int32_t>();
  for (std::int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<std::int32_t>((i * 7 + 3) % classes);
}

::testing::AssertionResult check_gradients(const GraphOptions& graph_options,
                                           const std::function<void(Graph&)>& build,
                                           const std::function<void(Executor&)>& feed,
                                           const GradCheckOptions& o) {
  Context ctx;
  Graph g(graph_options);
  build(g);
  ParameterStore store(g, ctx, o.seed);
  CompileOptions co;
  co.training = true;
  co.optimizer = OptimizerKind::kNone;
  co.fuse = o.fuse;
  co.reuse_memory = false;  // kink_signature reads intermediate values after the step
  co.input_gradients = o.inputs;
  Executor ex(g, store, ctx, co);
  feed(ex);
  (void)loss_value(ex);  // analytic gradients land in the store's gradient buffer
  const std::vector<std::uint8_t> base_signature = kink_signature(ex);
  // What is probed: every trainable parameter and every named input, with its analytic
  // gradient read now (every probe below re-runs the step and overwrites the gradients).
  struct Probe {
    std::string name;
    Tensor value;
    std::vector<float> grad;
  };
  std::vector<Probe> probes;
  for (std::size_t p = 0; p < store.count(); ++p)
    if (store.trainable(p)) probes.push_back({store.name(p), store.value(p), store.gradient(p).to_float_vector()});
  for (const std::string& name : o.inputs) {
    const Tensor x = ex.input(name);
    if (x.dtype() != DType::kFloat32) return ::testing::AssertionFailure() << "input '" << name << "' is not fp32";
    probes.push_back({name, x, ex.input_gradient(name).to_float_vector()});
  }

  std::ostringstream fails;
  int checked = 0, skipped = 0, bad = 0;
  double worst = 0.0;
  for (const Probe& probe : probes) {
    const Tensor& value = probe.value;
    const std::vector<float>& grad = probe.grad;
    // Probe coordinates in logical order spread over the tensor; map to physical positions.
    const std::int64_t n = value.numel();
    const int count = static_cast<int>(std::min<std::int64_t>(n, o.coords_per_param));
    const std::vector<std::int64_t> logical = value.shape().contiguous_strides();
    for (int k = 0; k < count; ++k) {
      const std::int64_t li = (n * k) / count + (k * 7919) % std::max<std::int64_t>(1, n / count);
      const std::int64_t i = std::min(li, n - 1);
      std::int64_t rem = i, phys = 0;
      for (int d = 0; d < value.shape().rank(); ++d) {
        phys += (rem / logical[d]) * value.strides()[d];
        rem %= logical[d];
      }
      float* w = value.data_as<float>() + phys;
      const float saved = *w;
      bool kink = false;
      auto central = [&](double h) {
        *w = static_cast<float>(saved + h);
        const double up = loss_value(ex);
        kink = kink || kink_signature(ex) != base_signature;
        *w = static_cast<float>(saved - h);
        const double down = loss_value(ex);
        kink = kink || kink_signature(ex) != base_signature;
        *w = saved;
        // Divide by the perturbation actually applied (saved +- h rounded to float).
        const double applied = (static_cast<double>(static_cast<float>(saved + h)) -
                                static_cast<double>(static_cast<float>(saved - h)));
        return (up - down) / applied;
      };
      const double fd = central(o.step);
      const double analytic = grad[static_cast<std::size_t>(i)];
      if (kink) {
        ++skipped;  // a ReLU or max-pool switches between p - h and p + h
        continue;
      }
      ++checked;
      const double tol = o.abs_tol + o.rel_tol * std::fabs(fd);
      const double err = std::fabs(analytic - fd);
      worst = std::max(worst, err / tol);
      if (err > tol) {
        if (bad < 8)
          fails << "\n  " << probe.name << "[" << i << "]: autodiff " << analytic << ", finite difference "
                << fd << " (|diff| " << err << " > " << tol << ")";
        ++bad;
      }
    }
  }
  (void)loss_value(ex);  // leave the store's gradients matching the unperturbed weights
  if (checked == 0) return ::testing::AssertionFailure() << "no coordinate could be checked (" << skipped << " on kinks)";
  if (skipped * 100 > (checked + skipped) * o.max_skipped_fraction_percent)
    return ::testing::AssertionFailure() << skipped << " of " << checked + skipped
                                         << " coordinates sit on kinks: the check says too little";
  if (bad > 0)
    return ::testing::AssertionFailure() << bad << " of " << checked << " gradient coordinates disagree:" << fails.str();
  return ::testing::AssertionSuccess() << checked << " coordinates agree (worst at " << worst
                                       << " of tolerance), " << skipped << " skipped on kinks";
}

}  // namespace kestrel::testing
