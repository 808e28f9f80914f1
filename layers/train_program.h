// The pure logic of the cifar10_train program (python_free_examples/cifar10_train.cpp): its
// options, their validation, and the defaults that depend on the machine. The program parses the
// command line into TrainOptions and calls plan_training; tests call it directly.
//
// Defaults: with a CUDA device, He et al.'s ResNet-20 recipe (crop + flip, SGD momentum 0.9,
// weight decay 1e-4, lr 0.1 divided by 10 at 50% and 75% of training, batch 128, 160 epochs).
// On the CPU (no CUDA device, or --device cpu), every option the user did not give takes the
// small CPU configuration (kCpu* below): a narrow ResNet-8 on a few thousand synthetic images,
// about a minute on two cores. Without --data, ./data/cifar-10-batches-bin is used when it
// exists, synthetic data otherwise (always on the CPU); each such decision is a note that the
// program prints with its reason.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <set>
#include <string>
#include <vector>

#include "kestrel/core/device.h"
#include "kestrel/kernels/conv_desc.h"
#include "kestrel/layers/cifar10.h"
#include "kestrel/layers/trainer.h"

namespace kestrel {

// The small CPU configuration.
constexpr const char* kCpuModel = "resnet8";
constexpr int kCpuWidth = 4;
constexpr int kCpuEpochs = 4;
constexpr std::int64_t kCpuBatch = 32;
constexpr std::int64_t kCpuTrainImages = 4096;
constexpr std::int64_t kCpuTestImages = 1000;
constexpr double kCpuLr = 0.05;
// Synthetic data generated when no CIFAR-10 files are used (and not the CPU configuration).
constexpr std::int64_t kSyntheticTrainImages = 50000;
constexpr std::int64_t kSyntheticTestImages = 10000;
constexpr std::uint64_t kSyntheticDataSeed = 1;
// Where CIFAR-10 is looked for without --data (relative to the working directory).
constexpr const char* kDefaultDataDir = "data";

struct TrainOptions {
  std::string model = "resnet20";
  int version = 1;
  int width = 0;                  // 0: the model's widths; K > 0: stem K, stages K, 2K, 4K, ...
  int epochs = 160;
  std::int64_t batch = 128;
  double lr = 0.1;
  std::string schedule = "step";  // step, cosine, onecycle, constant
  double warmup_epochs = 0.0;
  double dropout = -1.0;          // < 0: the model's own (0; WRN 0.3)
  std::string device = "auto";    // auto, cpu, cuda, cuda:N
  std::string dtype = "fp32";
  std::string layout = "nchw";
  std::string data;               // "": automatic; a folder; or "synthetic"
  bool download = false;
  std::int64_t train_images = 0;  // 0: all (synthetic: kSyntheticTrainImages)
  std::int64_t test_images = 0;
  std::string checkpoint, resume, log;
  bool overwrite = false;  // --overwrite: replace an earlier run's --checkpoint / --log
  std::uint64_t seed = 0;
  std::string optimizer = "sgd";  // sgd, adamw
  double momentum = 0.9;
  double weight_decay = 1e-4;     // AdamW without --weight-decay: 5e-2
  bool nesterov = false;
  bool no_decay_bn_bias = false;
  double label_smoothing = 0.0;
  double clip_grad_norm = 0.0;    // > 0: clip gradients to this global L2 norm before each update
  double time_limit = 0.0;        // minutes of training (from its first step); 0: none
  std::string nonfinite = "stop";  // stop, skip
  std::int64_t max_steps = 0;
  std::int64_t checkpoint_every = 0;
  std::string cuda_graph = "on";
  std::string recompute_bn = "on";  // off: keep BN+ReLU outputs for backward (more memory)
  std::string deterministic = "on";
  std::string crop = "on";
  std::string flip = "auto";       // auto: on for CIFAR-10, off for synthetic data
  int log_every = 50;
  std::int64_t eval_batch = 0;
  // Names of the options given on the command line, without dashes ("epochs", "model", ...).
  std::set<std::string> given;
};

struct TrainPlan {
  TrainerConfig trainer;
  Device device;
  ConvPolicy conv_policy;
  bool synthetic = true;
  std::string data_dir;            // CIFAR-10 folder (when not synthetic)
  std::int64_t train_images = 0;   // synthetic sizes, or caps on the real splits (0 = all)
  std::int64_t test_images = 0;
  bool download = false;
  std::string resume;              // checkpoint to resume from ("" = none)
  bool overwrite = false;          // an earlier run's --checkpoint / --log may be replaced
  bool small_cpu_config = false;
  double time_limit_s = 0.0;       // > 0: stop at the first step boundary after this many seconds
  std::vector<std::string> notes;  // what was decided and why, printed before training
};

// Validates every option (kestrel::Error naming the option and the bad value) and resolves the
// defaults. `cuda_unavailable_reason` is empty when a CUDA device exists; `default_data_present`
// says whether kDefaultDataDir holds CIFAR-10.
TrainPlan plan_training(const TrainOptions& options, const std::string& cuda_unavailable_reason,
                        bool default_data_present);

// The run's output files, checked before the data loads: each can be written
// (check_output_file), the log is neither the checkpoint nor the resumed file (its lines would
// corrupt them, or go to a file the checkpoint's rename replaces), and an earlier run's files
// are not replaced unless plan.overwrite: a --checkpoint that exists (other than the --resume
// file) or, for a run that does not resume, a --log that exists (it would be truncated; a
// resumed run appends). Raises kestrel::Error naming the option and the way out.
void check_training_outputs(const TrainPlan& plan);

// The data the plan names: CIFAR-10 from plan.data_dir (downloaded first with plan.download),
// cut to the caps, or synthetic_cifar10(train_images, test_images, kSyntheticDataSeed).
CifarDataset load_plan_data(const TrainPlan& plan, std::ostream& log);

}  // namespace kestrel
