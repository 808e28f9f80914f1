#include "kestrel/layers/train_program.h"

#include <cmath>
#include <filesystem>
#include <ostream>

#include "kestrel/core/error.h"
#include "kestrel/layers/checkpoint.h"
#include "kestrel/layers/output_files.h"

namespace kestrel {
namespace {

bool on_off(const std::string& option, const std::string& value) {
  KESTREL_CHECK(value == "on" || value == "off", "--", option, " must be on or off, got '", value, "'");
  return value == "on";
}

void check_finite(const std::string& option, double v, double lo, bool lo_open, double hi, bool hi_open) {
  const bool above = lo_open ? v > lo : v >= lo;
  const bool below = hi_open ? v < hi : v <= hi;
  KESTREL_CHECK(std::isfinite(v) && above && below, "--", option, " must be in ", lo_open ? "(" : "[",
                lo, ", ", hi, hi_open ? ")" : "]", ", got ", v);
}

// The first `count` records of a split (count 0 or >= the split's size: all of it).
void keep_first(CifarSplit& s, std::int64_t count) {
  if (count <= 0 || count >= s.count) return;
  s.count = count;
  s.images.resize(static_cast<std::size_t>(count * kCifarImageBytes));
  s.labels.resize(static_cast<std::size_t>(count));
}

}  // namespace

TrainPlan plan_training(const TrainOptions& o, const std::string& cuda_reason, bool default_data_present) {
  TrainPlan plan;
  auto given = [&](const char* name) { return o.given.count(name) > 0; };

  // Device: "auto" takes the GPU when there is one.
  if (o.device == "auto") {
    plan.device = cuda_reason.empty() ? Device::cuda(0) : Device::cpu();
  } else {
    try {
      plan.device = parse_device(o.device);
    } catch (const Error&) {
      KESTREL_FAIL("--device must be auto, cpu, cuda or cuda:N, got '", o.device, "'");
    }
  }
  plan.small_cpu_config = plan.device.is_cpu();
  const bool small = plan.small_cpu_config;
  auto small_default = [&](const char* name) { return small && !given(name); };

  std::string model = small_default("model") ? kCpuModel : o.model;
  const int width = small_default("width") && small_default("model") ? kCpuWidth : o.width;
  KESTREL_CHECK(o.version == 1 || o.version == 2, "--version must be 1 or 2, got ", o.version);
  KESTREL_CHECK(width >= 0 && width <= 1024, "--width must be in 0..1024, got ", width);
  TrainerConfig& t = plan.trainer;
  try {
    t.net = resnet_config(model, o.version);
  } catch (const Error& e) {
    KESTREL_FAIL("--model: ", e.message());
  }
  KESTREL_CHECK(!given("version") || t.net.version == o.version, "--version ", o.version, " does not apply to ", model,
                ": it is a v", t.net.version, " network (--version chooses between v1 and v2 of resnet and plain models)");
  if (width > 0) {
    const std::int64_t k = width;
    t.net.stem_width = k;
    for (std::size_t i = 0; i < t.net.widths.size(); ++i) t.net.widths[i] = k << i;
    t.net.name = model + "-w" + std::to_string(width);
  }
  if (o.dropout >= 0.0 || given("dropout")) {
    check_finite("dropout", o.dropout, 0.0, false, 1.0, true);
    t.net.dropout = static_cast<float>(o.dropout);
  }
  t.epochs = small_default("epochs") ? kCpuEpochs : o.epochs;
  t.batch = small_default("batch") ? kCpuBatch : o.batch;
  KESTREL_CHECK(t.epochs >= 1 && t.epochs <= 100000, "--epochs must be in 1..100000, got ", t.epochs);
  KESTREL_CHECK(t.batch >= 1 && t.batch <= 65536, "--batch must be in 1..65536, got ", t.batch);
  KESTREL_CHECK(o.eval_batch >= 0 && o.eval_batch <= 65536, "--eval-batch must be in 0..65536, got ", o.eval_batch);
  t.eval_batch = o.eval_batch;

  // Optimisation.
  const double lr = small_default("lr") ? kCpuLr : o.lr;
  check_finite("lr", lr, 0.0, true, 100.0, false);
  t.schedule.base = static_cast<float>(lr);
  try {
    t.schedule.kind = parse_schedule_kind(o.schedule);
  } catch (const Error& e) {
    KESTREL_FAIL("--schedule: ", e.message());
  }
  check_finite("warmup-epochs", o.warmup_epochs, 0.0, false, t.epochs, true);
  KESTREL_CHECK(o.warmup_epochs == 0.0 || t.schedule.kind != LrSchedule::Kind::kOneCycle,
                "--warmup-epochs does not apply to --schedule onecycle (it warms up on its own)");
  try {
    t.optimizer = parse_optimizer_kind(o.optimizer);
  } catch (const Error&) {
    t.optimizer = OptimizerKind::kNone;  // refused below, naming the two a run can take
  }
  KESTREL_CHECK(t.optimizer != OptimizerKind::kNone, "--optimizer must be sgd or adamw, got '", o.optimizer, "'");
  KESTREL_CHECK(t.optimizer == OptimizerKind::kSgd || (!given("momentum") && !given("nesterov")),
                "--momentum and --nesterov apply to --optimizer sgd (AdamW keeps its own moment estimates)");
  double wd = o.weight_decay;
  if (t.optimizer == OptimizerKind::kAdamW && !given("weight-decay")) wd = 5e-2;
  check_finite("weight-decay", wd, 0.0, false, 1.0, false);
  check_finite("momentum", o.momentum, 0.0, false, 1.0, true);
  t.sgd.momentum = static_cast<float>(o.momentum);
  t.sgd.weight_decay = static_cast<float>(wd);
  t.sgd.nesterov = o.nesterov;
  KESTREL_CHECK(!o.nesterov || o.momentum > 0.0, "--nesterov needs --momentum > 0");
  t.adamw.weight_decay = static_cast<float>(wd);
  t.decay_bn_and_bias = !o.no_decay_bn_bias;
  check_finite("label-smoothing", o.label_smoothing, 0.0, false, 1.0, true);
  t.label_smoothing = static_cast<float>(o.label_smoothing);
  check_finite("clip-grad-norm", o.clip_grad_norm, 0.0, false, 1e30, false);
  t.max_grad_norm = static_cast<float>(o.clip_grad_norm);
  KESTREL_CHECK(o.clip_grad_norm == 0.0 || t.max_grad_norm > 0.f, "--clip-grad-norm ", o.clip_grad_norm,
                " is too small for fp32 (it would round to 0, no clipping)");

  // Numerics and execution.
  try {
    t.dtype = parse_dtype(o.dtype);
  } catch (const Error&) {
    KESTREL_FAIL("--dtype must be fp32 or bf16, got '", o.dtype, "'");
  }
  KESTREL_CHECK(t.dtype == DType::kFloat32 || t.dtype == DType::kBFloat16,
                "--dtype must be fp32 or bf16, got '", o.dtype, "'");
  KESTREL_CHECK(o.layout == "nchw" || o.layout == "nhwc", "--layout must be nchw or nhwc, got '", o.layout, "'");
  t.layout = o.layout == "nhwc" ? Layout::kNHWC : Layout::kNCHW;
  KESTREL_CHECK(o.nonfinite == "stop" || o.nonfinite == "skip", "--nonfinite must be stop or skip, got '",
                o.nonfinite, "'");
  t.nonfinite = o.nonfinite == "skip" ? NonFinitePolicy::kSkip : NonFinitePolicy::kStop;
  t.cuda_graph = on_off("cuda-graph", o.cuda_graph);
  t.recompute_bn_relu = on_off("recompute-bn", o.recompute_bn);
  const bool deterministic = on_off("deterministic", o.deterministic);
  plan.conv_policy.deterministic = deterministic;
  plan.conv_policy.autotune = !deterministic;  // timing-based choices differ run to run
  KESTREL_CHECK(o.max_steps >= 0, "--max-steps must be >= 0, got ", o.max_steps);
  t.max_steps = o.max_steps;
  KESTREL_CHECK(o.checkpoint_every >= 0, "--checkpoint-every must be >= 0, got ", o.checkpoint_every);
  KESTREL_CHECK(o.checkpoint_every == 0 || !o.checkpoint.empty(), "--checkpoint-every needs --checkpoint FILE");
  t.checkpoint_every = o.checkpoint_every;
  check_finite("time-limit", o.time_limit, 0.0, false, 1e7, false);
  plan.time_limit_s = o.time_limit * 60.0;
  KESTREL_CHECK(o.log_every >= 1, "--log-every must be >= 1, got ", o.log_every);
  t.log_every = o.log_every;
  t.seed = o.seed;
  t.checkpoint_path = o.checkpoint;
  t.log_path = o.log;
  plan.resume = o.resume;
  plan.overwrite = o.overwrite;

  // Data.
  KESTREL_CHECK(o.train_images >= 0 && o.test_images >= 0, "--train-images and --test-images must be >= 0");
  plan.download = o.download;
  const bool explicit_dir = !o.data.empty() && o.data != "synthetic";
  KESTREL_CHECK(!(o.download && o.data == "synthetic"), "--download fetches CIFAR-10; it cannot go with --data synthetic");
  if (explicit_dir || o.download) {
    plan.synthetic = false;
    plan.data_dir = explicit_dir ? o.data : kDefaultDataDir;
  } else if (o.data.empty() && default_data_present && !small) {
    plan.synthetic = false;
    plan.data_dir = kDefaultDataDir;
  } else {
    plan.synthetic = true;
  }
  plan.train_images = given("train-images") ? o.train_images
                      : small              ? kCpuTrainImages
                      : plan.synthetic     ? kSyntheticTrainImages
                                           : 0;
  plan.test_images = given("test-images") ? o.test_images
                     : small              ? kCpuTestImages
                     : plan.synthetic     ? kSyntheticTestImages
                                          : 0;
  if (plan.synthetic) {
    KESTREL_CHECK(plan.train_images >= t.batch, "--train-images (", plan.train_images,
                  ") must hold at least one batch (", t.batch, ")");
  }
  t.random_crop = on_off("crop", o.crop);
  KESTREL_CHECK(o.flip == "on" || o.flip == "off" || o.flip == "auto", "--flip must be on, off or auto, got '",
                o.flip, "'");
  t.random_flip = o.flip == "auto" ? !plan.synthetic : o.flip == "on";

  t.warmup_epochs = o.warmup_epochs;  // the trainer converts it to steps
  validate(t);

  if (small) {
    const std::string why = o.device == "auto" ? "no CUDA device (" + cuda_reason + ")" : "--device cpu";
    std::string what = t.net.name + ", " + std::to_string(plan.train_images) + " " +
                       (plan.synthetic ? "synthetic" : "CIFAR-10") + " images, " +
                       std::to_string(t.epochs) + " epochs of batch " + std::to_string(t.batch);
    plan.notes.push_back(why + ": training a small CPU configuration (" + what +
                         ") - options given on the command line override it");
  }
  if (plan.synthetic) {
    std::string why = o.data == "synthetic" ? "--data synthetic"
                      : small               ? "the CPU configuration"
                                            : std::string("no --data and no ") + kDefaultDataDir +
                                                  "/cifar-10-batches-bin";
    plan.notes.push_back(why + ": training on synthetic CIFAR-format data (" +
                         std::to_string(plan.train_images) + " train, " + std::to_string(plan.test_images) +
                         " test images of stripe and ring patterns); use --data DIR or --download for CIFAR-10");
    if (o.flip == "auto")
      plan.notes.push_back("no random flips on synthetic data: its classes include mirror images of each other");
  }
  return plan;
}

void check_training_outputs(const TrainPlan& plan) {
  const std::string& ck = plan.trainer.checkpoint_path;
  const std::string& log = plan.trainer.log_path;
  check_output_file(ck, "--checkpoint");
  check_output_file(log, "--log");
  KESTREL_CHECK(!same_file(log, ck), "--log ", log, " is the --checkpoint file: give the log another name");
  KESTREL_CHECK(!same_file(log, plan.resume), "--log ", log, " is the --resume file: give the log another name");
  if (plan.overwrite) return;
  std::error_code ec;
  KESTREL_CHECK(ck.empty() || !std::filesystem::exists(ck, ec) || same_file(ck, plan.resume), "--checkpoint ", ck,
                " exists (an earlier run's): continue it with --resume ", ck,
                ", or pass --overwrite to replace it");
  KESTREL_CHECK(log.empty() || !plan.resume.empty() || !std::filesystem::exists(log, ec), "--log ", log,
                " exists (an earlier run's): pass --overwrite to start it again, or give another name");
}

CifarDataset load_plan_data(const TrainPlan& plan, std::ostream& log) {
  if (plan.synthetic) return synthetic_cifar10(plan.train_images, plan.test_images, kSyntheticDataSeed);
  if (plan.download) download_cifar10(plan.data_dir, log);
  std::error_code ec;
  KESTREL_CHECK(!std::filesystem::exists(plan.data_dir, ec) || std::filesystem::is_directory(plan.data_dir, ec),
                "--data ", plan.data_dir, " is a file, not a folder: give the folder that holds data_batch_1.bin ... "
                "test_batch.bin (or cifar-10-batches-bin)");
  CifarDataset d = load_cifar10(plan.data_dir);
  keep_first(d.train, plan.train_images);
  keep_first(d.test, plan.test_images);
  if (plan.train_images > 0 || plan.test_images > 0)
    d.source += " (first " + std::to_string(d.train.count) + " train, " + std::to_string(d.test.count) +
                " test images)";
  return d;
}

}  // namespace kestrel
