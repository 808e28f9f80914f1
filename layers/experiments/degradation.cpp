#include "kestrel/layers/experiments/degradation.h"

#include <cstdio>

#include "kestrel/core/error.h"
#include "kestrel/core/executor.h"
#include "kestrel/layers/experiments/common.h"
#include "kestrel/layers/nn.h"
#include "kestrel/layers/resnet.h"
#include "kestrel/layers/schedule.h"

namespace kestrel::experiments {
namespace {
DegradationModel model(int depth, bool residual, int version) {
  DegradationModel m;
  m.depth = depth;
  m.residual = residual;
  m.version = version;
  m.name = std::string(residual ? "resnet-" : "plain-") + std::to_string(depth) + (residual && version == 2 ? " v2" : "");
  return m;
}

std::vector<DegradationModel> model_set(int shallow, int deep) {
  return {model(shallow, false, 1), model(deep, false, 1), model(shallow, true, 1), model(deep, true, 1),
          model(deep, true, 2)};
}

// The splits on the device, uploaded once for every model.
struct DeviceData {
  DeviceImages train, test;
  std::int64_t side;
};

DegradationCurve train_model(const DegradationConfig& c, const DegradationModel& m, const DeviceData& data,
                             Context& ctx, std::ostream* log) {
  KESTREL_CHECK(m.depth >= 8 && (m.depth - 2) % 6 == 0, "model '", m.name, "': depth must be 6n+2, got ", m.depth);
  GraphOptions go;
  go.batch = c.batch;
  go.dtype = c.dtype;
  go.layout = c.layout;
  Graph g(go);
  const std::int64_t side = data.side;
  const Value x = nn::image_input(g, "x", 3, side, side);
  const Value labels = nn::label_input(g, "labels");
  ResNetConfig rc;
  rc.name = m.name;
  rc.version = m.version;
  rc.blocks_per_stage = (m.depth - 2) / 6;
  rc.widths = c.widths;
  rc.stem_width = c.stem_width;
  rc.shortcuts = m.residual;
  rc.zero_init_last_bn = m.residual && c.zero_init_last_bn;
  const Value logits = build_resnet(g, x, rc);
  g.mark_output(logits, "logits");
  nn::softmax_cross_entropy(g, logits, labels);
  ParameterStore store(g, ctx, c.seed);
  store.exempt_1d_from_decay();
  CompileOptions train_o;
  train_o.sgd.momentum = c.momentum;
  train_o.sgd.weight_decay = c.weight_decay;
  Executor train(g, store, ctx, train_o);
  CompileOptions eval_o;
  eval_o.training = false;
  Executor eval(g, store, ctx, eval_o);
  LrSchedule sched;
  sched.kind = LrSchedule::Kind::kStep;
  sched.base = c.learning_rate;
  sched.total_steps = c.steps;
  sched.milestones = c.milestones;
  validate(sched);

  DegradationCurve curve;
  curve.model = m;
  // The loop stays on the device between points: batches are gathered from the resident data,
  // each step's loss is copied into `losses`, and the host reads them once a point (on CUDA the
  // step itself is one CUDA Graph replay after the first).
  const std::int64_t n = data.train.count;
  const bool graph = c.cuda_graph && ctx.device().is_cuda();
  std::int64_t epoch = 0, at = 0;
  Tensor order = device_ints(epoch_permutation(n, c.seed, epoch), ctx);
  Tensor losses = Tensor::empty(Shape{c.eval_every}, DType::kFloat32, ctx);
  std::int64_t pending = 0;
  for (int s = 0; s < c.steps; ++s) {
    if (at + c.batch > n) {  // every model sees the same batches in the same order
      order = device_ints(epoch_permutation(n, c.seed, ++epoch), ctx);
      at = 0;
    }
    feed_batch(train, data.train, order, at, "x", "labels");
    at += c.batch;
    store.set_learning_rate(learning_rate_at(sched, s));
    train.run();
    if (graph && !train.uses_cuda_graph()) train.capture_cuda_graph();  // after one eager step
    losses.view_bytes(static_cast<std::size_t>(pending) * sizeof(float), Shape{1}, DType::kFloat32)
        .copy_from(train.output("loss"), ctx.stream());
    ++pending;
    if ((s + 1) % c.eval_every == 0 || s + 1 == c.steps) {
      const std::vector<float> ls = to_host(losses, ctx);
      double loss_sum = 0;
      for (std::int64_t k = 0; k < pending; ++k) loss_sum += ls[static_cast<std::size_t>(k)];
      curve.steps.push_back(s + 1);
      curve.train_loss.push_back(loss_sum / static_cast<double>(pending));
      curve.test_error.push_back(1.0 - accuracy(eval, data.test, "x", "labels", "logits"));
      pending = 0;
    }
  }
  char buf[160];
  std::snprintf(buf, sizeof buf, "%-13s after %d steps: train loss %.4f (its last two points), test error %.3f", m.name.c_str(), c.steps,
                curve.final_train_loss(), curve.final_test_error());
  log_line(log, buf);
  return curve;
}
}  // namespace

DegradationConfig DegradationConfig::quick() {
  DegradationConfig c;
  c.models = model_set(8, 20);
  c.widths = {4, 8, 16};
  c.stem_width = 4;
  c.train_images = 1024;
  c.test_images = 256;
  c.crop = 8;
  c.batch = 32;
  c.steps = 200;
  c.eval_every = 20;
  // A few hundred steps are too few for a deep v1 net to catch up with its shallow twin from a
  // random start; starting every block as the identity keeps the comparison about depth.
  c.zero_init_last_bn = true;
  return c;
}

DegradationConfig DegradationConfig::full() {
  DegradationConfig c;
  c.models = model_set(20, 56);
  c.eval_every = 500;
  return c;
}

double DegradationCurve::final_train_loss(int points) const {
  KESTREL_CHECK(!train_loss.empty() && points > 0, "no training loss recorded");
  const std::size_t k = std::min(train_loss.size(), static_cast<std::size_t>(points));
  double s = 0;
  for (std::size_t i = train_loss.size() - k; i < train_loss.size(); ++i) s += train_loss[i];
  return s / static_cast<double>(k);
}

double DegradationCurve::final_test_error() const {
  KESTREL_CHECK(!test_error.empty(), "no test error recorded");
  return test_error.back();
}

const DegradationCurve& DegradationResult::curve(const std::string& name) const {
  for (const DegradationCurve& c : curves)
    if (c.model.name == name) return c;
  KESTREL_FAIL("no degradation curve for model '", name, "'");
}

DegradationResult run_degradation(const DegradationConfig& c, Context& ctx, std::ostream* log,
                                  const std::function<void(const DegradationResult&)>& after_each) {
  KESTREL_CHECK(!c.models.empty() && c.steps > 0 && c.eval_every > 0 && c.batch > 0 && !c.widths.empty(),
                "degradation experiment: needs models, steps, eval_every, batch and widths");
  KESTREL_CHECK(c.dtype == DType::kFloat32 || c.dtype == DType::kBFloat16,
                "degradation experiment: dtype must be fp32 or bf16, got ", dtype_name(c.dtype));
  DegradationResult res;
  res.config = c;
  const CifarDataset raw = load_or_synthesise(c.data_dir, c.train_images, c.test_images, c.seed);
  const FloatDataset data = to_float_dataset(raw, c.train_images, c.test_images, c.crop, c.pool);
  KESTREL_CHECK(data.train.count >= c.batch, "degradation experiment: ", data.train.count, " images for batch ", c.batch);
  res.data_source = data.source;
  log_line(log, "data: " + data.source + ", " + std::to_string(c.train_images) + " training and " +
                    std::to_string(c.test_images) + " test images of " + std::to_string(data.train.side) + "x" +
                    std::to_string(data.train.side) + "; networks compute in " + dtype_name(c.dtype) + " " +
                    layout_name(c.layout));
  if (after_each) after_each(res);  // the data is good: nothing trained yet
  const DeviceData on_device{upload_images(data.train, c.dtype, c.layout, ctx),
                             upload_images(data.test, c.dtype, c.layout, ctx), data.train.side};
  for (const DegradationModel& m : c.models) {
    res.curves.push_back(train_model(c, m, on_device, ctx, log));
    if (after_each) after_each(res);
  }
  return res;
}

LineChart degradation_chart(const DegradationResult& r, bool test_error) {
  LineChart ch;
  ch.title = test_error ? "Test error: plain vs residual networks" : "Training loss: plain vs residual networks";
  // He et al. trained in fp32; a chart made otherwise says so.
  if (r.config.dtype != DType::kFloat32 || r.config.layout != Layout::kNCHW)
    ch.title += std::string(" (") + dtype_name(r.config.dtype) + " " + layout_name(r.config.layout) + ")";
  ch.x_label = "training step";
  ch.y_label = test_error ? "test error" : "training loss (mean since the previous point)";
  for (std::size_t i = 0; i < r.curves.size(); ++i) {
    const DegradationCurve& c = r.curves[i];
    ChartSeries s;
    s.name = c.model.name;
    s.dashed = !c.model.residual;
    for (std::size_t k = 0; k < c.steps.size(); ++k) {
      s.x.push_back(c.steps[k]);
      s.y.push_back(test_error ? c.test_error[k] : c.train_loss[k]);
    }
    ch.series.push_back(s);
  }
  return ch;
}

std::vector<std::string> write_degradation_report(const DegradationResult& r, const std::string& dir) {
  ReportFolder folder(dir);
  // A chart with nothing to draw yet (no network, or one whose loss is NaN throughout) is left
  // out, and an earlier run's copy removed, rather than raised about: raising here would stop
  // the run before its remaining networks.
  for (const bool test_error : {false, true}) {
    const LineChart ch = degradation_chart(r, test_error);
    const char* file = test_error ? "degradation_test_error.svg" : "degradation_train_loss.svg";
    if (const std::string p = folder.file(file, has_drawable_point(ch)); !p.empty()) write_svg(ch, p);
  }
  const std::string csv = folder.file("degradation.csv", !r.curves.empty());
  if (csv.empty()) return folder.written();
  CsvTable t({"model", "depth", "residual", "version", "dtype", "layout", "step", "train_loss", "test_error"});
  for (const DegradationCurve& c : r.curves)
    for (std::size_t k = 0; k < c.steps.size(); ++k)
      t.add_row({c.model.name, std::to_string(c.model.depth), c.model.residual ? "1" : "0",
                 std::to_string(c.model.version), dtype_name(r.config.dtype), layout_name(r.config.layout),
                 std::to_string(c.steps[k]), CsvTable::cell(c.train_loss[k]), CsvTable::cell(c.test_error[k])});
  t.write(csv);
  return folder.written();
}

}  // namespace kestrel::experiments
