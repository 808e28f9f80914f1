#include "kestrel/layers/trainer.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "kestrel/core/error.h"
#include "kestrel/core/number_text_internal.h"
#include "kestrel/core/nonfinite_internal.h"
#include "kestrel/layers/checkpoint.h"
#include "kestrel/layers/nn.h"
#include "kestrel/layers/output_files.h"
#include "kestrel/layers/trainer_device_internal.h"
#include "kestrel/layers/trainer_impl_internal.h"
#include "kestrel/layers/trainer_recipe_internal.h"

namespace kestrel {
namespace {
namespace td = trainer_detail;
using td::Json;
using td::json_float;
using td::printf_string;

std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

Tensor upload(Context& ctx, const void* host, const Shape& shape, DType dtype) {
  Tensor d = Tensor::empty(shape, dtype, ctx);
  d.copy_from(Tensor::wrap(const_cast<void*>(host), shape, dtype, Device::cpu()), ctx.stream());
  return d;
}

}  // namespace

Graph build_training_graph(const TrainerConfig& cfg, std::int64_t batch) {
  GraphOptions o;
  o.batch = batch;
  o.dtype = cfg.dtype;
  o.layout = cfg.layout;
  Graph g(o);
  const Value images = nn::image_input(g, "images", 3, 32, 32);
  const Value labels = nn::label_input(g, "labels");
  const Value logits = build_resnet(g, images, cfg.net);
  g.mark_output(logits, "logits");
  nn::softmax_cross_entropy(g, logits, labels, cfg.label_smoothing);
  return g;
}

std::uint64_t augment_seed(std::uint64_t seed) noexcept { return splitmix64(seed ^ 0x4155474D454E54ull); }
std::uint64_t shuffle_seed(std::uint64_t seed) noexcept { return splitmix64(seed ^ 0x53485546464C45ull); }

void validate(const TrainerConfig& c) {
  KESTREL_CHECK(c.epochs >= 1, "epochs must be >= 1, got ", c.epochs);
  KESTREL_CHECK(c.batch >= 1, "batch must be >= 1, got ", c.batch);
  KESTREL_CHECK(c.eval_batch >= 0, "eval batch must be >= 0 (0: the training batch), got ", c.eval_batch);
  KESTREL_CHECK(c.max_steps >= 0, "max steps must be >= 0 (0: no limit), got ", c.max_steps);
  KESTREL_CHECK(c.log_every >= 1, "log interval must be >= 1 step, got ", c.log_every);
  KESTREL_CHECK(c.checkpoint_every >= 0, "checkpoint interval must be >= 0 steps (0: per epoch), got ",
                c.checkpoint_every);
  KESTREL_CHECK(c.pad >= 0 && c.pad <= 16, "crop padding must be in 0..16, got ", c.pad);
  KESTREL_CHECK(c.label_smoothing >= 0.f && c.label_smoothing < 1.f,
                "label smoothing must be in [0, 1), got ", c.label_smoothing);
  KESTREL_CHECK(c.dtype == DType::kFloat32 || c.dtype == DType::kBFloat16,
                "training dtype must be fp32 or bf16, got ", dtype_name(c.dtype));
  KESTREL_CHECK(std::isfinite(c.max_grad_norm) && c.max_grad_norm >= 0.f,
                "max gradient norm must be finite and >= 0 (0: no clipping), got ", c.max_grad_norm);
  KESTREL_CHECK(c.max_skips_in_a_row >= 0, "max skips in a row must be >= 0");
  KESTREL_CHECK(std::isfinite(c.warmup_epochs) && c.warmup_epochs >= 0.0 && c.warmup_epochs < c.epochs,
                "warm-up must be in [0, ", c.epochs, ") epochs, got ", c.warmup_epochs);
  KESTREL_CHECK(c.optimizer == OptimizerKind::kSgd || c.optimizer == OptimizerKind::kAdamW,
                "the trainer needs an optimizer (sgd or adamw)");
  if (c.optimizer == OptimizerKind::kSgd) validate(c.sgd);
  if (c.optimizer == OptimizerKind::kAdamW) validate(c.adamw);
  // The total steps are known once the data is (the constructor checks the warm-up against them):
  // here the schedule is checked as if the run were long enough.
  LrSchedule s = c.schedule;
  // One step past the warm-up, saturating (at INT64_MAX the schedule's own check refuses it).
  const std::int64_t past_warmup =
      s.warmup_steps < std::numeric_limits<std::int64_t>::max() ? s.warmup_steps + 1 : s.warmup_steps;
  s.total_steps = std::max<std::int64_t>({s.total_steps, past_warmup, 1});
  validate(s);
  KESTREL_CHECK(c.schedule.kind != LrSchedule::Kind::kOneCycle || c.warmup_epochs == 0.0,
                "warm-up epochs do not apply to the one-cycle schedule (its own warm-up is pct_start)");
}

void Trainer::Impl::build(const SafetensorsFile* resume, const std::string& resume_name) {
  std::uint64_t seed = cfg.seed;
  if (resume != nullptr) {
    auto expect = [&](const std::string& key, const std::string& want) {
      const std::string have = kestrel::checkpoint_metadata(*resume, key, resume_name);
      KESTREL_CHECK(have == want, resume_name, " was written for ", key, " ", have,
                    ", but this run has ", key, " ", want);
    };
    expect("model", cfg.net.name);
    expect("version", std::to_string(cfg.net.version));
    expect("batch", std::to_string(cfg.batch));
    expect("train_images", std::to_string(n_train));
    // The same images, not only as many: a run that fell back to synthetic data (no ./data in
    // this folder) or found another copy or subset must not continue a checkpoint, and a later
    // save would overwrite it. Checkpoints of Kestrel before 2026-11-27 carry no fingerprint.
    const auto fp = resume->metadata.find("train_fingerprint");
    if (fp == resume->metadata.end()) {
      out << "note: " << resume_name << " records no training-set fingerprint (an older Kestrel's): "
          << "its data cannot be checked against this run's (" << data_source << ")\n";
    } else if (fp->second != train_fingerprint) {
      const auto source = resume->metadata.find("train_source");
      KESTREL_FAIL(resume_name, " was trained on other data (",
                   source != resume->metadata.end() ? source->second : std::string("source not recorded"),
                   ", training-set fingerprint ", fp->second, ") than this run's (", data_source,
                   ", fingerprint ", train_fingerprint, ")");
    }
    // The same recipe: a resumed run continues the training its checkpoint began, so options
    // that would change it (dtype, epochs, optimizer, schedule, augmentation, ...) are refused,
    // all differences named at once.
    bool recorded = false;
    const std::vector<std::string> diffs =
        trainer_detail::recipe_differences(resume->metadata, trainer_detail::training_recipe(cfg), &recorded);
    if (!diffs.empty()) {
      std::string list;
      for (const std::string& d : diffs) list += (list.empty() ? "" : ", ") + d;
      KESTREL_FAIL(resume_name, " was written by a run with another recipe: ", list,
                   "; resume with the options that made it (a resumed run continues the same training)");
    }
    if (!recorded)
      out << "note: " << resume_name << " records no training recipe (an older Kestrel's): its optimizer, "
          << "schedule and augmentation cannot be checked against this run's\n";
    seed = checkpoint_metadata_u64(*resume, "seed", resume_name);
    if (seed != cfg.seed)
      out << "note: continuing with " << resume_name << "'s seed " << seed << " (this run was given " << cfg.seed
          << "; a resumed run keeps its checkpoint's dropout and shuffling streams)\n";
    cfg.seed = seed;
  }
  const Graph tg = build_training_graph(cfg, cfg.batch);
  store = std::make_unique<ParameterStore>(tg, ctx, seed);
  if (!cfg.decay_bn_and_bias) store->exempt_1d_from_decay();
  CompileOptions co;
  co.fuse = cfg.fuse;
  co.recompute_bn_relu = cfg.recompute_bn_relu;
  co.optimizer = cfg.optimizer;
  co.sgd = cfg.sgd;
  co.adamw = cfg.adamw;
  co.max_grad_norm = cfg.max_grad_norm;
  co.track_grad_norm = true;  // one read of the gradients a step, for the log's grad_norm
  train = std::make_unique<Executor>(tg, *store, ctx, co);
  CompileOptions eo;
  eo.training = false;
  eo.fuse = cfg.fuse;
  eval = std::make_unique<Executor>(build_training_graph(cfg, eval_batch), *store, ctx, eo);
  in_images = train->input("images");
  in_labels = train->input("labels");
  logits = train->output("logits");
  loss = train->output("loss");
  ev_images = eval->input("images");
  ev_labels = eval->input("labels");
  ev_logits = eval->output("logits");
  if (resume != nullptr) {
    load_checkpoint(*resume, *store, {}, resume_name);
    restore_position(*resume, resume_name);
  }
}

void Trainer::Impl::upload_data(const CifarDataset& data) {
  const Shape img{n_train, 3, 32, 32}, lab{n_train};
  train_images = upload(ctx, data.train.images.data(), img, DType::kUInt8);
  train_labels = upload(ctx, data.train.labels.data(), lab, DType::kUInt8);
  if (n_test > 0) {
    test_images = upload(ctx, data.test.images.data(), Shape{n_test, 3, 32, 32}, DType::kUInt8);
    test_labels = upload(ctx, data.test.labels.data(), Shape{n_test}, DType::kUInt8);
  }
  perm = Tensor::empty(Shape{n_train}, DType::kInt32, ctx);
  std::vector<std::int32_t> idx(static_cast<std::size_t>(std::max<std::int64_t>(1, eval_batches * eval_batch)), 0);
  for (std::int64_t i = 0; i < n_test; ++i) idx[static_cast<std::size_t>(i)] = static_cast<std::int32_t>(i);
  eval_indices = upload(ctx, idx.data(), Shape{static_cast<std::int64_t>(idx.size())}, DType::kInt32);
  std::vector<float> rates(static_cast<std::size_t>(cfg.schedule.total_steps));
  for (std::int64_t s = 0; s < cfg.schedule.total_steps; ++s) rates[static_cast<std::size_t>(s)] = lr_at(s);
  lr_table = upload(ctx, rates.data(), Shape{cfg.schedule.total_steps}, DType::kFloat32);
  losses = Tensor::empty(Shape{spe}, DType::kFloat32, ctx);
  losses.zero(ctx.stream());
  counters = Tensor::empty(Shape{16}, DType::kUInt8, ctx);
  counters.zero(ctx.stream());
  ctx.stream().synchronize();  // the host vectors above go out of scope
}

void Trainer::Impl::restore_position(const SafetensorsFile& f, const std::string& name) {
  // Every count is checked against this run's sizes before it is used as an index: a position
  // outside them (a crafted or damaged file, or a run of fewer epochs) would index the epoch's
  // permutation and loss buffers out of bounds.
  auto count = [&](const char* key, std::int64_t most, const char* bound) {
    const std::uint64_t v = checkpoint_metadata_u64(f, key, name);
    KESTREL_CHECK(v <= static_cast<std::uint64_t>(most), name, ": __metadata__ \"", key, "\" is ", v, ", more than ",
                  bound, " (", most, ")");
    return static_cast<std::int64_t>(v);
  };
  step = count("step", cfg.schedule.total_steps, "this run's steps (epochs x steps an epoch)");
  skipped_total = count("skipped_steps", step, "its \"step\"");
  auto finite_sum = [&](const char* key) {
    const std::string text = kestrel::checkpoint_metadata(f, key, name);
    double v = 0.0;
    KESTREL_CHECK(detail::parse_double(text, &v) && std::isfinite(v), name, ": __metadata__ \"", key, "\" is \"",
                  text, "\", not a finite number");
    return v;
  };
  // Checkpoints from before these keys resume as if there were no skips in a row and no norm yet.
  const auto has = [&](const char* key) { return f.metadata.count(key) != 0; };
  if (has("skips_in_a_row"))
    skips_in_a_row = static_cast<int>(std::min<std::int64_t>(
        count("skips_in_a_row", skipped_total, "its \"skipped_steps\""), std::numeric_limits<int>::max()));
  if (has("grad_norm")) {
    const std::string norm = kestrel::checkpoint_metadata(f, "grad_norm", name);
    KESTREL_CHECK(detail::parse_float(norm, &resumed_grad_norm) && !(resumed_grad_norm < 0.f), name,
                  ": __metadata__ \"grad_norm\" is \"", norm, "\", not a norm");
  }
  if (step % spe == 0) return;
  // Mid-epoch: the epoch's accumulators continue from the checkpoint.
  skipped.assign(static_cast<std::size_t>(spe), 0);
  loss_steps = count("epoch_loss_steps", step % spe, "the steps taken in its epoch");
  images = count("epoch_images", (step % spe) * cfg.batch, "the images of the steps taken in its epoch");
  const std::int64_t correct = count("epoch_correct", images, "its \"epoch_images\"");
  loss_sum = finite_sum("epoch_loss_sum");
  td::write_int64(ctx, train_correct(), &correct, 1);
  if (has("interval_steps")) {
    interval_steps = count("interval_steps", loss_steps, "its \"epoch_loss_steps\"");
    interval_loss = finite_sum("interval_loss_sum");
  }
}

void Trainer::Impl::start_epoch(int epoch, std::int64_t begin) {
  const std::vector<std::int32_t> p = epoch_permutation(n_train, shuffle_seed(cfg.seed), epoch);
  perm.copy_from(Tensor::wrap(const_cast<std::int32_t*>(p.data()), Shape{n_train}, DType::kInt32,
                              Device::cpu()),
                 ctx.stream());
  read_upto = begin;
  run_steps = 0;
  epoch_seconds = 0.0;
  // A new epoch starts its accumulators; one continued (a second train() call after max_steps,
  // or a mid-epoch checkpoint) keeps them.
  if (begin == 0) {
    skipped.assign(static_cast<std::size_t>(spe), 0);
    loss_sum = 0.0;
    loss_steps = images = 0;
    const std::int64_t zero = 0;
    td::write_int64(ctx, train_correct(), &zero, 1);
    interval_loss = 0.0;
    interval_steps = 0;
  }
  interval_start = last_read = Clock::now();
  interval_images = 0;
}

void Trainer::Impl::run_step(int epoch, std::int64_t s) {
  const std::int64_t global = static_cast<std::int64_t>(epoch) * spe + s;
  AugmentParams p = train_aug;
  p.offset = static_cast<std::uint64_t>(global);
  td::augment(ctx, train_images, train_labels, perm.data_as<std::int32_t>() + s * cfg.batch,
              cfg.batch, in_images, in_labels, p);
  td::copy_bytes(ctx, store->learning_rate_ptr(), lr_table.data_as<float>() + global, sizeof(float));
  bool counted = true;
  if (cfg.nonfinite == NonFinitePolicy::kSkip) {
    counted = run_step_skipping(epoch, s);
  } else {
    train->run();
    // The first step ran eagerly (lazy library set-up must not happen during capture); every
    // later step replays it. Augmentation and the copies stay outside, on the same stream.
    if (use_graph() && !train->uses_cuda_graph()) train->capture_cuda_graph();
  }
  if (counted) {
    td::count_correct(ctx, logits, in_labels, cfg.batch, train_correct());
    images += cfg.batch;
  }
  td::copy_bytes(ctx, losses.data_as<float>() + s, loss.data(), sizeof(float));
  ++run_steps;
  interval_images += cfg.batch;
}

bool Trainer::Impl::run_step_skipping(int epoch, std::int64_t s) {
  Tensor states = store->flat_states();
  states_backup.copy_from(states, ctx.stream());
  train->run_forward_backward();
  Tensor host = Tensor::empty_cpu(Shape{1}, DType::kFloat32);
  host.copy_from(loss, ctx.stream());
  const float value = host.data_as<float>()[0];
  const std::int64_t bad_grads = std::isfinite(value) ? count_nonfinite(ctx, store->flat_grads(), scratch) : 0;
  if (std::isfinite(value) && bad_grads == 0) {
    train->apply_update();
    skips_in_a_row = 0;
    return true;
  }
  states.copy_from(states_backup, ctx.stream());  // the skipped step leaves no trace
  skipped[static_cast<std::size_t>(s)] = 1;
  ++skipped_total;
  ++skips_in_a_row;
  const std::int64_t number = static_cast<std::int64_t>(epoch) * spe + s + 1;
  const std::string why = !std::isfinite(value) ? "loss " + printf_string("%g", value)
                                                : std::to_string(bad_grads) + " non-finite gradients";
  say("step " + std::to_string(number) + " (epoch " + std::to_string(epoch + 1) + "): " + why +
      ", update skipped");
  write_json(Json{{"event", "skip"}, {"epoch", epoch + 1}, {"step", number}, {"reason", why}});
  KESTREL_CHECK(skips_in_a_row <= cfg.max_skips_in_a_row, "loss became NaN/Inf at step ", number,
                " (epoch ", epoch + 1, "): ", skips_in_a_row, " steps in a row skipped, stopping");
  return false;
}

EvalResult Trainer::Impl::evaluate(const std::function<bool()>& stop) {
  EvalResult r;
  if (n_test == 0) return r;
  const std::int64_t zero = 0;
  td::write_int64(ctx, eval_correct(), &zero, 1);
  for (std::int64_t b = 0; b < eval_batches; ++b) {
    if (stop && stop()) {
      ctx.stream().synchronize();  // the queued batches end before the caller goes on
      r.stopped = true;
      return r;
    }
    td::augment(ctx, test_images, test_labels, eval_indices.data_as<std::int32_t>() + b * eval_batch,
                eval_batch, ev_images, ev_labels, eval_aug);
    eval->run();
    if (use_graph() && !eval->uses_cuda_graph()) eval->capture_cuda_graph();
    // The final batch is padded with image 0; only its valid rows count.
    const std::int64_t rows = std::min(eval_batch, n_test - b * eval_batch);
    td::count_correct(ctx, ev_logits, ev_labels, rows, eval_correct());
    r.images += rows;
  }
  std::int64_t correct = 0;
  td::read_int64(ctx, eval_correct(), &correct, 1);
  r.accuracy = static_cast<double>(correct) / static_cast<double>(n_test);
  return r;
}

bool Trainer::Impl::stop_requested() const {
  return cfg.stop_requested && cfg.stop_requested();
}

void Trainer::Impl::stop_at(int epoch, std::int64_t s, bool requested, TrainResult& r) {
  // No log line: the interval goes on in the resumed run (or the next train() call), whose next
  // line is then the uninterrupted run's.
  read_back(epoch, s, r, false);
  if (!cfg.checkpoint_path.empty() && step > r.first_step) {
    kestrel::save_checkpoint(*store, cfg.checkpoint_path, metadata());
  }
  end_stopped(requested, r);
}

void Trainer::Impl::end_stopped(bool requested, TrainResult& r) {
  r.steps_done = step;
  r.skipped_steps = skipped_total;
  r.interrupted = requested;
  say("stopped after step " + std::to_string(step) + (requested ? " (stop requested)" : " (--max-steps)"));
}

TrainResult Trainer::Impl::run() {
  TrainResult r;
  r.first_step = step;
  for (int epoch = static_cast<int>(step / spe); epoch < cfg.epochs; ++epoch) {
    const std::int64_t begin = step - static_cast<std::int64_t>(epoch) * spe;
    start_epoch(epoch, begin);
    for (std::int64_t s = begin; s < spe; ++s) {
      const bool requested = stop_requested();
      if (requested || (cfg.max_steps > 0 && step >= cfg.max_steps)) {
        stop_at(epoch, s, requested, r);
        return r;
      }
      run_step(epoch, s);
      ++step;
      if ((s + 1) % cfg.log_every == 0 && s + 1 < spe) read_back(epoch, s + 1, r, true);
      if (cfg.checkpoint_every > 0 && !cfg.checkpoint_path.empty() && step % cfg.checkpoint_every == 0 &&
          s + 1 < spe) {
        read_back(epoch, s + 1, r, false);  // the epoch's running totals go into the checkpoint
        kestrel::save_checkpoint(*store, cfg.checkpoint_path, metadata());
      }
    }
    read_back(epoch, spe, r, false);
    r.epochs.push_back(finish_epoch(epoch));
    if (!cfg.checkpoint_path.empty())
      kestrel::save_checkpoint(*store, cfg.checkpoint_path, metadata());
    // A request that came during the epoch's last step stops here, after the epoch's evaluation
    // (short beside an epoch) and checkpoint: a resumed run starts with the next epoch, so an
    // epoch stopped before its evaluation would never be evaluated or logged.
    if (epoch + 1 < cfg.epochs && stop_requested()) {
      end_stopped(true, r);
      return r;
    }
  }
  r.steps_done = step;
  r.skipped_steps = skipped_total;
  r.finished = true;
  return r;
}

Trainer::Trainer(const TrainerConfig& cfg, const CifarDataset& data, Context& ctx, std::ostream& out,
                 const SafetensorsFile* resume, const std::string& resume_name)
    : impl_(std::make_unique<Impl>(cfg, ctx, out)) {
  validate(cfg);
  // The checkpoint is first written after an epoch: a path that cannot take it is refused now.
  check_output_file(cfg.checkpoint_path, "checkpoint_path");
  KESTREL_CHECK(!same_file(cfg.log_path, cfg.checkpoint_path), "log_path ", cfg.log_path,
                " is the checkpoint file: the log needs a file of its own");
  Impl& m = *impl_;
  m.n_train = data.train.count;
  m.n_test = data.test.count;
  KESTREL_CHECK(static_cast<std::int64_t>(data.train.images.size()) == m.n_train * kCifarImageBytes &&
                    static_cast<std::int64_t>(data.train.labels.size()) == m.n_train &&
                    static_cast<std::int64_t>(data.test.images.size()) == m.n_test * kCifarImageBytes &&
                    static_cast<std::int64_t>(data.test.labels.size()) == m.n_test,
                "the dataset's sizes do not match its counts");
  KESTREL_CHECK(m.n_train >= cfg.batch, "the training set (", m.n_train,
                " images) is smaller than one batch (", cfg.batch, ")");
  m.spe = m.n_train / cfg.batch;  // the last partial batch is dropped
  // No larger than the test set: a bigger batch would only compute padding (an --eval-batch of
  // 65536 once evaluated 1,000 images as 65,536, for 88 s on a CPU).
  m.eval_batch = std::min(cfg.eval_batch > 0 ? cfg.eval_batch : cfg.batch, std::max<std::int64_t>(1, m.n_test));
  m.eval_batches = (m.n_test + m.eval_batch - 1) / m.eval_batch;
  m.cfg.schedule.total_steps = static_cast<std::int64_t>(cfg.epochs) * m.spe;
  const std::int64_t warmup = std::llround(cfg.warmup_epochs * static_cast<double>(m.spe));
  const bool warmup_fits = !__builtin_add_overflow(cfg.schedule.warmup_steps, warmup, &m.cfg.schedule.warmup_steps);
  KESTREL_CHECK(warmup_fits && m.cfg.schedule.warmup_steps < m.cfg.schedule.total_steps, "warm-up (",
                cfg.schedule.warmup_steps, " steps + ", cfg.warmup_epochs, " epochs = ", warmup,
                " steps of ", m.spe, " an epoch) must be shorter than the ", m.cfg.schedule.total_steps,
                " training steps");
  validate(m.cfg.schedule);
  m.data_source = data.source;
  m.train_fingerprint = cifar10_fingerprint(data.train);
  m.device_name = device_description(ctx.device());
  for (AugmentParams* p : {&m.train_aug, &m.eval_aug}) {
    std::copy(kCifarMean, kCifarMean + 3, p->mean);
    std::copy(kCifarStd, kCifarStd + 3, p->std);
    p->pad = cfg.pad;
  }
  m.train_aug.random_crop = cfg.random_crop;
  m.train_aug.random_flip = cfg.random_flip;
  m.eval_aug.random_crop = m.eval_aug.random_flip = false;
  m.upload_data(data);
  m.build(resume, resume_name);
  m.train_aug.seed = augment_seed(m.cfg.seed);
  if (cfg.nonfinite == NonFinitePolicy::kSkip)
    m.states_backup = Tensor::empty(m.store->flat_states().shape(), DType::kFloat32, ctx);
  if (!cfg.log_path.empty()) {
    m.log.open(cfg.log_path, resume != nullptr ? std::ios::app : std::ios::trunc);
    KESTREL_CHECK(m.log.is_open(), "cannot open the log file ", cfg.log_path);
  }
  std::int64_t params = 0;
  for (std::size_t i = 0; i < m.store->count(); ++i)
    if (m.store->trainable(i)) params += m.store->value(i).numel();
  m.write_json(Json{{"event", resume ? "resume" : "start"},
                    {"model", m.cfg.net.name},
                    {"version", m.cfg.net.version},
                    {"parameters", params},
                    {"epochs", cfg.epochs},
                    {"batch", cfg.batch},
                    {"steps_per_epoch", m.spe},
                    {"step", m.step},
                    {"dtype", dtype_name(cfg.dtype)},
                    {"layout", layout_name(cfg.layout)},
                    {"optimizer", optimizer_kind_name(cfg.optimizer)},
                    {"lr", json_float(cfg.schedule.base)},
                    {"schedule", schedule_kind_name(cfg.schedule.kind)},
                    {"max_grad_norm", json_float(cfg.max_grad_norm)},
                    {"seed", m.cfg.seed},
                    {"train_images", m.n_train},
                    {"test_images", m.n_test},
                    {"data", m.data_source},
                    {"cuda_graph", m.use_graph()}});
}

Trainer::~Trainer() = default;

namespace {
void check_not_failed(const std::string& failed, const char* what) {
  KESTREL_CHECK(failed.empty(), what, ": an earlier train() call of this Trainer stopped with an error (",
                failed, ") and left it mid-step; build a new Trainer, resuming from its last checkpoint");
}
}  // namespace

TrainResult Trainer::train() {
  check_not_failed(impl_->failed, "train");
  try {
    return impl_->run();
  } catch (const std::exception& e) {
    impl_->failed = e.what();
    throw;
  }
}
double Trainer::evaluate() { return impl_->evaluate(nullptr).accuracy; }
EvalResult Trainer::evaluate(const std::function<bool()>& stop_requested) {
  return impl_->evaluate(stop_requested);
}
void Trainer::set_max_steps(std::int64_t max_steps) {
  KESTREL_CHECK(max_steps >= 0, "max steps must be >= 0 (0: no limit), got ", max_steps);
  impl_->cfg.max_steps = max_steps;
}
void Trainer::save_checkpoint(const std::string& path) {
  check_not_failed(impl_->failed, "save_checkpoint");
  kestrel::save_checkpoint(*impl_->store, path, impl_->metadata());
}
std::map<std::string, std::string> Trainer::checkpoint_metadata() const { return impl_->metadata(); }
const TrainerConfig& Trainer::config() const noexcept { return impl_->cfg; }
std::int64_t Trainer::steps_per_epoch() const noexcept { return impl_->spe; }
std::int64_t Trainer::global_step() const noexcept { return impl_->step; }
ParameterStore& Trainer::store() noexcept { return *impl_->store; }
Executor& Trainer::train_executor() noexcept { return *impl_->train; }
Executor& Trainer::eval_executor() noexcept { return *impl_->eval; }

}  // namespace kestrel
