// Trainer: trains a CIFAR ResNet (layers/resnet.h) on a CifarDataset, with the data pipeline on
// the device, evaluation on the test set each epoch, a JSON-lines log, non-finite loss detection
// and safetensors checkpoints (layers/checkpoint.h) that resume bit-identically on one device.
//
// Graph: image_input "images" -> build_resnet -> logits (output "logits") ->
// softmax_cross_entropy with label_input "labels". One ParameterStore is shared by a training
// Executor (batch `batch`) and an inference Executor (batch `eval_batch`).
//
// Per step, all on the context's stream with no host synchronisation:
//   augment_batch from the device-resident uint8 training set, reading the batch's slice of the
//   epoch permutation (uploaded once per epoch), into input "images" and "labels"; crop and flip
//   draw from Philox (augment_seed(seed), offset = global step), so any step can be redone;
//   the step's learning rate is copied from a device table of the whole schedule into the store;
//   executor.run() (replaying a CUDA Graph after the first step on CUDA);
//   count_correct on "logits" into a device counter; the loss is copied into a device slot.
// The host reads the losses and the counter every `log_every` steps and at the end of an epoch;
// that is where a non-finite loss is found (the first one is reported by its step number).
//
// Determinism: the same config, data and seed give the same losses on the CPU; on one CUDA device
// too when the convolution policy is deterministic (Context::set_conv_policy) - run to run and
// across a checkpoint/resume, CUDA Graph on or off.
//
// Non-finite policy kSkip runs each step eagerly in two halves (Executor::run_forward_backward,
// then apply_update only when the loss and every gradient are finite; a skipped step's BN
// running statistics are restored). It synchronises every step and disables the CUDA Graph.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "kestrel/core/context.h"
#include "kestrel/core/executor.h"
#include "kestrel/core/parameter_store.h"
#include "kestrel/layers/cifar10.h"
#include "kestrel/layers/resnet.h"
#include "kestrel/layers/safetensors.h"
#include "kestrel/layers/schedule.h"

namespace kestrel {

enum class NonFinitePolicy : std::uint8_t { kStop, kSkip };

// CIFAR-10's per-channel mean and standard deviation of the training images (in [0, 1] units).
constexpr float kCifarMean[3] = {0.4914f, 0.4822f, 0.4465f};
constexpr float kCifarStd[3] = {0.2470f, 0.2435f, 0.2616f};

struct TrainerConfig {
  ResNetConfig net = resnet_config("resnet20", 1);
  int epochs = 160;
  std::int64_t batch = 128;
  std::int64_t eval_batch = 0;   // 0: the training batch; at most the test set's size
  std::int64_t max_steps = 0;    // > 0: stop (and checkpoint) once this many steps are done in all
  LrSchedule schedule;           // total_steps is set by the trainer: epochs * steps_per_epoch
  double warmup_epochs = 0.0;    // added to schedule.warmup_steps (rounded to whole steps); the
                                 // sum must be below the run's steps; none with one-cycle
  OptimizerKind optimizer = OptimizerKind::kSgd;
  SgdConfig sgd{0.9f, 0.f, 1e-4f, false};
  AdamWConfig adamw;
  bool decay_bn_and_bias = true;  // false: no weight decay on 1-D parameters (BN, biases)
  float label_smoothing = 0.f;
  float max_grad_norm = 0.f;     // > 0: CompileOptions::max_grad_norm (clip before each update)
  DType dtype = DType::kFloat32;
  Layout layout = Layout::kNCHW;
  bool random_crop = true;
  bool random_flip = true;
  int pad = 4;
  std::uint64_t seed = 0;
  int log_every = 50;            // steps between host reads of the loss (and log lines)
  NonFinitePolicy nonfinite = NonFinitePolicy::kStop;
  int max_skips_in_a_row = 20;   // kSkip: more consecutive non-finite steps than this stop
  bool cuda_graph = true;        // CUDA: replay each step as one CUDA Graph (not with kSkip)
  bool fuse = true;
  bool recompute_bn_relu = true;   // CompileOptions::recompute_bn_relu (less activation memory)
  bool evaluate = true;          // test accuracy after each epoch
  std::string checkpoint_path;   // "": none; else written after each epoch and when stopping
  std::int64_t checkpoint_every = 0;  // > 0: also written every this many steps (mid-epoch)
  std::string log_path;          // "": none; else JSON lines (appended to when resuming):
                                 // "start"/"resume", "step" every log_every steps (loss: the mean
                                 // over the steps since the previous line, null when all were
                                 // skipped; train_acc: the epoch's so far; lr, grad_norm,
                                 // images_per_s, peak_mem_mb), "epoch" (loss and train_acc over the
                                 // epoch, test_acc, lr, images_per_s, epoch_time_s, peak_mem_mb),
                                 // "skip", "nonfinite". A run killed after its last checkpoint
                                 // leaves lines past that checkpoint's step; the "resume" line's
                                 // step says where training went on, so readers keep, of the
                                 // lines before it, those up to that step.
  bool progress_bar = false;     // true: one \r-updated line (terminals); false: plain lines
  // Asked before every step and after each epoch but the last (after its evaluation and
  // checkpoint); when it returns true, train() stops there as it does at max_steps (the interval
  // read back, the checkpoint written when checkpoint_path is set) and returns with
  // TrainResult::interrupted. Every epoch a run finishes is evaluated, stopped or not.
  // cifar10_train's reads a flag its SIGINT / SIGTERM handler sets; a time budget works too.
  std::function<bool()> stop_requested;
};

// Raises kestrel::Error naming the field for an invalid configuration.
void validate(const TrainerConfig& cfg);

struct EpochResult {
  int epoch = 0;                 // 1-based
  std::int64_t step = 0;         // steps done in all at the end of the epoch
  double train_loss = 0.0;       // mean over the epoch's (unskipped) steps
  double train_accuracy = 0.0;   // on the augmented batches, before each step's update
  double test_accuracy = -1.0;   // -1: not evaluated
  double seconds = 0.0;          // training time of the epoch (evaluation excluded)
  double images_per_s = 0.0;
  float lr = 0.f;                // the last step's rate
};

struct TrainResult {
  std::int64_t first_step = 0;   // global index of losses[0]
  std::vector<float> losses;     // every step this call ran, in order (NaN where skipped)
  std::int64_t steps_done = 0;   // steps done in all when train() returned
  std::int64_t skipped_steps = 0;
  std::vector<EpochResult> epochs;
  bool finished = false;         // all epochs done (false: stopped at max_steps or on request)
  bool interrupted = false;      // stopped by TrainerConfig::stop_requested
};

// What Trainer::evaluate(stop_requested) did.
struct EvalResult {
  double accuracy = -1.0;        // over the whole test set, in [0, 1]; -1 when stopped or empty
  std::int64_t images = 0;       // test images evaluated (the test set's size unless stopped)
  bool stopped = false;          // stop_requested answered true before the last batch
};

class Trainer {
 public:
  // Builds the graph, store and executors on ctx and copies the dataset to the device once.
  // `out` receives the progress lines. With `resume`, parameters, BN statistics, optimizer state,
  // counters and the position in training come from that checkpoint; its seed replaces
  // cfg.seed, and its model, version, batch and training set (its size and a fingerprint of its
  // images and labels, cifar10_fingerprint; an older checkpoint without one is noted on `out`)
  // must match. Refuses a cfg.checkpoint_path that cannot be written, or that is cfg.log_path,
  // here rather than at the first save.
  Trainer(const TrainerConfig& cfg, const CifarDataset& data, Context& ctx, std::ostream& out,
          const SafetensorsFile* resume = nullptr, const std::string& resume_name = "checkpoint");
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  // Trains from the current position to cfg.epochs (or cfg.max_steps). Raises kestrel::Error
  // "loss became NaN/Inf at step S (epoch E)" under NonFinitePolicy::kStop. A call that raised
  // (that error, too many skips in a row, an I/O error) leaves the Trainer mid-step: later
  // train() and save_checkpoint() calls raise kestrel::Error naming the first error; evaluate()
  // still works. Continue from the last checkpoint with a new Trainer.
  TrainResult train();
  // Changes cfg.max_steps for the next train() call (0: no limit).
  void set_max_steps(std::int64_t max_steps);
  // Test-set accuracy in [0, 1] with the current weights (inference executor, running stats);
  // -1 when the test set is empty (nothing to evaluate).
  double evaluate();
  // The same, asking `stop_requested` (when set) before each evaluation batch: when it answers
  // true the evaluation ends there, leaving no work queued, with EvalResult::stopped and no
  // accuracy (a part of the test set is not its accuracy). Nothing the trainer keeps changes, so
  // training and evaluate() go on as before. On a GPU the batches are queued faster than they
  // run, so a stop there saves the batches not yet queued; on a CPU each batch runs as it is
  // asked for. cifar10_train's final evaluation passes its signal flag.
  EvalResult evaluate(const std::function<bool()>& stop_requested);
  // Writes the checkpoint of the current state (temporary file + rename); refused after a
  // train() call that raised.
  void save_checkpoint(const std::string& path);
  // The trainer's part of a checkpoint's __metadata__.
  std::map<std::string, std::string> checkpoint_metadata() const;

  const TrainerConfig& config() const noexcept;
  std::int64_t steps_per_epoch() const noexcept;
  std::int64_t global_step() const noexcept;  // steps done in all
  ParameterStore& store() noexcept;
  Executor& train_executor() noexcept;
  Executor& eval_executor() noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The trainer's graph of `cfg` with `batch` rows: image_input "images" [batch, 3, 32, 32] in
// cfg.dtype/cfg.layout -> build_resnet(cfg.net) -> output "logits" -> softmax cross-entropy
// (cfg.label_smoothing) with label_input "labels" as the loss.
Graph build_training_graph(const TrainerConfig& cfg, std::int64_t batch);

// The Philox seed of the augmentation draws and of the epoch permutations of run seed `seed`
// (kept apart from the parameter initialisation and dropout streams of the same seed).
std::uint64_t augment_seed(std::uint64_t seed) noexcept;
std::uint64_t shuffle_seed(std::uint64_t seed) noexcept;

}  // namespace kestrel
