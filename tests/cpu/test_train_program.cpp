// The cifar10_train program: its option logic (layers/train_program.h) and, by running the built
// binary, its exit codes (0 done, 1 runtime error, 2 usage error) and outputs.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "error_text.h"
#include "temp_dir.h"
#include "kestrel/core/device.h"
#include "kestrel/layers/checkpoint.h"
#include "kestrel/layers/train_program.h"
#include "program_paths.h"

using namespace kestrel;
using kestrel::testing::error_of;

namespace {

TrainOptions with(std::initializer_list<std::string> given) {
  TrainOptions o;
  o.given.insert(given.begin(), given.end());
  return o;
}

bool any_note_contains(const TrainPlan& p, const std::string& text) {
  for (const std::string& n : p.notes)
    if (n.find(text) != std::string::npos) return true;
  return false;
}

}  // namespace

TEST(TrainProgram, GpuDefaultsAreHeEtAlsResNet20Recipe) {
  const TrainPlan p = plan_training(TrainOptions{}, "", /*default_data_present=*/true);
  const TrainerConfig& t = p.trainer;
  EXPECT_TRUE(p.device.is_cuda());
  EXPECT_FALSE(p.small_cpu_config);
  EXPECT_FALSE(p.synthetic);
  EXPECT_EQ(p.data_dir, "data");
  EXPECT_EQ(t.net.name, "resnet20");
  EXPECT_EQ(t.net.version, 1);
  EXPECT_EQ(t.net.blocks_per_stage, 3);
  EXPECT_EQ(t.epochs, 160);
  EXPECT_EQ(t.batch, 128);
  EXPECT_EQ(t.schedule.kind, LrSchedule::Kind::kStep);
  EXPECT_FLOAT_EQ(t.schedule.base, 0.1f);
  EXPECT_EQ(t.schedule.milestones, (std::vector<double>{0.5, 0.75}));
  EXPECT_FLOAT_EQ(t.schedule.gamma, 0.1f);
  EXPECT_EQ(t.optimizer, OptimizerKind::kSgd);
  EXPECT_FLOAT_EQ(t.sgd.momentum, 0.9f);
  EXPECT_FLOAT_EQ(t.sgd.weight_decay, 1e-4f);
  EXPECT_FALSE(t.sgd.nesterov);
  EXPECT_TRUE(t.random_crop);
  EXPECT_TRUE(t.random_flip);
  EXPECT_EQ(t.pad, 4);
  EXPECT_TRUE(t.cuda_graph);
  EXPECT_TRUE(p.conv_policy.deterministic);
  EXPECT_TRUE(p.notes.empty());
  // Without CIFAR-10 on disk: synthetic data, said so, no flips (mirror-image classes).
  const TrainPlan s = plan_training(TrainOptions{}, "", false);
  EXPECT_TRUE(s.synthetic);
  EXPECT_EQ(s.train_images, kSyntheticTrainImages);
  EXPECT_FALSE(s.trainer.random_flip);
  EXPECT_TRUE(any_note_contains(s, "no --data and no data/cifar-10-batches-bin: training on synthetic"));
}

TEST(TrainProgram, WithoutAGpuTheSmallCpuConfigurationIsUsedAndExplained) {
  const TrainPlan p = plan_training(TrainOptions{}, "no CUDA-capable device is detected", true);
  EXPECT_TRUE(p.device.is_cpu());
  EXPECT_TRUE(p.small_cpu_config);
  EXPECT_TRUE(p.synthetic) << "CIFAR-10 on disk is not used without --data on the CPU";
  EXPECT_EQ(p.trainer.net.name, std::string(kCpuModel) + "-w" + std::to_string(kCpuWidth));
  EXPECT_EQ(p.trainer.net.widths, (std::vector<std::int64_t>{kCpuWidth, 2 * kCpuWidth, 4 * kCpuWidth}));
  EXPECT_EQ(p.trainer.epochs, kCpuEpochs);
  EXPECT_EQ(p.trainer.batch, kCpuBatch);
  EXPECT_EQ(p.train_images, kCpuTrainImages);
  EXPECT_EQ(p.test_images, kCpuTestImages);
  EXPECT_TRUE(any_note_contains(p, "no CUDA device (no CUDA-capable device is detected): training a small CPU "
                                   "configuration (resnet8-w4, 4096 synthetic images, 4 epochs of batch 32)"));
  // What the user gives wins over the CPU configuration.
  TrainOptions o = with({"epochs", "model", "data"});
  o.epochs = 2;
  o.model = "resnet20";
  o.data = "/some/cifar";
  const TrainPlan q = plan_training(o, "no driver", false);
  EXPECT_EQ(q.trainer.epochs, 2);
  EXPECT_EQ(q.trainer.net.name, "resnet20");
  EXPECT_EQ(q.trainer.net.widths, (std::vector<std::int64_t>{16, 32, 64}));
  EXPECT_FALSE(q.synthetic);
  EXPECT_EQ(q.data_dir, "/some/cifar");
  EXPECT_TRUE(q.trainer.random_flip);
  // --device cpu on a GPU machine says why, too.
  TrainOptions c = with({"device"});
  c.device = "cpu";
  EXPECT_TRUE(any_note_contains(plan_training(c, "", true), "--device cpu: training a small CPU configuration"));
}

TEST(TrainProgram, OptionsMapOntoTheTrainerConfig) {
  TrainOptions o = with({"weight-decay"});
  o.model = "wrn-16-2";
  o.version = 2;
  o.optimizer = "adamw";
  o.weight_decay = 0.01;
  o.schedule = "cosine";
  o.dtype = "bf16";
  o.layout = "nhwc";
  o.nonfinite = "skip";
  o.cuda_graph = "off";
  o.deterministic = "off";
  o.label_smoothing = 0.1;
  o.nesterov = true;
  o.no_decay_bn_bias = true;
  o.warmup_epochs = 2;
  o.data = "synthetic";
  o.flip = "on";
  o.clip_grad_norm = 2.5;
  o.time_limit = 1.5;
  const TrainPlan p = plan_training(o, "", false);
  const TrainerConfig& t = p.trainer;
  EXPECT_EQ(t.net.widths, (std::vector<std::int64_t>{32, 64, 128}));
  EXPECT_FLOAT_EQ(t.net.dropout, 0.3f);
  EXPECT_EQ(t.optimizer, OptimizerKind::kAdamW);
  EXPECT_FLOAT_EQ(t.adamw.weight_decay, 0.01f);
  EXPECT_EQ(t.schedule.kind, LrSchedule::Kind::kCosine);
  EXPECT_EQ(t.dtype, DType::kBFloat16);
  EXPECT_EQ(t.layout, Layout::kNHWC);
  EXPECT_EQ(t.nonfinite, NonFinitePolicy::kSkip);
  EXPECT_FALSE(t.cuda_graph);
  EXPECT_FALSE(p.conv_policy.deterministic);
  EXPECT_TRUE(p.conv_policy.autotune);
  EXPECT_FALSE(t.decay_bn_and_bias);
  EXPECT_DOUBLE_EQ(t.warmup_epochs, 2.0);
  EXPECT_TRUE(t.random_flip);
  EXPECT_FLOAT_EQ(t.max_grad_norm, 2.5f);
  EXPECT_DOUBLE_EQ(p.time_limit_s, 90.0);
  EXPECT_FLOAT_EQ(plan_training(TrainOptions{}, "", false).trainer.max_grad_norm, 0.f) << "off by default";
  EXPECT_TRUE(any_note_contains(p, "--data synthetic: training on synthetic"));
  TrainOptions a;
  a.optimizer = "adamw";
  EXPECT_FLOAT_EQ(plan_training(a, "", false).trainer.adamw.weight_decay, 0.05f) << "AdamW's own default";
  TrainOptions d = with({"dropout"});
  d.dropout = 0.0;
  d.model = "wrn";
  EXPECT_FLOAT_EQ(plan_training(d, "", false).trainer.net.dropout, 0.f);
}

TEST(TrainProgram, InvalidValuesNameTheOption) {
  auto bad = [](void (*set)(TrainOptions&), const std::string& expected) {
    TrainOptions o;
    set(o);
    const std::string msg = error_of([&] { plan_training(o, "", false); });
    EXPECT_NE(msg.find(expected), std::string::npos) << msg;
  };
  bad([](TrainOptions& o) { o.dtype = "fp64"; }, "--dtype must be fp32 or bf16, got 'fp64'");
  bad([](TrainOptions& o) { o.dtype = "fp16"; }, "--dtype must be fp32 or bf16, got 'fp16'");
  bad([](TrainOptions& o) { o.layout = "chwn"; }, "--layout must be nchw or nhwc");
  bad([](TrainOptions& o) { o.model = "resnet21"; }, "6n+2");
  bad([](TrainOptions& o) { o.model = "vgg16"; }, "--model: unknown model 'vgg16'");
  bad([](TrainOptions& o) { o.optimizer = "adam"; }, "--optimizer must be sgd or adamw, got 'adam'");
  bad([](TrainOptions& o) { o.version = 3; }, "--version must be 1 or 2");
  // Options that would be ignored are refused: a version for a v2-only network, SGD's settings
  // with AdamW.
  bad([](TrainOptions& o) { o.model = "wrn", o.version = 1, o.given.insert({"model", "version"}); },
      "--version 1 does not apply to wrn: it is a v2 network");
  bad([](TrainOptions& o) { o.model = "seed-resnet-v2", o.version = 1, o.given.insert({"model", "version"}); },
      "--version 1 does not apply to seed-resnet-v2");
  bad([](TrainOptions& o) { o.optimizer = "adamw", o.nesterov = true, o.given.insert("nesterov"); },
      "--momentum and --nesterov apply to --optimizer sgd");
  bad([](TrainOptions& o) { o.optimizer = "adamw", o.momentum = 0.5, o.given.insert("momentum"); },
      "--momentum and --nesterov apply to --optimizer sgd");
  bad([](TrainOptions& o) { o.epochs = 0; }, "--epochs must be in 1..100000, got 0");
  bad([](TrainOptions& o) { o.batch = -5; }, "--batch must be");
  bad([](TrainOptions& o) { o.lr = -0.1; }, "--lr must be in (0, 100]");
  bad([](TrainOptions& o) { o.lr = NAN; }, "--lr must be");
  bad([](TrainOptions& o) { o.schedule = "linear"; }, "--schedule");
  bad([](TrainOptions& o) { o.optimizer = "lion"; }, "--optimizer must be sgd or adamw, got 'lion'");
  bad([](TrainOptions& o) { o.device = "tpu"; }, "--device must be auto, cpu, cuda or cuda:N, got 'tpu'");
  bad([](TrainOptions& o) { o.dropout = 1.0; }, "--dropout must be in [0, 1)");
  bad([](TrainOptions& o) { o.momentum = 0, o.nesterov = true; }, "--nesterov needs --momentum > 0");
  bad([](TrainOptions& o) { o.nonfinite = "ignore"; }, "--nonfinite must be stop or skip");
  bad([](TrainOptions& o) { o.cuda_graph = "yes"; }, "--cuda-graph must be on or off, got 'yes'");
  bad([](TrainOptions& o) { o.flip = "maybe"; }, "--flip must be on, off or auto");
  bad([](TrainOptions& o) { o.label_smoothing = 1.0; }, "--label-smoothing must be in [0, 1)");
  bad([](TrainOptions& o) { o.clip_grad_norm = -1.0; }, "--clip-grad-norm must be in [0, ");
  bad([](TrainOptions& o) { o.clip_grad_norm = INFINITY; }, "--clip-grad-norm must be in [0, ");
  bad([](TrainOptions& o) { o.clip_grad_norm = 1e-50; }, "is too small for fp32");
  bad([](TrainOptions& o) { o.time_limit = -1.0; }, "--time-limit must be in [0, ");
  bad([](TrainOptions& o) { o.warmup_epochs = 500; }, "--warmup-epochs must be in [0, 160)");
  bad([](TrainOptions& o) { o.warmup_epochs = 160; }, "--warmup-epochs must be in [0, 160)");
  bad([](TrainOptions& o) { o.warmup_epochs = 2, o.schedule = "onecycle"; },
      "--warmup-epochs does not apply to --schedule onecycle");
  bad([](TrainOptions& o) { o.log_every = 0; }, "--log-every must be >= 1");
  bad([](TrainOptions& o) { o.data = "synthetic", o.download = true; }, "--download fetches CIFAR-10");
  bad([](TrainOptions& o) { o.data = "synthetic", o.train_images = 10, o.given.insert("train-images"); },
      "--train-images (10) must hold at least one batch (128)");
}

namespace {
struct Ran {
  int code;
  std::string out, err;
};

// The text of a file the program wrote in `dir` ("" when missing).
std::string read_text(const kestrel::testing::TempDir& dir, const char* name) {
  std::ifstream in(dir / name);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Runs `program` (cifar10_train by default) with `args` in `dir`, capturing its exit code,
// stdout and stderr.
Ran run_program(const std::string& args, const kestrel::testing::TempDir& dir,
                const std::string& program = KESTREL_CIFAR10_TRAIN) {
  const std::string cmd = "cd '" + dir.path().string() + "' && '" + program + "' " + args +
                          " > out.txt 2> err.txt";
  const int status = std::system(cmd.c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, read_text(dir, "out.txt"), read_text(dir, "err.txt")};
}

// Starts cifar10_train with `args` in `dir` in the background, sends SIGTERM once its stdout
// holds `marker`, and takes the exit code from the shell's `wait` (-1, with a failure, when the
// marker did not appear within 120 s: then no signal is sent).
Ran run_and_sigterm(const std::string& args, const std::string& marker, const kestrel::testing::TempDir& dir) {
  const std::string cmd = "cd '" + dir.path().string() + "' && rm -f out.txt code.txt && ('" + KESTREL_CIFAR10_TRAIN +
                          "' " + args + " > out.txt 2> err.txt & pid=$!; seen=0; for i in $(seq 1 1200); do grep -q '" +
                          marker + "' out.txt 2>/dev/null && { seen=1; break; }; sleep 0.1; done; if [ $seen = 1 ]; then "
                          "kill -TERM $pid; wait $pid; echo $? > code.txt; else kill -KILL $pid; wait $pid; "
                          "echo timeout > code.txt; fi)";
  EXPECT_EQ(std::system(cmd.c_str()), 0);
  const std::string code = read_text(dir, "code.txt"), out = read_text(dir, "out.txt"), err = read_text(dir, "err.txt");
  EXPECT_NE(code, "timeout\n") << "'" << marker << "' not printed within 120 s:\n" << out << err;
  return Ran{code == "timeout\n" ? -1 : std::stoi(code), out, err};
}
}  // namespace

TEST(TrainProgram, UsageErrorsExitWith2AndPrintTheUsage) {
  KESTREL_REQUIRE_PROGRAMS_OR_SKIP();
  kestrel::testing::TempDir dir("train_usage");
  for (const char* args : {"--bogus", "--dtype fp64", "--epochs zero", "--layout chwn", "--model resnet21",
                           "--lr -1", "--cuda-graph maybe", "extra_positional"}) {
    const Ran r = run_program(args, dir);
    EXPECT_EQ(r.code, 2) << args << "\n" << r.err;
    EXPECT_NE(r.err.find("Usage:"), std::string::npos) << args << "\n" << r.err;
    EXPECT_EQ(r.err.rfind("cifar10_train: ", 0), 0u) << args << "\n" << r.err;
  }
  const Ran help = run_program("--help", dir);
  EXPECT_EQ(help.code, 0);
  EXPECT_NE(help.out.find("--resume"), std::string::npos);
}

TEST(TrainProgram, RuntimeErrorsExitWith1WithOneLine) {
  KESTREL_REQUIRE_PROGRAMS_OR_SKIP();
  kestrel::testing::TempDir dir("train_runtime");
  std::ofstream(dir / "afile") << "not a folder\n";
  // Each names the option at fault.
  const std::pair<const char*, const char*> cases[] = {
      {"--data /nonexistent/cifar --device cpu", "/nonexistent/cifar"},
      {"--resume missing.safetensors --device cpu", "cifar10_train: --resume: cannot open missing.safetensors"},
      {"--data afile --device cpu", "cifar10_train: --data afile is a file, not a folder"}};
  for (const auto& [args, says] : cases) {
    const Ran r = run_program(args, dir);
    EXPECT_EQ(r.code, 1) << args << "\n" << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << args << "\n" << r.err;
    EXPECT_EQ(r.err.rfind("cifar10_train: ", 0), 0u) << r.err;
    EXPECT_NE(r.err.find(says), std::string::npos) << args << "\n" << r.err;
  }
}

TEST(TrainProgram, BenchResnetWithoutAGpuSaysWhyAndExitsWith1) {
  KESTREL_REQUIRE_PROGRAMS_OR_SKIP();
  if (cuda_device_count() > 0) GTEST_SKIP() << "a CUDA device exists";
  kestrel::testing::TempDir dir("bench_resnet");
  const Ran r = run_program("--quick", dir, KESTREL_BENCH_RESNET);
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "bench_resnet: no CUDA device: " + cuda_unavailable_reason() + "\n");
  EXPECT_EQ(run_program("--bogus", dir, KESTREL_BENCH_RESNET).code, 2);
}

TEST(TrainProgram, ATinyRunWritesLogAndCheckpointAndResumes) {
  KESTREL_REQUIRE_PROGRAMS_OR_SKIP();
  kestrel::testing::TempDir dir("train_tiny");
  const std::string common = "--device cpu --train-images 64 --test-images 20 --batch 32 --epochs 2 "
                             "--log-every 1 --checkpoint ck.safetensors --log log.jsonl";
  const Ran a = run_program(common + " --max-steps 3", dir);
  ASSERT_EQ(a.code, 0) << a.err;
  EXPECT_NE(a.out.find("training a small CPU configuration"), std::string::npos) << a.out;
  EXPECT_NE(a.out.find("stopped after 3 steps"), std::string::npos) << a.out;
  const SafetensorsFile ck = read_safetensors(dir / "ck.safetensors");
  EXPECT_EQ(checkpoint_metadata(ck, "step"), "3");
  EXPECT_EQ(checkpoint_metadata(ck, "model"), "resnet8-w4");
  const Ran b = run_program(common + " --resume ck.safetensors", dir);
  ASSERT_EQ(b.code, 0) << b.err;
  EXPECT_NE(b.out.find("finished after 4 steps"), std::string::npos) << b.out;
  EXPECT_NE(b.out.find("test accuracy"), std::string::npos) << b.out;
  std::ifstream log(dir / "log.jsonl");
  int lines = 0;
  for (std::string l; std::getline(log, l);) ++lines;
  EXPECT_EQ(lines, 6) << "start, step 1, epoch 1, step 3, (stop), resume, epoch 2";
  // Resuming the finished run evaluates it: no step, the same test accuracy, the checkpoint kept.
  auto accuracy = [](const std::string& out) {
    const std::size_t at = out.rfind("test accuracy ");
    return at == std::string::npos ? std::string("none") : out.substr(at, out.find('%', at) - at);
  };
  const Ran c = run_program(common + " --resume ck.safetensors", dir);
  ASSERT_EQ(c.code, 0) << c.err;
  EXPECT_NE(c.out.find("finished after 4 steps"), std::string::npos) << c.out;
  EXPECT_EQ(accuracy(c.out), accuracy(b.out));
  EXPECT_NE(accuracy(c.out), "none");
  EXPECT_EQ(checkpoint_metadata(read_safetensors(dir / "ck.safetensors"), "step"), "4");
}

// An earlier run's files are not lost to a repeated or mistyped command: a fresh run refuses an
// existing --checkpoint or --log (before: the log was truncated at start and the checkpoint
// replaced after the first epoch) unless --overwrite; a --log naming the checkpoint or the
// resumed file (directly or through a link) is refused (its lines corrupted the checkpoint).
// Every refusal comes before the data loads and leaves the files as they were.
TEST(TrainProgram, AnEarlierRunsCheckpointAndLogAreNotReplacedWithoutOverwrite) {
  KESTREL_REQUIRE_PROGRAMS_OR_SKIP();
  kestrel::testing::TempDir dir("train_overwrite");
  const std::string base = "--device cpu --train-images 64 --test-images 20 --batch 32 --epochs 2 ";
  const std::string tiny = base + "--max-steps 1 ";
  const Ran first = run_program(tiny + "--checkpoint ck.safetensors --log log.jsonl", dir);
  ASSERT_EQ(first.code, 0) << first.err;
  const std::string ck_bytes = read_text(dir, "ck.safetensors"), log_text = read_text(dir, "log.jsonl");
  std::filesystem::create_symlink("ck.safetensors", dir / "link.safetensors");
  std::filesystem::create_symlink("new.safetensors", dir / "dangling.jsonl");  // to a file not made yet
  struct Case {
    std::string args, error;
  };
  const Case cases[] = {
      {"--checkpoint ck.safetensors", "--checkpoint ck.safetensors exists (an earlier run's): continue it with --resume ck.safetensors, or pass --overwrite"},
      {"--log log.jsonl", "--log log.jsonl exists (an earlier run's): pass --overwrite"},
      {"--resume ck.safetensors --checkpoint other.safetensors --log ck.safetensors", "--log ck.safetensors is the --resume file"},
      {"--resume ck.safetensors --log link.safetensors", "--log link.safetensors is the --resume file"},
      {"--checkpoint new.safetensors --log ./new.safetensors --overwrite", "--log ./new.safetensors is the --checkpoint file"},
      {"--checkpoint new.safetensors --log dangling.jsonl --overwrite", "--log dangling.jsonl is the --checkpoint file"},
  };
  for (const Case& c : cases) {
    const Ran r = run_program(tiny + c.args, dir);
    EXPECT_EQ(r.code, 1) << c.args << "\n" << r.out << r.err;
    EXPECT_NE(r.err.find(c.error), std::string::npos) << c.args << "\n" << r.err;
    EXPECT_EQ(r.out.find("data:"), std::string::npos) << c.args << ": refused after the data loaded\n" << r.out;
    EXPECT_EQ(read_text(dir, "ck.safetensors"), ck_bytes) << c.args;
    EXPECT_EQ(read_text(dir, "log.jsonl"), log_text) << c.args;
  }
  // Resuming in place appends to the log; --overwrite starts a fresh run over both files.
  const Ran resumed = run_program(base + "--max-steps 2 --resume ck.safetensors --checkpoint ck.safetensors --log log.jsonl", dir);
  ASSERT_EQ(resumed.code, 0) << resumed.err;
  EXPECT_EQ(read_text(dir, "log.jsonl").rfind(log_text, 0), 0u) << "the resumed run appends";
  EXPECT_EQ(checkpoint_metadata(read_safetensors(dir / "ck.safetensors"), "step"), "2");
  const Ran again = run_program(tiny + "--checkpoint ck.safetensors --log log.jsonl --overwrite", dir);
  ASSERT_EQ(again.code, 0) << again.err;
  EXPECT_EQ(checkpoint_metadata(read_safetensors(dir / "ck.safetensors"), "step"), "1");
  EXPECT_EQ(read_text(dir, "log.jsonl").find("\"resume\""), std::string::npos) << "a fresh log";
}

TEST(TrainProgram, SigtermStopsAtTheNextStepWritesTheCheckpointAndExitsWith143) {
  // What a scheduler does before pre-empting a job. The run is started in the background, the
  // signal sent once it has printed a step, and the exit code taken from the shell's `wait`.
  KESTREL_REQUIRE_PROGRAMS_OR_SKIP();
  kestrel::testing::TempDir dir("train_sigterm");
  // 200 steps an epoch: the signal lands long before the first epoch ends, however fast the host.
  const std::string data = "--device cpu --train-images 6400 --test-images 20 --batch 32 --epochs 50 ";
  auto signalled = [&](const std::string& args) {
    return run_and_sigterm(data + "--log-every 1 " + args, " step 2/", dir);
  };
  const Ran r = signalled("--checkpoint ck.safetensors");
  EXPECT_EQ(r.code, 143) << r.out << r.err;
  EXPECT_NE(r.out.find("SIGTERM after step "), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("stopping after this step"), std::string::npos) << r.err;
  EXPECT_NE(r.out.find("checkpoint written to ck.safetensors; continue with --resume ck.safetensors"),
            std::string::npos)
      << r.out;
  const SafetensorsFile ck = read_safetensors(dir / "ck.safetensors");
  const std::int64_t step = std::stoll(checkpoint_metadata(ck, "step"));
  EXPECT_GE(step, 2);
  EXPECT_LT(step, 200) << "stopped within the first epoch";
  const Ran resumed = run_program(data + "--max-steps " + std::to_string(step + 1) + " --resume ck.safetensors", dir);
  EXPECT_EQ(resumed.code, 0) << resumed.err;
  EXPECT_NE(resumed.out.find("stopped after " + std::to_string(step + 1) + " steps"), std::string::npos)
      << resumed.out;
  const Ran unsaved = signalled("");
  EXPECT_EQ(unsaved.code, 143) << unsaved.out << unsaved.err;
  EXPECT_NE(unsaved.out.find("no --checkpoint, progress not saved"), std::string::npos) << unsaved.out;
}

// A signal after the last step (here --max-steps 2, mid-epoch) lands before or during the final
// evaluation of 2,000 test images (63 batches of 32, seconds on a CPU): the evaluation ends at its
// next batch, and the run ends with 128 + SIGTERM and says how far the evaluation got, without a
// test accuracy (before: it said it was stopping, evaluated on, and exited 0; later: it stopped
// only once all the images were evaluated). A signal that comes before the last step's check
// stops there, with the same end and no evaluation.
TEST(TrainProgram, SigtermDuringTheFinalEvaluationEndsItAndExitsWith143) {
  KESTREL_REQUIRE_PROGRAMS_OR_SKIP();
  kestrel::testing::TempDir dir("train_sigterm_eval");
  const Ran r = run_and_sigterm("--device cpu --model resnet8 --train-images 128 --test-images 2000 --batch 32 "
                                "--epochs 1 --max-steps 2 --log-every 1 --checkpoint ck.safetensors",
                                " step 2/", dir);
  EXPECT_EQ(r.code, 143) << r.out << r.err;
  EXPECT_NE(r.out.find("SIGTERM after step 2"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("test accuracy"), std::string::npos) << r.out;
  EXPECT_EQ(checkpoint_metadata(read_safetensors(dir / "ck.safetensors"), "step"), "2");
  const std::string during = "during the final evaluation (";
  const std::size_t at = r.out.find(during);
  if (at != std::string::npos) {
    const std::int64_t images = std::stoll(r.out.substr(at + during.size()));
    EXPECT_LT(images, 2000) << "stopped before the last batch\n" << r.out;
    EXPECT_EQ(images % 32, 0) << "whole batches\n" << r.out;
    EXPECT_NE(r.out.find(" of 2000 test images evaluated): checkpoint written to ck.safetensors"), std::string::npos)
        << r.out;
  }
}

TEST(TrainProgram, TimeLimitStopsWithACheckpointAndTheTestAccuracy) {
  // 0.001 minutes: the limit passes within the first few steps of a 1000-step run.
  KESTREL_REQUIRE_PROGRAMS_OR_SKIP();
  kestrel::testing::TempDir dir("train_time_limit");
  const Ran r = run_program("--device cpu --train-images 640 --test-images 20 --batch 32 --epochs 50 "
                            "--time-limit 0.001 --checkpoint ck.safetensors",
                            dir);
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("time limit reached after step "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("checkpoint written to ck.safetensors"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("test accuracy"), std::string::npos) << r.out;
  const std::int64_t step = std::stoll(checkpoint_metadata(read_safetensors(dir / "ck.safetensors"), "step"));
  EXPECT_GE(step, 1);
  EXPECT_LT(step, 1000) << "stopped long before the end";
  EXPECT_NE(r.out.find("stopped after " + std::to_string(step) + " steps"), std::string::npos) << r.out;
}

// The ranges the errors state are inclusive where they say so: --width 0..1024, --batch and
// --eval-batch up to 65536, --epochs up to 100000, --weight-decay in [0, 1], --dropout from 0,
// --clip-grad-norm up to 1e30 and --time-limit up to 1e7 minutes are all accepted at their edges.
TEST(TrainProgram, TheStatedRangesAcceptTheirEdges) {
  auto accepted = [](void (*set)(TrainOptions&), const char* what) {
    TrainOptions o;
    set(o);
    EXPECT_EQ(error_of([&] { plan_training(o, "", false); }), "(no error)") << what;
  };
  accepted([](TrainOptions& o) { o.width = 1024; o.given.insert("width"); }, "--width 1024");
  accepted([](TrainOptions& o) { o.batch = o.train_images = 65536; o.given.insert({"batch", "train-images"}); }, "--batch 65536");
  accepted([](TrainOptions& o) { o.eval_batch = 65536; }, "--eval-batch 65536");
  accepted([](TrainOptions& o) { o.epochs = 100000; o.given.insert("epochs"); }, "--epochs 100000");
  accepted([](TrainOptions& o) { o.weight_decay = 1.0; o.given.insert("weight-decay"); }, "--weight-decay 1");
  accepted([](TrainOptions& o) { o.dropout = 0.0; o.given.insert("dropout"); }, "--dropout 0");
  accepted([](TrainOptions& o) { o.clip_grad_norm = 1e30; }, "--clip-grad-norm 1e30");
  accepted([](TrainOptions& o) { o.time_limit = 1e7; }, "--time-limit 1e7");
}

// --seed and --label-smoothing reach the trainer's configuration.
TEST(TrainProgram, SeedAndLabelSmoothingReachTheTrainerConfig) {
  TrainOptions o;
  o.seed = 1234567;
  o.label_smoothing = 0.1;
  o.given.insert({"seed", "label-smoothing"});
  const TrainPlan p = plan_training(o, "", false);
  EXPECT_EQ(p.trainer.seed, 1234567u);
  EXPECT_FLOAT_EQ(p.trainer.label_smoothing, 0.1f);
}

// --checkpoint-every writes mid-epoch checkpoints, so it needs --checkpoint FILE.
TEST(TrainProgram, CheckpointEveryNeedsACheckpointFile) {
  TrainOptions o;
  o.checkpoint_every = 100;
  EXPECT_NE(error_of([&] { plan_training(o, "", false); }).find("--checkpoint-every needs --checkpoint FILE"),
            std::string::npos);
  o.checkpoint = "ck.safetensors";
  EXPECT_EQ(plan_training(o, "", false).trainer.checkpoint_every, 100);
}
