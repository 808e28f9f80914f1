#include "kestrel/layers/experiments/dropout.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "kestrel/core/error.h"
#include "kestrel/core/executor.h"
#include "kestrel/layers/experiments/common.h"
#include "kestrel/layers/nn.h"

namespace kestrel::experiments {
namespace {
constexpr std::int64_t kClasses = 10;

void build_mlp(Graph& g, const DropoutConfig& c, std::int64_t features, float p) {
  const Value x = g.input("x", {Shape{c.batch, features}});
  const Value labels = nn::label_input(g, "labels");
  Value h = x;
  nn::LinearOptions he;
  he.init = Init::he_uniform(0);
  for (std::size_t i = 0; i < c.hidden.size(); ++i) {
    h = nn::relu(g, nn::linear(g, "fc" + std::to_string(i + 1), h, c.hidden[i], he));
    if (p > 0.f) h = nn::dropout(g, "drop" + std::to_string(i + 1), h, p);
  }
  const Value logits = nn::linear(g, "out", h, kClasses);
  g.mark_output(logits, "logits");
  nn::softmax_cross_entropy(g, logits, labels);
}

// Softmax of each row of `logits` ([rows, classes]) in double precision, added to `acc`.
void add_softmax(const std::vector<float>& logits, std::int64_t classes, std::vector<double>& acc) {
  for (std::size_t r = 0; r * classes < logits.size(); ++r) {
    const float* z = logits.data() + r * classes;
    const double m = *std::max_element(z, z + classes);
    double s = 0;
    for (std::int64_t k = 0; k < classes; ++k) s += std::exp(z[k] - m);
    for (std::int64_t k = 0; k < classes; ++k) acc[r * classes + k] += std::exp(z[k] - m) / s;
  }
}

std::int64_t argmax(const double* p, std::int64_t n) { return std::max_element(p, p + n) - p; }

std::vector<int> mask_counts(int max_masks) {
  std::vector<int> ks;
  for (int k = 1; k < max_masks; k *= 2) ks.push_back(k);
  ks.push_back(max_masks);
  return ks;
}

// The ensemble view of one trained network: weight scaling against averages of masked nets.
void ensemble_view(const DropoutConfig& c, const Graph& g, ParameterStore& store, Context& ctx,
                   const FloatImages& test, DropoutResult& res) {
  CompileOptions eval_o;
  eval_o.training = false;
  Executor ws(g, store, ctx, eval_o);
  CompileOptions mc_o = eval_o;
  mc_o.sample_dropout = true;
  Executor mc(g, store, ctx, mc_o);
  const std::vector<int> ks = mask_counts(c.max_masks);
  std::vector<std::int64_t> correct(ks.size(), 0), agree(ks.size(), 0);
  std::vector<double> tv(ks.size(), 0.0);
  std::int64_t ws_correct = 0;
  std::vector<std::int32_t> order(static_cast<std::size_t>(test.count));
  for (std::int64_t i = 0; i < test.count; ++i) order[static_cast<std::size_t>(i)] = static_cast<std::int32_t>(i);
  const std::int64_t b = c.batch;
  for (std::int64_t first = 0; first < test.count; first += b) {
    const std::int64_t rows = std::min(b, test.count - first);
    feed_batch(ws, test, order, first, "x", "labels");
    ws.run();
    std::vector<double> p_ws(static_cast<std::size_t>(b * kClasses), 0.0);
    add_softmax(to_host(ws.output("logits"), ctx), kClasses, p_ws);
    feed_batch(mc, test, order, first, "x", "labels");
    std::vector<double> sum(p_ws.size(), 0.0);
    std::size_t next = 0;
    for (int m = 1; m <= c.max_masks; ++m) {
      mc.run();
      add_softmax(to_host(mc.output("logits"), ctx), kClasses, sum);
      if (m != ks[next]) continue;
      for (std::int64_t r = 0; r < rows; ++r) {
        const double* s = sum.data() + r * kClasses;
        const double* w = p_ws.data() + r * kClasses;
        const std::int64_t label = test.y[static_cast<std::size_t>(first + r)];
        correct[next] += argmax(s, kClasses) == label;
        agree[next] += argmax(s, kClasses) == argmax(w, kClasses);
        double mean[kClasses];  // the average of the m masked nets' softmax
        for (std::int64_t k = 0; k < kClasses; ++k) mean[k] = s[k] / m;
        tv[next] += total_variation(mean, w, kClasses);
      }
      ++next;
    }
    for (std::int64_t r = 0; r < rows; ++r)
      ws_correct += argmax(p_ws.data() + r * kClasses, kClasses) == test.y[static_cast<std::size_t>(first + r)];
  }
  const double n = static_cast<double>(test.count);
  res.weight_scaled_accuracy = static_cast<double>(ws_correct) / n;
  for (std::size_t i = 0; i < ks.size(); ++i)
    res.ensemble.push_back({ks[i], static_cast<double>(correct[i]) / n, static_cast<double>(agree[i]) / n, tv[i] / n});
}

DropoutCurve train_curve(const DropoutConfig& c, const FloatDataset& data, float p, Context& ctx,
                         DropoutResult& res, std::ostream* log) {
  GraphOptions go;
  go.batch = c.batch;
  Graph g(go);
  build_mlp(g, c, data.train.features(), p);
  ParameterStore store(g, ctx, c.seed);
  CompileOptions train_o;
  train_o.sgd.momentum = c.momentum;
  Executor train(g, store, ctx, train_o);
  CompileOptions eval_o;
  eval_o.training = false;
  Executor eval(g, store, ctx, eval_o);
  store.set_learning_rate(c.learning_rate);
  DropoutCurve curve;
  curve.p = p;
  const std::int64_t n = data.train.count;
  const std::int64_t steps = (n + c.batch - 1) / c.batch;
  for (int e = 0; e < c.epochs; ++e) {
    const std::vector<std::int32_t> order = epoch_permutation(n, c.seed, e);
    double loss = 0;
    for (std::int64_t s = 0; s < steps; ++s) {
      feed_batch(train, data.train, order, s * c.batch, "x", "labels");
      train.run();
      loss += to_host(train.output("loss"), ctx)[0];
    }
    curve.train_loss.push_back(loss / static_cast<double>(steps));
    curve.train_accuracy.push_back(accuracy(eval, data.train, "x", "labels", "logits"));
    curve.test_accuracy.push_back(accuracy(eval, data.test, "x", "labels", "logits"));
  }
  char buf[160];
  std::snprintf(buf, sizeof buf, "p=%s: after %d epochs train acc %.3f, test acc %.3f, gap %.3f (loss %.4f)",
                float_text(p).c_str(), c.epochs, curve.train_accuracy.back(), curve.test_accuracy.back(),
                curve.final_gap(), curve.train_loss.back());
  log_line(log, buf);
  if (p == c.ensemble_p) ensemble_view(c, g, store, ctx, data.test, res);
  return curve;
}

void expectation_check(const DropoutConfig& c, Context& ctx, DropoutResult& res) {
  const std::int64_t cols = 64, rows = (c.expectation_elements + cols - 1) / cols;
  GraphOptions go;
  go.batch = rows;
  Graph g(go);
  const Value x = g.input("x", {Shape{rows, cols}});
  g.mark_output(nn::dropout(g, "inverted", x, c.expectation_p, DropoutMode::kInverted), "inverted");
  g.mark_output(nn::dropout(g, "vanilla", x, c.expectation_p, DropoutMode::kVanilla), "vanilla");
  ParameterStore store(g, ctx, c.seed);
  CompileOptions eval_o;
  eval_o.training = false;
  Executor eval(g, store, ctx, eval_o);
  CompileOptions mc_o = eval_o;
  mc_o.sample_dropout = true;
  Executor mc(g, store, ctx, mc_o);
  Tensor xin = eval.input("x");
  xin.fill_uniform(c.seed, 0.5f, 1.5f, ctx.stream(), experiment_stream(1));
  mc.input("x").copy_from(xin, ctx.stream());
  eval.run();
  const std::vector<float> xs = to_host(xin, ctx);
  const std::vector<float> inv_eval = to_host(eval.output("inverted"), ctx);
  const std::vector<float> van_eval = to_host(eval.output("vanilla"), ctx);
  std::vector<double> inv_sum(xs.size(), 0.0), van_sum(xs.size(), 0.0);
  const std::vector<int> ks = mask_counts(c.expectation_masks);
  std::size_t next = 0;
  auto rel_error = [](const std::vector<double>& sum, int m, const std::vector<float>& ref) {
    double num = 0, den = 0;
    for (std::size_t i = 0; i < ref.size(); ++i) {
      num += std::fabs(sum[i] / m - ref[i]);
      den += std::fabs(ref[i]);
    }
    return num / den;
  };
  for (int m = 1; m <= c.expectation_masks; ++m) {
    mc.run();
    const std::vector<float> a = to_host(mc.output("inverted"), ctx), b = to_host(mc.output("vanilla"), ctx);
    for (std::size_t i = 0; i < xs.size(); ++i) {
      inv_sum[i] += a[i];
      van_sum[i] += b[i];
    }
    if (m != ks[next]) continue;
    res.expectation.push_back({m, rel_error(inv_sum, m, inv_eval), rel_error(van_sum, m, van_eval),
                               rel_error(van_sum, m, xs)});
    ++next;
  }
}
}  // namespace

DropoutConfig DropoutConfig::quick() { return DropoutConfig{}; }

DropoutConfig DropoutConfig::full() {
  DropoutConfig c;
  c.train_images = 5000;
  c.test_images = 10000;
  c.crop = 32;
  c.hidden = {2048, 2048};
  c.batch = 100;
  c.epochs = 100;
  c.learning_rate = 0.02f;
  c.max_masks = 128;
  c.expectation_masks = 16384;
  c.expectation_elements = 1 << 16;
  return c;
}

double DropoutCurve::final_gap() const {
  KESTREL_CHECK(!train_accuracy.empty(), "no epochs recorded");
  return train_accuracy.back() - test_accuracy.back();
}

const DropoutCurve& DropoutResult::curve(float p) const {
  for (const DropoutCurve& c : curves)
    if (c.p == p) return c;
  KESTREL_FAIL("no dropout curve for p = ", p);
}

DropoutResult run_dropout_experiment(const DropoutConfig& c, Context& ctx, std::ostream* log,
                                     const std::function<void(const DropoutResult&)>& after_each) {
  KESTREL_CHECK(!c.rates.empty() && c.epochs > 0 && c.batch > 0 && c.max_masks >= 1 && c.expectation_masks >= 1,
                "dropout experiment: needs rates, epochs, batch and mask counts");
  KESTREL_CHECK(std::find(c.rates.begin(), c.rates.end(), c.ensemble_p) != c.rates.end() && c.ensemble_p > 0.f,
                "dropout experiment: ensemble_p ", c.ensemble_p, " must be one of the (positive) rates trained");
  DropoutResult res;
  res.config = c;
  const CifarDataset raw = load_or_synthesise(c.data_dir, c.train_images, c.test_images, c.seed);
  const FloatDataset data = to_float_dataset(raw, c.train_images, c.test_images, c.crop, c.pool);
  res.data_source = data.source;
  log_line(log, "data: " + data.source + ", " + std::to_string(c.train_images) + " training and " +
                    std::to_string(c.test_images) + " test images, " + std::to_string(data.train.features()) +
                    " features");
  if (after_each) after_each(res);  // the data is good: nothing trained yet
  for (float p : c.rates) {
    res.curves.push_back(train_curve(c, data, p, ctx, res, log));
    if (after_each) after_each(res);
  }
  char buf[160];
  std::snprintf(buf, sizeof buf, "p=%s net: weight-scaled test acc %.3f; average of %d masked nets %.3f (agreement %.3f)",
                float_text(c.ensemble_p).c_str(), res.weight_scaled_accuracy, res.ensemble.back().masks,
                res.ensemble.back().accuracy, res.ensemble.back().agreement);
  log_line(log, buf);
  expectation_check(c, ctx, res);
  const ExpectationPoint& e = res.expectation.back();
  std::snprintf(buf, sizeof buf, "mean of %d masks vs inference output: inverted %.4f, vanilla %.4f, vanilla unscaled %.4f",
                e.masks, e.inverted_error, e.vanilla_error, e.vanilla_unscaled_error);
  log_line(log, buf);
  if (after_each) after_each(res);
  return res;
}

LineChart dropout_accuracy_chart(const DropoutResult& r) {
  LineChart ch;
  ch.title = "Dropout against overfitting: " + std::to_string(r.config.train_images) + " training images";
  ch.x_label = "epoch";
  ch.y_label = "accuracy (train dashed, test solid)";
  for (std::size_t i = 0; i < r.curves.size(); ++i) {
    const DropoutCurve& c = r.curves[i];
    ChartSeries train, test;
    // The shortest form: p=%.1f made 0.05 and 0.1 both "p=0.1".
    train.name = "p=" + float_text(c.p) + " train";
    test.name = "p=" + float_text(c.p) + " test";
    train.dashed = true;
    train.color = test.color = static_cast<int>(i);
    for (std::size_t e = 0; e < c.train_accuracy.size(); ++e) {
      train.x.push_back(static_cast<double>(e + 1));
      test.x.push_back(static_cast<double>(e + 1));
      train.y.push_back(c.train_accuracy[e]);
      test.y.push_back(c.test_accuracy[e]);
    }
    ch.series.push_back(train);
    ch.series.push_back(test);
  }
  return ch;
}

LineChart dropout_ensemble_chart(const DropoutResult& r) {
  LineChart ch;
  ch.title = "Weight scaling vs averaging k masked networks (p=" + float_text(r.config.ensemble_p) + ")";
  ch.x_label = "k (masked networks averaged)";
  ch.y_label = "test accuracy / agreement";
  ch.log_x = true;
  ChartSeries mc, ws, agree;
  mc.name = "average of k masked nets";
  ws.name = "weight-scaled net";
  agree.name = "agreement with weight scaling";
  mc.markers = agree.markers = true;
  ws.dashed = true;
  for (const EnsemblePoint& e : r.ensemble) {
    mc.x.push_back(e.masks);
    mc.y.push_back(e.accuracy);
    ws.x.push_back(e.masks);
    ws.y.push_back(r.weight_scaled_accuracy);
    agree.x.push_back(e.masks);
    agree.y.push_back(e.agreement);
  }
  ch.series = {mc, ws, agree};
  return ch;
}

LineChart dropout_expectation_chart(const DropoutResult& r) {
  LineChart ch;
  ch.title = "Mean of m dropout masks vs the inference output (p=" + float_text(r.config.expectation_p) + ")";
  ch.x_label = "m (masks averaged)";
  ch.y_label = "mean relative error";
  ch.log_x = ch.log_y = true;
  ChartSeries inv, van, unscaled, ref;
  inv.name = "inverted: mean vs y = x";
  van.name = "vanilla: mean vs y = (1-p) x";
  unscaled.name = "vanilla: mean vs x (no rescaling)";
  ref.name = "1/sqrt(m) reference";
  unscaled.dashed = ref.dashed = true;
  inv.markers = van.markers = true;
  const double c0 = r.expectation.empty() ? 1.0 : r.expectation.front().inverted_error;
  for (const ExpectationPoint& e : r.expectation) {
    for (ChartSeries* s : {&inv, &van, &unscaled, &ref}) s->x.push_back(e.masks);
    inv.y.push_back(e.inverted_error);
    van.y.push_back(e.vanilla_error);
    unscaled.y.push_back(e.vanilla_unscaled_error);
    ref.y.push_back(c0 / std::sqrt(static_cast<double>(e.masks)));
  }
  ch.series = {inv, van, unscaled, ref};
  return ch;
}

std::vector<std::string> write_dropout_report(const DropoutResult& r, const std::string& dir) {
  ReportFolder folder(dir);
  const bool has_curves = !r.curves.empty(), has_ensemble = !r.ensemble.empty(),
             has_expectation = !r.expectation.empty();
  // A chart with nothing to draw (NaN, or no positive value on the log axes) is left out rather
  // than raised about: the run goes on and its tables are still written.
  auto svg = [&](const LineChart& ch, const std::string& file) {
    if (const std::string p = folder.file(file, has_drawable_point(ch)); !p.empty()) write_svg(ch, p);
  };
  svg(dropout_accuracy_chart(r), "dropout_accuracy.svg");
  svg(dropout_ensemble_chart(r), "dropout_ensemble.svg");
  svg(dropout_expectation_chart(r), "dropout_expectation.svg");
  if (const std::string p = folder.file("dropout_accuracy.csv", has_curves); !p.empty()) {
    CsvTable acc({"p", "epoch", "train_loss", "train_accuracy", "test_accuracy"});
    for (const DropoutCurve& c : r.curves)
      for (std::size_t e = 0; e < c.train_accuracy.size(); ++e)
        acc.add_row({CsvTable::cell(c.p), std::to_string(e + 1), CsvTable::cell(c.train_loss[e]),
                     CsvTable::cell(c.train_accuracy[e]), CsvTable::cell(c.test_accuracy[e])});
    acc.write(p);
  }
  if (const std::string p = folder.file("dropout_ensemble.csv", has_ensemble); !p.empty()) {
    CsvTable ens({"masks", "mc_accuracy", "weight_scaled_accuracy", "agreement", "tv_distance"});
    for (const EnsemblePoint& e : r.ensemble)
      ens.add_row({std::to_string(e.masks), CsvTable::cell(e.accuracy), CsvTable::cell(r.weight_scaled_accuracy),
                   CsvTable::cell(e.agreement), CsvTable::cell(e.tv_distance)});
    ens.write(p);
  }
  if (const std::string p = folder.file("dropout_expectation.csv", has_expectation); !p.empty()) {
    CsvTable exp({"masks", "inverted_error", "vanilla_error", "vanilla_unscaled_error"});
    for (const ExpectationPoint& e : r.expectation)
      exp.add_row({std::to_string(e.masks), CsvTable::cell(e.inverted_error), CsvTable::cell(e.vanilla_error),
                   CsvTable::cell(e.vanilla_unscaled_error)});
    exp.write(p);
  }
  return folder.written();
}

}  // namespace kestrel::experiments
