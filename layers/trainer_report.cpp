// The trainer's host side of reporting: reading the losses back, progress lines, the JSON-lines
// log, the epoch summary and the checkpoint metadata (see layers/trainer.h).
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>

#include "kestrel/core/error.h"
#include "kestrel/core/number_text_internal.h"
#include "kestrel/layers/file_io_internal.h"
#include "kestrel/layers/trainer_device_internal.h"
#include "kestrel/layers/trainer_impl_internal.h"
#include "kestrel/layers/trainer_recipe_internal.h"

namespace kestrel {
namespace trainer_detail {

// A float as the shortest decimal that reads back as the same float (for the JSON log).
double json_float(float v) {
  double d = static_cast<double>(v);
  detail::parse_double(detail::shortest_float_text(v), &d);  // NaN and infinities stay as they are
  return d;
}

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

std::string printf_string(const char* format, double a, double b, double c) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, a, b, c);
  return buf;
}

}  // namespace trainer_detail

namespace td = trainer_detail;
using td::json_float;
using td::printf_string;
using td::seconds_since;

void Trainer::Impl::read_back(int epoch, std::int64_t done, TrainResult& r, bool log_line) {
  const std::int64_t n = done - read_upto;
  if (n <= 0) return;
  Tensor host = Tensor::empty_cpu(Shape{n}, DType::kFloat32);
  host.copy_from(losses.view_bytes(static_cast<std::size_t>(read_upto) * sizeof(float), Shape{n},
                                   DType::kFloat32),
                 ctx.stream());
  const float* v = host.data_as<float>();
  for (std::int64_t j = 0; j < n; ++j) {
    const std::int64_t s = read_upto + j;
    if (skipped[static_cast<std::size_t>(s)]) {
      r.losses.push_back(std::numeric_limits<float>::quiet_NaN());
      continue;
    }
    if (!std::isfinite(v[j])) {
      const std::int64_t number = static_cast<std::int64_t>(epoch) * spe + s + 1;
      write_json(Json{{"event", "nonfinite"}, {"epoch", epoch + 1}, {"step", number}});
      KESTREL_FAIL("loss became NaN/Inf at step ", number, " (epoch ", epoch + 1, ")");
    }
    r.losses.push_back(v[j]);
    updated = true;
    loss_sum += v[j];
    interval_loss += v[j];
    ++loss_steps;
    ++interval_steps;
  }
  read_upto = done;
  epoch_seconds += seconds_since(last_read);
  last_read = Clock::now();
  // The interval (loss, steps) ends only with a log line: a read for a checkpoint or a stop
  // leaves it running, so a line's loss covers every step since the previous line.
  if (!log_line) return;
  const double secs = seconds_since(interval_start);
  std::int64_t correct = 0;
  td::read_int64(ctx, train_correct(), &correct, 1);
  const double acc = images > 0 ? static_cast<double>(correct) / images : 0.0;
  // An interval of skipped steps only has no loss (NaN; null in the JSON log), as an epoch's.
  const double mean = interval_steps > 0 ? interval_loss / interval_steps : std::numeric_limits<double>::quiet_NaN();
  const double ips = secs > 0 ? interval_images / secs : 0.0;
  const float lr = lr_at(step - 1);
  const std::string where = "epoch " + std::to_string(epoch + 1) + "/" + std::to_string(cfg.epochs);
  std::string bar;
  if (cfg.progress_bar) {
    const int width = 20, filled = static_cast<int>(width * done / spe);
    bar = " [" + std::string(filled, '#') + std::string(width - filled, '.') + "]";
  }
  say(where + bar + " step " + std::to_string(done) + "/" + std::to_string(spe) + " loss " +
          printf_string("%.4f", mean) + " train acc " + printf_string("%.1f%%", 100 * acc) +
          " lr " + printf_string("%.4g", lr) + " " + printf_string("%.0f img/s", ips),
      cfg.progress_bar);
  write_json(Json{{"event", "step"}, {"epoch", epoch + 1}, {"step", step}, {"loss", mean},
                  {"train_acc", acc}, {"lr", json_float(lr)}, {"grad_norm", json_float(last_grad_norm())},
                  {"images_per_s", ips},
                  {"peak_mem_mb", td::peak_memory_mb(ctx)}});
  interval_start = Clock::now();
  interval_loss = 0.0;
  interval_steps = interval_images = 0;
}

EpochResult Trainer::Impl::finish_epoch(int epoch) {
  EpochResult e;
  e.epoch = epoch + 1;
  e.step = step;
  e.train_loss = loss_steps > 0 ? loss_sum / loss_steps : std::numeric_limits<double>::quiet_NaN();
  std::int64_t correct = 0;
  td::read_int64(ctx, train_correct(), &correct, 1);
  e.train_accuracy = images > 0 ? static_cast<double>(correct) / images : 0.0;
  e.seconds = epoch_seconds;
  e.images_per_s = epoch_seconds > 0 ? run_steps * cfg.batch / epoch_seconds : 0.0;
  e.lr = lr_at(step - 1);
  if (cfg.evaluate) e.test_accuracy = evaluate(nullptr).accuracy;
  std::string line = "epoch " + std::to_string(e.epoch) + "/" + std::to_string(cfg.epochs) +
                     ": loss " + printf_string("%.4f", e.train_loss) + " train acc " +
                     printf_string("%.1f%%", 100 * e.train_accuracy);
  if (e.test_accuracy >= 0) line += " test acc " + printf_string("%.2f%%", 100 * e.test_accuracy);
  line += " lr " + printf_string("%.4g", e.lr) + " " + printf_string("%.0f img/s", e.images_per_s) +
          " " + printf_string("%.1f s", e.seconds);
  say(line);
  Json j{{"event", "epoch"},        {"epoch", e.epoch},          {"step", e.step},
         {"loss", e.train_loss},    {"train_acc", e.train_accuracy}};
  if (e.test_accuracy >= 0) j["test_acc"] = e.test_accuracy;
  j["lr"] = json_float(e.lr);
  j["images_per_s"] = e.images_per_s;
  j["epoch_time_s"] = e.seconds;
  j["peak_mem_mb"] = td::peak_memory_mb(ctx);
  write_json(j);
  return e;
}

std::map<std::string, std::string> Trainer::Impl::metadata() const {
  std::int64_t correct = 0;
  td::read_int64(ctx, train_correct(), &correct, 1);
  const std::string sum = detail::general_text(loss_sum, 17);  // round-trips a double
  std::map<std::string, std::string> m = {{"step", std::to_string(step)},
          {"interval_loss_sum", detail::general_text(interval_loss, 17)},
          {"interval_steps", std::to_string(interval_steps)},
          {"skips_in_a_row", std::to_string(skips_in_a_row)},
          {"grad_norm", detail::shortest_float_text(last_grad_norm())},
          {"epoch", std::to_string(step / spe)},
          {"model", cfg.net.name},
          {"version", std::to_string(cfg.net.version)},
          {"batch", std::to_string(cfg.batch)},
          {"train_images", std::to_string(n_train)},
          {"train_fingerprint", train_fingerprint},
          {"train_source", data_source},
          {"skipped_steps", std::to_string(skipped_total)},
          {"epoch_correct", std::to_string(correct)},
          {"epoch_images", std::to_string(images)},
          {"epoch_loss_steps", std::to_string(loss_steps)},
          {"epoch_loss_sum", sum}};
  for (const auto& [key, value] : trainer_detail::training_recipe(cfg)) m[key] = value;
  return m;
}

void Trainer::Impl::write_json(Json j) {
  if (!log.is_open()) return;
  j["device"] = device_name;
  errno = 0;
  log << j.dump(-1, ' ', false, Json::error_handler_t::replace) << "\n";
  log.flush();
  // A log that cannot be written (a full disk) stops training like a checkpoint that cannot be:
  // the run asked for it, and records dropped silently would look like a complete log.
  KESTREL_CHECK(!log.fail(), "cannot write the log file ", cfg.log_path, " at step ", step,
                errno != 0 ? ": " + detail::errno_text(errno) : std::string());
}

void Trainer::Impl::say(const std::string& line, bool transient) {
  if (cfg.progress_bar) {
    // Overwrite the progress line; pad so that a shorter line hides a longer one.
    out << "\r" << line << std::string(line.size() < 100 ? 100 - line.size() : 0, ' ');
    if (!transient) out << "\n";
  } else {
    out << line << "\n";
  }
  out.flush();
}

}  // namespace kestrel
