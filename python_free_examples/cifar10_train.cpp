// cifar10_train: trains a CIFAR ResNet on CIFAR-10 (or synthetic CIFAR-format data) with
// Kestrel. The options and their machine-dependent defaults are layers/train_program.h; the
// training loop is layers/trainer.h. Exit status: 0 done (also when --max-steps or --time-limit
// ended it), 1 runtime error, 2 usage error, 128 + the signal's number when SIGINT or SIGTERM
// stopped the run (130, 143).
//
// Once training has started, SIGINT (Ctrl-C) or SIGTERM (what schedulers send before pre-empting
// a job) stops it at the next step (or, during an epoch's last step, once that epoch is evaluated;
// during the final evaluation, at its next batch) and writes the checkpoint when --checkpoint is
// set, so `--resume` continues with nothing lost; a second signal ends the program at once, as
// either does while the data loads and the networks are built. A signal that was ignored when the
// program started (nohup) stays ignored.
#include <CLI/CLI.hpp>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <exception>
#include <iostream>
#include <optional>
#include <string>

#include "cli_checks.h"
#include "kestrel/core/context.h"
#include "kestrel/core/device.h"
#include "kestrel/kernels/conv.h"
#include "kestrel/layers/safetensors.h"
#include "kestrel/layers/train_program.h"
#include "kestrel/layers/trainer.h"
#include "stdout_check.h"

namespace {

std::atomic<bool> g_stop{false};
volatile std::sig_atomic_t g_signal = 0;
static_assert(std::atomic<bool>::is_always_lock_free, "the stop flag is set from a signal handler");

extern "C" void on_stop_signal(int sig) {
  if (g_stop.load()) {  // the second signal: default action now
    std::signal(sig, SIG_DFL);
    std::raise(sig);
    return;
  }
  g_signal = sig;
  g_stop.store(true);
  static const char kSay[] = "\ncifar10_train: stopping after this step (again to abort now)\n";
  (void)!::write(STDERR_FILENO, kSay, sizeof kSay - 1);  // write(2) is async-signal-safe
}

void install_stop_handlers() {
  for (int sig : {SIGINT, SIGTERM}) {
    struct sigaction old {};
    if (::sigaction(sig, nullptr, &old) == 0 && old.sa_handler == SIG_IGN) continue;
    struct sigaction sa {};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    ::sigaction(sig, &sa, nullptr);
  }
}

void add_options(CLI::App& app, kestrel::TrainOptions& o) {
  app.add_option("--model", o.model, "resnet20|32|44|56|110 (any 6n+2), plain20 ..., seed-resnet-v2, wrn, wrn-D-K");
  app.add_option("--version", o.version, "ResNet block version: 1 (post-activation) or 2 (pre-activation)");
  app.add_option("--width", o.width, "stage widths K, 2K, 4K instead of the model's (0: the model's)");
  app.add_option("--epochs", o.epochs, "training epochs (default 160; CPU configuration 4)");
  app.add_option("--batch", o.batch, "batch size (default 128; CPU configuration 32)");
  app.add_option("--eval-batch", o.eval_batch, "test-set batch size (0: the training batch)");
  app.add_option("--lr", o.lr, "base learning rate (default 0.1; CPU configuration 0.05)");
  app.add_option("--schedule", o.schedule, "step (/10 at 50% and 75%), cosine, onecycle, constant");
  app.add_option("--warmup-epochs", o.warmup_epochs, "linear learning-rate warm-up (epochs)");
  app.add_option("--optimizer", o.optimizer, "sgd or adamw");
  app.add_option("--momentum", o.momentum, "SGD momentum");
  app.add_flag("--nesterov", o.nesterov, "Nesterov momentum");
  app.add_option("--weight-decay", o.weight_decay, "weight decay (default 1e-4; AdamW 5e-2)");
  app.add_flag("--no-decay-bn-bias", o.no_decay_bn_bias, "no weight decay on BN parameters and biases");
  app.add_option("--label-smoothing", o.label_smoothing, "label smoothing in [0, 1)");
  app.add_option("--clip-grad-norm", o.clip_grad_norm,
                 "clip the gradients to this global L2 norm before each update, as PyTorch's "
                 "clip_grad_norm_ (0, the default: off)");
  app.add_option("--dropout", o.dropout, "dropout between the two convolutions of each block");
  app.add_option("--device", o.device, "auto, cpu, cuda or cuda:N (auto: cuda when there is one)");
  app.add_option("--dtype", o.dtype, "fp32 or bf16 (activations and conv weights; fp32 masters)");
  app.add_option("--layout", o.layout, "nchw or nhwc");
  app.add_option("--data", o.data, "CIFAR-10 folder, or 'synthetic' (default: ./data if it holds CIFAR-10, else synthetic; the CPU configuration always uses synthetic data unless --data names a folder)");
  app.add_flag("--download", o.download, "download CIFAR-10 into --data (default ./data) first");
  app.add_option("--train-images", o.train_images, "use only the first N training images (0: all; synthetic data: make N)");
  app.add_option("--test-images", o.test_images, "use only the first N test images (0: all; synthetic data: make N, 0: none)");
  app.add_option("--crop", o.crop, "random crop with 4-pixel padding: on or off");
  app.add_option("--flip", o.flip, "random horizontal flip: on, off or auto (off for synthetic data)");
  app.add_option("--checkpoint", o.checkpoint, "write a safetensors checkpoint here after each epoch");
  app.add_option("--resume", o.resume, "continue from this checkpoint");
  app.add_flag("--overwrite", o.overwrite,
               "replace an existing --checkpoint (other than the --resume file) or, without --resume, --log");
  app.add_option("--log", o.log, "write JSON lines (one per log interval and per epoch) to this file");
  app.add_option("--log-every", o.log_every, "steps between progress lines (and host reads of the loss)");
  app.add_option("--seed", o.seed, "seed of initialisation, shuffling, augmentation and dropout")
      ->check(kestrel::programs::seed_number());
  app.add_option("--nonfinite", o.nonfinite, "on a NaN/Inf loss: stop (with the step) or skip the update");
  app.add_option("--max-steps", o.max_steps, "stop (and checkpoint) after this many steps in all");
  app.add_option("--time-limit", o.time_limit,
                 "stop (and checkpoint) at the first step after this many minutes of training (0: none)");
  app.add_option("--checkpoint-every", o.checkpoint_every,
                 "also write the checkpoint every N steps (0: after each epoch only)");
  app.add_option("--cuda-graph", o.cuda_graph, "replay each training step as a CUDA Graph: on or off");
  app.add_option("--recompute-bn", o.recompute_bn,
                 "on (default): rebuild BN+ReLU outputs in backward instead of keeping them (less memory, "
                 "same results); off: keep them");
  app.add_option("--deterministic", o.deterministic,
                 "on: deterministic convolution engines (bit-identical resume); off: fastest engines");
}

}  // namespace

int main(int argc, char** argv) {
  kestrel::programs::fail_on_unwritable_stdout("cifar10_train");
  CLI::App app{"cifar10_train: train a CIFAR ResNet with Kestrel (He et al.'s ResNet-20 recipe on a GPU; "
               "a small configuration on synthetic data without one)"};
  kestrel::TrainOptions o;
  add_options(app, o);
  auto usage_error = [&](const std::string& message) {
    std::fprintf(stderr, "cifar10_train: %s\n\n%s", message.c_str(), app.help().c_str());
    return 2;
  };
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::printf("%s", app.help().c_str());
    return 0;
  } catch (const CLI::ParseError& e) {
    return usage_error(e.what());
  }
  for (const CLI::Option* opt : app.get_options())
    if (opt->count() > 0)
      for (const std::string& name : opt->get_lnames()) o.given.insert(name);

  kestrel::TrainPlan plan;
  try {
    const std::string reason = kestrel::cuda_device_count() > 0 ? "" : kestrel::cuda_unavailable_reason();
    plan = kestrel::plan_training(o, reason, kestrel::cifar10_present(kestrel::kDefaultDataDir));
  } catch (const kestrel::Error& e) {
    return usage_error(e.message());
  }
  try {
    kestrel::Context ctx(plan.device);  // raises "no CUDA device: ..." for --device cuda without one
    // Outputs are checked before the data loads and training starts, not when first written.
    kestrel::check_training_outputs(plan);
    for (const std::string& note : plan.notes) std::printf("cifar10_train: %s\n", note.c_str());
    if (ctx.device().is_cuda()) ctx.set_conv_policy(plan.conv_policy);
    kestrel::SafetensorsFile checkpoint;
    if (!plan.resume.empty()) {
      try {
        checkpoint = kestrel::read_safetensors(plan.resume);
      } catch (const kestrel::Error& e) {
        throw kestrel::Error("--resume: " + e.message());
      }
    }
    const kestrel::CifarDataset data = kestrel::load_plan_data(plan, std::cout);
    kestrel::TrainerConfig cfg = plan.trainer;
    cfg.progress_bar = ::isatty(::fileno(stdout)) != 0;
    // A signal, or the time limit (counted from the first step: data loading and set-up excluded).
    std::optional<std::chrono::steady_clock::time_point> started;
    const double limit_s = plan.time_limit_s;
    bool out_of_time = false;
    cfg.stop_requested = [&] {
      if (g_stop.load()) return true;
      if (limit_s <= 0.0) return false;
      const auto now = std::chrono::steady_clock::now();
      if (!started) started = now;
      out_of_time = std::chrono::duration<double>(now - *started).count() >= limit_s;
      return out_of_time;
    };
    std::printf("cifar10_train: %s v%d, %s %s, batch %lld, %d epochs on %s; data: %s\n", cfg.net.name.c_str(),
                cfg.net.version, kestrel::dtype_name(cfg.dtype), kestrel::layout_name(cfg.layout),
                static_cast<long long>(cfg.batch), cfg.epochs, ctx.description().c_str(), data.source.c_str());
    std::fflush(stdout);
    const auto t0 = std::chrono::steady_clock::now();
    kestrel::Trainer trainer(cfg, data, ctx, std::cout, plan.resume.empty() ? nullptr : &checkpoint,
                             plan.resume);
    if (ctx.device().is_cuda() && ctx.conv_plans().untuned() > 0)  // compiling built the plans
      std::printf("cifar10_train: note: autotuning could not time %zu convolution plan(s), which run cuDNN's "
                  "first choice (the latest: %s)\n", ctx.conv_plans().untuned(), ctx.conv_plans().last_untuned().c_str());
    install_stop_handlers();  // from here on a signal stops at a step; before, it ends the program
    const kestrel::TrainResult r = trainer.train();
    // What a stopped run says about its progress, and which signal stopped it.
    const std::string& ck = cfg.checkpoint_path;
    const std::string progress = !ck.empty() && r.steps_done > r.first_step
                                     ? "checkpoint written to " + ck + "; continue with --resume " + ck
                                 : ck.empty() ? "no --checkpoint, progress not saved"
                                              : "no step since the last checkpoint";
    const auto signal_name = [] { return g_signal == SIGTERM ? "SIGTERM" : "SIGINT"; };
    if (r.interrupted) {
      const bool by_signal = g_stop.load() && !out_of_time;
      std::printf("cifar10_train: %s after step %lld: %s\n", by_signal ? signal_name() : "time limit reached",
                  static_cast<long long>(r.steps_done), progress.c_str());
      if (by_signal) return 128 + g_signal;
    }
    double acc = !r.epochs.empty() && r.epochs.back().step == r.steps_done ? r.epochs.back().test_accuracy : -1.0;
    // A signal after the last step's check ends the final evaluation at its next batch.
    const bool final_evaluation = acc < 0 && data.test.count > 0;
    kestrel::EvalResult evaluated;
    if (final_evaluation) {
      evaluated = trainer.evaluate([] { return g_stop.load(); });
      acc = evaluated.accuracy;
    }
    if (g_stop.load()) {
      const std::string during = !final_evaluation ? "" : ", during the final evaluation (" +
          std::to_string(evaluated.images) + " of " + std::to_string(data.test.count) + " test images evaluated)";
      std::printf("cifar10_train: %s after step %lld%s: %s\n", signal_name(), static_cast<long long>(r.steps_done),
                  during.c_str(), progress.c_str());
      return 128 + g_signal;
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("cifar10_train: %s after %lld steps in %.1f s", r.finished ? "finished" : "stopped",
                static_cast<long long>(r.steps_done), secs);
    if (acc >= 0) std::printf(", test accuracy %.2f%%", 100.0 * acc);
    if (r.skipped_steps > 0) std::printf(", %lld steps skipped", static_cast<long long>(r.skipped_steps));
    std::printf("\n");
    return 0;
  } catch (const std::exception& e) {
    if (::isatty(::fileno(stdout))) std::printf("\n");  // end a progress line
    std::fflush(stdout);
    std::fprintf(stderr, "cifar10_train: %s\n", e.what());
    return 1;
  }
}
