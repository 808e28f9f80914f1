#include "kestrel/layers/experiments/gradient_flow.h"

#include <cmath>
#include <cstdio>

#include "kestrel/core/error.h"
#include "kestrel/core/executor.h"
#include "kestrel/core/number_text_internal.h"
#include "kestrel/kernels/philox.h"
#include "kestrel/layers/experiments/common.h"
#include "kestrel/layers/nn.h"
#include "kestrel/layers/recurrent.h"

namespace kestrel::experiments {
namespace {
constexpr std::int64_t kClasses = 10;

std::string layer_name(int l) { return "l" + std::to_string(l); }
std::string probe_name(int l) { return "probe" + std::to_string(l); }

// h + a zero-valued graph input: its input gradient (CompileOptions::input_gradients) is
// d loss / d h, the backward signal at this layer's output.
Value probed(Graph& g, Value h, int l) { return nn::add(g, h, g.zero_input(probe_name(l), g.info(h).type)); }

// Linear without bias whose weights are U(-b, b), b = gain * (Xavier or He uniform bound).
Value scaled_linear(Graph& g, const std::string& name, Value x, std::int64_t out, double gain, bool xavier) {
  const double fan_in = static_cast<double>(g.info(x).shape()[1]);
  const double bound = xavier ? std::sqrt(6.0 / (fan_in + static_cast<double>(out))) : std::sqrt(6.0 / fan_in);
  nn::LinearOptions o;
  o.bias = false;
  o.init = Init::uniform(static_cast<float>(gain * bound));
  return nn::linear(g, name, x, out, o);
}

void build_deep_mlp(Graph& g, const GradientFlowConfig& c, std::int64_t features, const std::string& kind,
                    double gain) {
  const Value x = g.input("x", {Shape{c.batch, features}});
  const Value labels = nn::label_input(g, "labels");
  Value h;
  if (kind == "sigmoid") {
    h = x;
    for (int l = 1; l <= c.depth; ++l)
      h = probed(g, nn::sigmoid(g, scaled_linear(g, layer_name(l), h, c.width, gain, true)), l);
  } else if (kind == "relu") {
    h = x;
    for (int l = 1; l <= c.depth; ++l)
      h = probed(g, nn::relu(g, scaled_linear(g, layer_name(l), h, c.width, gain, false)), l);
  } else {
    KESTREL_CHECK(kind == "residual", "unknown deep network kind '", kind, "' (sigmoid, relu, residual)");
    h = probed(g, scaled_linear(g, layer_name(1), x, c.width, gain, false), 1);  // the stem changes the width
    const double branch = gain / std::sqrt(static_cast<double>(c.depth));
    for (int l = 2; l <= c.depth; ++l)
      h = probed(g, nn::add(g, h, scaled_linear(g, layer_name(l), nn::relu(g, h), c.width, branch, false)), l);
  }
  nn::softmax_cross_entropy(g, nn::linear(g, "head", h, kClasses), labels);
}

std::vector<double> weight_grad_norms(const Executor& ex, int depth) {
  std::vector<double> norms;
  for (int l = 1; l <= depth; ++l)
    norms.push_back(l2_norm(to_host(ex.gradient(layer_name(l) + ".weight"), ex.context())));
  return norms;
}

std::vector<double> signal_norms(const Executor& ex, int depth) {
  std::vector<double> norms;
  for (int l = 1; l <= depth; ++l)
    norms.push_back(l2_norm(to_host(ex.input_gradient(probe_name(l)), ex.context())));
  return norms;
}

double loss_of(const Executor& ex) { return to_host(ex.output("loss"), ex.context())[0]; }

DepthRun run_depth(const GradientFlowConfig& c, const FloatImages& data, const std::string& kind, double gain,
                   Context& ctx) {
  GraphOptions go;
  go.batch = c.batch;
  Graph g(go);
  build_deep_mlp(g, c, data.features(), kind, gain);
  ParameterStore store(g, ctx, c.seed);
  CompileOptions probe_o;
  probe_o.optimizer = OptimizerKind::kNone;
  for (int l = 1; l <= c.depth; ++l) probe_o.input_gradients.push_back(probe_name(l));
  Executor probe(g, store, ctx, probe_o);
  CompileOptions train_o;
  train_o.sgd.momentum = 0.9f;
  Executor train(g, store, ctx, train_o);
  store.set_learning_rate(c.learning_rate);

  std::vector<std::int32_t> fixed(static_cast<std::size_t>(data.count));
  for (std::int64_t i = 0; i < data.count; ++i) fixed[static_cast<std::size_t>(i)] = static_cast<std::int32_t>(i);
  DepthRun r;
  r.kind = kind;
  r.gain = gain;
  feed_batch(probe, data, fixed, 0, "x", "labels");
  probe.run();
  r.init_norms = weight_grad_norms(probe, c.depth);
  r.init_signal = signal_norms(probe, c.depth);
  r.init_loss = loss_of(probe);
  std::int64_t epoch = 0, at = 0;
  std::vector<std::int32_t> order = epoch_permutation(data.count, c.seed, epoch);
  for (int s = 0; s < c.train_steps; ++s) {
    if (at + c.batch > data.count) {
      order = epoch_permutation(data.count, c.seed, ++epoch);
      at = 0;
    }
    feed_batch(train, data, order, at, "x", "labels");
    train.run();
    at += c.batch;
  }
  feed_batch(probe, data, fixed, 0, "x", "labels");
  probe.run();
  r.trained_norms = weight_grad_norms(probe, c.depth);
  r.trained_signal = signal_norms(probe, c.depth);
  r.trained_loss = loss_of(probe);
  return r;
}

enum class Cell { kRnn, kLstm };

TimeRun run_time(const GradientFlowConfig& c, const std::string& name, Cell cell, float forget_bias, Context& ctx) {
  GraphOptions go;
  go.batch = c.seq_batch;
  Graph g(go);
  const Value x = g.input("x", {Shape{c.seq_batch, c.steps, c.seq_features}});
  const Value labels = nn::label_input(g, "labels");
  nn::RecurrentOptions ro;
  ro.hidden = c.hidden;
  const std::vector<Value> xs = nn::unstack(g, x);
  nn::RecurrentOutput out;
  if (cell == Cell::kRnn) {
    out = nn::rnn(g, "rnn", xs, ro);
  } else {
    ro.forget_bias = forget_bias;
    out = nn::lstm(g, "lstm", xs, ro);
  }
  nn::softmax_cross_entropy(g, nn::linear(g, "head", out.h.back(), c.seq_classes), labels);
  ParameterStore store(g, ctx, c.seed);
  CompileOptions co;
  co.optimizer = OptimizerKind::kNone;
  co.input_gradients = {"x"};
  Executor ex(g, store, ctx, co);
  Tensor xin = ex.input("x");
  xin.fill_uniform(c.seed, -1.f, 1.f, ctx.stream(), experiment_stream(2));
  Tensor lab = Tensor::empty_cpu(Shape{c.seq_batch}, DType::kInt32);
  for (std::int64_t i = 0; i < c.seq_batch; ++i)
    lab.data_as<std::int32_t>()[i] = static_cast<std::int32_t>(philox_block(c.seed, experiment_stream(3), static_cast<std::uint64_t>(i)).x[0] %
                                                                static_cast<std::uint32_t>(c.seq_classes));
  ex.input("labels").copy_from(lab, ctx.stream());
  ex.run();
  const std::vector<float> dx = to_host(ex.input_gradient("x"), ctx);
  TimeRun r;
  r.name = name;
  for (int t = 0; t < c.steps; ++t) {
    double s = 0;
    for (std::int64_t n = 0; n < c.seq_batch; ++n)
      for (std::int64_t f = 0; f < c.seq_features; ++f) {
        const double v = dx[static_cast<std::size_t>((n * c.steps + t) * c.seq_features + f)];
        s += v * v;
      }
    r.input_grad_norms.push_back(std::sqrt(s));
  }
  return r;
}
}  // namespace

GradientFlowConfig GradientFlowConfig::quick() {
  GradientFlowConfig c;
  c.width = 32;
  c.batch = 32;
  c.train_steps = 30;
  c.train_images = 256;
  return c;
}

GradientFlowConfig GradientFlowConfig::full() {
  GradientFlowConfig c;
  c.width = 256;
  c.batch = 128;
  c.train_steps = 500;
  c.train_images = 10000;
  c.crop = 32;
  c.pool = 1;
  c.seq_batch = 64;
  c.seq_features = 32;
  c.hidden = 128;
  return c;
}

std::string DepthRun::label() const { return kind + " x" + detail::general_text(gain, 6); }

double TimeRun::at_distance(int distance) const {
  const int t = static_cast<int>(input_grad_norms.size()) - 1 - distance;
  KESTREL_CHECK(t >= 0 && distance >= 0, "distance ", distance, " outside a sequence of ", input_grad_norms.size());
  return input_grad_norms[static_cast<std::size_t>(t)];
}

const DepthRun& GradientFlowResult::depth_run(const std::string& kind, double gain) const {
  for (const DepthRun& r : depth_runs)
    if (r.kind == kind && r.gain == gain) return r;
  KESTREL_FAIL("no deep run '", kind, "' at gain ", gain);
}

const TimeRun& GradientFlowResult::time_run(const std::string& name) const {
  for (const TimeRun& r : time_runs)
    if (r.name == name) return r;
  KESTREL_FAIL("no recurrent run named '", name, "'");
}

GradientFlowResult run_gradient_flow(const GradientFlowConfig& c, Context& ctx, std::ostream* log,
                                     const std::function<void(const GradientFlowResult&)>& after_each) {
  KESTREL_CHECK(c.depth >= 2 && c.width > 0 && c.batch > 0 && c.train_steps >= 0 && !c.gains.empty(),
                "gradient flow: bad depth/width/batch/steps/gains");
  KESTREL_CHECK(c.steps >= 2 && c.seq_batch > 0 && c.seq_features > 0 && c.hidden > 0 && c.seq_classes > 1,
                "gradient flow: bad recurrent sizes");
  GradientFlowResult res;
  res.config = c;
  const CifarDataset raw = load_or_synthesise(c.data_dir, c.train_images, 1, c.seed);
  const FloatDataset data = to_float_dataset(raw, std::min(c.train_images, raw.train.count), 1, c.crop, c.pool);
  KESTREL_CHECK(data.train.count >= c.batch, "gradient flow: ", data.train.count, " images for batch ", c.batch);
  res.data_source = data.source;
  if (after_each) after_each(res);  // the data is good: nothing trained yet
  for (const char* kind : {"sigmoid", "relu", "residual"})
    for (double gain : c.gains) {
      res.depth_runs.push_back(run_depth(c, data.train, kind, gain, ctx));
      const DepthRun& r = res.depth_runs.back();
      char buf[200];
      std::snprintf(buf, sizeof buf,
                    "depth %d %-14s |dL/dh_1| %.2e |dL/dh_%d| %.2e  |dW_1| %.2e |dW_%d| %.2e  after %d steps |dW_1| %.2e",
                    c.depth, r.label().c_str(), r.init_signal.front(), c.depth, r.init_signal.back(),
                    r.init_norms.front(), c.depth, r.init_norms.back(), c.train_steps, r.trained_norms.front());
      log_line(log, buf);
      if (after_each) after_each(res);
    }
  struct Recurrent {
    const char* name;
    Cell cell;
    float forget_bias;
  };
  for (const Recurrent& rc : {Recurrent{"RNN (tanh)", Cell::kRnn, 0.f}, Recurrent{"LSTM (forget bias 1)", Cell::kLstm, 1.f},
                              Recurrent{"LSTM (forget bias 0)", Cell::kLstm, 0.f}}) {
    res.time_runs.push_back(run_time(c, rc.name, rc.cell, rc.forget_bias, ctx));
    const TimeRun& r = res.time_runs.back();
    char buf[200];
    std::snprintf(buf, sizeof buf, "T=%d %-22s |dx| at T-t=0: %.3e  10: %.3e  50: %.3e", c.steps, r.name.c_str(),
                  r.at_distance(0), r.at_distance(std::min(10, c.steps - 1)), r.at_distance(std::min(50, c.steps - 1)));
    log_line(log, buf);
    if (after_each) after_each(res);
  }
  return res;
}

LineChart depth_chart(const GradientFlowResult& r, DepthView view) {
  LineChart ch;
  const bool trained = view == DepthView::kSignalTrained;
  const bool weights = view == DepthView::kWeightsInit;
  ch.title = std::string(weights ? "Weight gradient" : "Backward signal") + " per layer, depth-" +
             std::to_string(r.config.depth) + " MLP, " +
             (trained ? "after " + std::to_string(r.config.train_steps) + " SGD steps" : std::string("at initialisation"));
  ch.x_label = "layer l (1 = next to the input)";
  ch.y_label = weights ? "|d loss / d W_l|" : "|d loss / d h_l|";
  ch.log_y = true;
  for (const DepthRun& d : r.depth_runs) {
    ChartSeries s;
    s.name = d.label();
    const std::vector<double>& v = weights ? d.init_norms : trained ? d.trained_signal : d.init_signal;
    bool finite = true;
    for (std::size_t l = 0; l < v.size(); ++l) {
      s.x.push_back(static_cast<double>(l + 1));
      s.y.push_back(v[l]);
      finite = finite && std::isfinite(v[l]);
    }
    if (!finite) s.name += " (diverged: NaN)";
    s.dashed = d.gain < 1.0;
    s.markers = d.gain > 1.0;
    ch.series.push_back(s);
  }
  return ch;
}

LineChart time_chart(const GradientFlowResult& r) {
  LineChart ch;
  ch.title = "Gradient reaching the input of step t, T = " + std::to_string(r.config.steps);
  ch.x_label = "T - t (steps between the input and the loss)";
  ch.y_label = "|d loss / d x_t|";
  ch.log_y = true;
  for (const TimeRun& t : r.time_runs) {
    ChartSeries s;
    s.name = t.name;
    for (int d = 0; d < static_cast<int>(t.input_grad_norms.size()); ++d) {
      s.x.push_back(d);
      s.y.push_back(t.at_distance(d));
    }
    ch.series.push_back(s);
  }
  return ch;
}

std::vector<std::string> write_gradient_flow_report(const GradientFlowResult& r, const std::string& dir) {
  ReportFolder folder(dir);
  auto svg = [&](const LineChart& ch, const std::string& file) {
    if (const std::string p = folder.file(file, has_drawable_point(ch)); !p.empty()) write_svg(ch, p);
  };
  svg(depth_chart(r, DepthView::kSignalInit), "gradient_flow_init.svg");
  svg(depth_chart(r, DepthView::kWeightsInit), "gradient_flow_weights.svg");
  svg(depth_chart(r, DepthView::kSignalTrained), "gradient_flow_trained.svg");
  svg(time_chart(r), "gradient_flow_time.svg");
  if (const std::string p = folder.file("gradient_flow_depth.csv", !r.depth_runs.empty()); !p.empty()) {
    CsvTable depth({"network", "gain", "layer", "dL_dh_init", "dL_dW_init", "dL_dh_trained", "dL_dW_trained"});
    for (const DepthRun& d : r.depth_runs)
      for (std::size_t l = 0; l < d.init_norms.size(); ++l)
        depth.add_row({d.kind, CsvTable::cell(d.gain), std::to_string(l + 1), CsvTable::cell(d.init_signal[l]),
                       CsvTable::cell(d.init_norms[l]), CsvTable::cell(d.trained_signal[l]),
                       CsvTable::cell(d.trained_norms[l])});
    depth.write(p);
  }
  if (const std::string p = folder.file("gradient_flow_time.csv", !r.time_runs.empty()); !p.empty()) {
    CsvTable time({"network", "t", "T_minus_t", "input_grad_norm"});
    for (const TimeRun& t : r.time_runs)
      for (std::size_t i = 0; i < t.input_grad_norms.size(); ++i)
        time.add_row({t.name, std::to_string(i + 1), std::to_string(t.input_grad_norms.size() - 1 - i),
                      CsvTable::cell(t.input_grad_norms[i])});
    time.write(p);
  }
  return folder.written();
}

}  // namespace kestrel::experiments
