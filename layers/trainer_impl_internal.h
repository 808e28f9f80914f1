// Private to layers/trainer.cpp and layers/trainer_report.cpp: the trainer's state.
#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "kestrel/layers/trainer.h"

namespace kestrel {
namespace trainer_detail {
using Clock = std::chrono::steady_clock;
using Json = nlohmann::ordered_json;
// A float as the shortest decimal that reads back as the same float (for the JSON log).
double json_float(float v);
double seconds_since(Clock::time_point t);
// snprintf of up to three doubles into a std::string.
std::string printf_string(const char* format, double a, double b = 0, double c = 0);
}  // namespace trainer_detail

struct Trainer::Impl {
  using Clock = trainer_detail::Clock;
  using Json = trainer_detail::Json;

  Impl(const TrainerConfig& c, Context& x, std::ostream& o) : cfg(c), ctx(x), out(o) {}

  TrainerConfig cfg;
  Context& ctx;
  std::ostream& out;
  std::unique_ptr<ParameterStore> store;
  std::unique_ptr<Executor> train, eval;
  Tensor in_images, in_labels, logits, loss, ev_images, ev_labels, ev_logits;
  std::int64_t spe = 0, eval_batch = 0, eval_batches = 0, n_train = 0, n_test = 0;
  std::int64_t step = 0;  // steps done in all
  // What stopped a train() call that raised (empty: none did). Such a call leaves the epoch's
  // host totals ahead of the position (read_upto, step), so train() and save_checkpoint() refuse.
  std::string failed;
  std::string data_source, device_name;
  std::string train_fingerprint;  // cifar10_fingerprint of the training split, kept in checkpoints
  AugmentParams train_aug, eval_aug;
  // Device memory: datasets (uint8), the epoch permutation, evaluation indices, the schedule,
  // the epoch's per-step losses, two int64 counters (train and eval correct), scratch.
  Tensor train_images, train_labels, test_images, test_labels, perm, eval_indices, lr_table;
  Tensor losses, counters, scratch, states_backup;
  // The epoch in progress, as the host has read it.
  double loss_sum = 0.0;
  std::int64_t loss_steps = 0, images = 0, read_upto = 0, run_steps = 0;
  double epoch_seconds = 0.0;
  std::vector<char> skipped;    // per step of the epoch (kSkip)
  std::int64_t skipped_total = 0;
  int skips_in_a_row = 0;
  // Since the last log line (checkpointed, so a resumed run's next line covers the whole
  // interval); its images and time only since this process took it up (for images/s).
  Clock::time_point interval_start, last_read;
  double interval_loss = 0.0;
  std::int64_t interval_steps = 0, interval_images = 0;
  // The last applied update's gradient norm: the executor's until this process has applied one,
  // the checkpoint's before (NaN, null in the log: none yet).
  bool updated = false;
  float resumed_grad_norm = std::numeric_limits<float>::quiet_NaN();
  float last_grad_norm() const { return updated ? train->grad_norm() : resumed_grad_norm; }
  std::ofstream log;

  std::int64_t* train_correct() const { return static_cast<std::int64_t*>(counters.data()); }
  std::int64_t* eval_correct() const { return static_cast<std::int64_t*>(counters.data()) + 1; }
  bool use_graph() const {
    return cfg.cuda_graph && ctx.device().is_cuda() && cfg.nonfinite == NonFinitePolicy::kStop;
  }
  float lr_at(std::int64_t s) const {
    return learning_rate_at(cfg.schedule, std::clamp<std::int64_t>(s, 0, cfg.schedule.total_steps - 1));
  }

  void build(const SafetensorsFile* resume, const std::string& resume_name);
  void upload_data(const CifarDataset& data);
  void restore_position(const SafetensorsFile& f, const std::string& name);
  TrainResult run();
  bool stop_requested() const;
  // Ends run() before step s of `epoch`:
  // reads the interval back, writes the checkpoint when there is one and a step was taken.
  void stop_at(int epoch, std::int64_t s, bool requested, TrainResult& r);
  // The stop's result fields and its line (the checkpoint, if any, already written).
  void end_stopped(bool requested, TrainResult& r);
  void start_epoch(int epoch, std::int64_t begin);
  void run_step(int epoch, std::int64_t s);
  bool run_step_skipping(int epoch, std::int64_t s);
  void read_back(int epoch, std::int64_t done, TrainResult& r, bool log_line);
  EpochResult finish_epoch(int epoch);
  EvalResult evaluate(const std::function<bool()>& stop);  // stop may be empty
  std::map<std::string, std::string> metadata() const;
  void write_json(Json j);
  void say(const std::string& line, bool transient = false);
};

}  // namespace kestrel
