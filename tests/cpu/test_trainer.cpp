// The trainer (layers/trainer.h) on the CPU backend: synthetic data is learnable, runs are
// deterministic, a resumed run reproduces the uninterrupted one bit for bit, non-finite losses
// stop (with the step) or are skipped, evaluation counts only the real rows of a padded batch,
// and the JSON-lines log holds the documented fields.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include "temp_dir.h"
#include "error_text.h"
#include "test_support.h"
#include "tiny_trainer.h"
#include "kestrel/kernels/cpu/augment.h"
#include "kestrel/layers/checkpoint.h"
#include "kestrel/layers/trainer.h"

using namespace kestrel;
using kestrel::testing::error_of;

namespace {

TrainerConfig tiny_config() { return kestrel::testing::tiny_trainer_config(4, 16, 4); }

const CifarDataset& small_data() {
  static const CifarDataset d = synthetic_cifar10(160, 40, 1);  // 10 steps of 16 an epoch
  return d;
}

std::vector<nlohmann::json> read_json_lines(const std::string& path) {
  std::vector<nlohmann::json> lines;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) lines.push_back(nlohmann::json::parse(line));
  return lines;
}

// The "step" lines of a JSON-lines log.
std::vector<nlohmann::json> step_lines(const std::string& path) {
  std::vector<nlohmann::json> lines;
  for (const auto& j : read_json_lines(path))
    if (j["event"] == "step") lines.push_back(j);
  return lines;
}

// The ten losses of one unevaluated epoch of `c` on small_data().
// The checkpoint of a run of `c` on small_data() after one step.
SafetensorsFile one_step_checkpoint(TrainerConfig c, Context& ctx) {
  c.max_steps = 1;
  std::ostringstream out;
  Trainer t(c, small_data(), ctx, out);
  t.train();
  return checkpoint_from_store(t.store(), t.checkpoint_metadata());
}

std::vector<float> one_epoch_losses(TrainerConfig c) {
  c.epochs = 1;
  c.evaluate = false;
  Context ctx;
  std::ostringstream out;
  Trainer t(c, small_data(), ctx, out);
  std::vector<float> losses = t.train().losses;
  EXPECT_EQ(losses.size(), 10u);
  return losses;
}
}  // namespace

TEST(Trainer, SyntheticDataIsLearnableInAShortCpuRun) {
  TrainerConfig c = tiny_config();
  c.batch = 32;
  c.schedule.base = 0.1f;
  c.schedule.kind = LrSchedule::Kind::kCosine;
  c.log_every = 100;
  const CifarDataset data = synthetic_cifar10(1280, 400, 1);
  Context ctx;
  std::ostringstream out;
  Trainer t(c, data, ctx, out);
  const TrainResult r = t.train();
  ASSERT_EQ(r.epochs.size(), 2u);
  EXPECT_TRUE(r.finished);
  EXPECT_EQ(r.steps_done, 80);
  std::printf("synthetic data, resnet8-w4, 2 epochs of 1280 images: loss %.3f -> %.3f, test accuracy %.1f%% -> %.1f%%\n",
              r.epochs[0].train_loss, r.epochs[1].train_loss, 100 * r.epochs[0].test_accuracy,
              100 * r.epochs[1].test_accuracy);
  EXPECT_LT(r.epochs[1].train_loss, r.epochs[0].train_loss);
  EXPECT_GT(r.epochs[1].test_accuracy, 0.6) << out.str();
  EXPECT_NEAR(t.evaluate(), r.epochs[1].test_accuracy, 0.0) << "evaluation is repeatable";
}

TEST(Trainer, SameSeedSameLossesOtherSeedOtherLosses) {
  TrainerConfig c = tiny_config();
  std::vector<float> losses[3];
  for (int run = 0; run < 3; ++run) {
    c.seed = run == 2 ? 9 : 4;
    losses[run] = one_epoch_losses(c);
    ASSERT_EQ(losses[run].size(), 10u);
  }
  EXPECT_TRUE(kestrel::testing::bit_equal(losses[1], losses[0]));
  EXPECT_NE(losses[2], losses[0]);
}

TEST(Trainer, MaxGradNormReachesTheUpdate) {
  // A limit never reached changes nothing, bit for bit; a small one leaves the first loss (before
  // any update) alone and changes every later one.
  TrainerConfig c = tiny_config();
  std::vector<float> losses[3];
  const float limits[3] = {0.f, 1e6f, 1e-3f};
  for (int run = 0; run < 3; ++run) {
    c.max_grad_norm = limits[run];
    losses[run] = one_epoch_losses(c);
    ASSERT_EQ(losses[run].size(), 10u);
  }
  EXPECT_TRUE(kestrel::testing::bit_equal(losses[1], losses[0]));
  EXPECT_EQ(losses[2][0], losses[0][0]);
  for (std::size_t i = 1; i < losses[0].size(); ++i) EXPECT_NE(losses[2][i], losses[0][i]) << "step " << i + 1;
}

// Train uninterrupted; train again stopping mid-epoch (checkpoint), resume from the file in a
// fresh trainer and context: the losses, epoch statistics and final weights are identical.
TEST(Trainer, ResumedRunReproducesTheUninterruptedRunExactly) {
  struct Variant {
    const char* what;
    std::int64_t stop;
    void (*tweak)(TrainerConfig&);
  };
  const Variant variants[] = {
      {"v1 nchw fp32 sgd nesterov, stop mid-epoch", 7,
       [](TrainerConfig& c) {
         c.sgd.nesterov = true;
         c.random_flip = true;
       }},
      {"v2 nhwc bf16 adamw dropout smoothing, stop at an epoch end", 10,
       [](TrainerConfig& c) {
         c.net.version = 2;
         c.net.dropout = 0.2f;
         c.layout = Layout::kNHWC;
         c.dtype = DType::kBFloat16;
         c.optimizer = OptimizerKind::kAdamW;
         c.schedule.base = 0.01f;
         c.label_smoothing = 0.1f;
       }},
  };
  for (const Variant& v : variants) {
    SCOPED_TRACE(v.what);
    TrainerConfig c = tiny_config();
    v.tweak(c);
    c.seed = 17;
    kestrel::testing::TempDir dir("trainer_resume");
    TrainResult whole;
    std::vector<float> whole_params, whole_states;
    {
      Context ctx;
      std::ostringstream out;
      TrainerConfig logged = c;
      logged.log_path = dir / "whole.jsonl";
      Trainer t(logged, small_data(), ctx, out);
      whole = t.train();
      whole_params = t.store().flat_params().to_float_vector();
      whole_states = t.store().flat_states().to_float_vector();
    }
    ASSERT_EQ(whole.losses.size(), 20u);
    TrainResult first, second;
    TrainerConfig stop = c;
    stop.max_steps = v.stop;
    stop.checkpoint_path = dir / "ck.safetensors";
    stop.log_path = dir / "resumed.jsonl";
    {
      Context ctx;
      std::ostringstream out;
      Trainer t(stop, small_data(), ctx, out);
      first = t.train();
      EXPECT_FALSE(first.finished);
      EXPECT_EQ(first.steps_done, v.stop);
    }
    const SafetensorsFile ck = read_safetensors(dir / "ck.safetensors");
    EXPECT_EQ(checkpoint_metadata(ck, "step"), std::to_string(v.stop));
    {
      Context ctx;
      std::ostringstream out;
      TrainerConfig resume = c;
      resume.seed = 12345;  // the checkpoint's seed wins
      resume.log_path = stop.log_path;
      Trainer t(resume, small_data(), ctx, out, &ck, "ck.safetensors");
      EXPECT_EQ(t.config().seed, 17u);
      EXPECT_EQ(t.global_step(), v.stop);
      second = t.train();
      EXPECT_TRUE(second.finished);
      EXPECT_EQ(second.first_step, v.stop);
      EXPECT_TRUE(kestrel::testing::bit_equal(t.store().flat_params().to_float_vector(), whole_params));
      EXPECT_TRUE(kestrel::testing::bit_equal(t.store().flat_states().to_float_vector(), whole_states));
    }
    std::vector<float> joined = first.losses;
    joined.insert(joined.end(), second.losses.begin(), second.losses.end());
    EXPECT_TRUE(kestrel::testing::bit_equal(joined, whole.losses));
    // The last epoch's statistics continue across the checkpoint, too.
    ASSERT_FALSE(second.epochs.empty());
    const EpochResult& a = whole.epochs.back();
    const EpochResult& b = second.epochs.back();
    EXPECT_EQ(b.train_loss, a.train_loss);
    EXPECT_EQ(b.train_accuracy, a.train_accuracy);
    EXPECT_EQ(b.test_accuracy, a.test_accuracy);
    // So do the log's step and epoch lines: a stop inside a log interval (step 7 of intervals of
    // 4) wrote a line of its own and the resumed run's next line covered only the steps after it.
    auto records = [](const std::string& path) {
      std::vector<std::string> kept;
      for (nlohmann::json j : read_json_lines(path)) {
        if (j["event"] != "step" && j["event"] != "epoch") continue;
        for (const char* timing : {"images_per_s", "peak_mem_mb", "epoch_time_s"}) j.erase(timing);
        kept.push_back(j.dump());
      }
      return kept;
    };
    EXPECT_EQ(records(stop.log_path), records(dir / "whole.jsonl"));
  }
}

// Skip mode across a resume: the count of skipped steps in a row and the last update's gradient
// norm are part of the checkpoint (the resumed run restarted the count at 0 and went on two steps
// past the uninterrupted run's stop, and logged grad_norm 0).
TEST(Trainer, SkipCountAndGradNormSurviveAResume) {
  TrainerConfig c = tiny_config();
  c.nonfinite = NonFinitePolicy::kSkip;
  c.max_skips_in_a_row = 3;
  c.log_every = 1;
  kestrel::testing::TempDir dir("trainer_skip_resume");
  auto poisoned_after_two = [&](Trainer& t) {
    t.set_max_steps(2);
    t.train();
    t.store().value("fc.bias").data_as<float>()[1] = INFINITY;
  };
  std::string whole_error;
  {
    TrainerConfig w = c;
    w.log_path = dir / "whole.jsonl";
    Context ctx;
    std::ostringstream out;
    Trainer t(w, small_data(), ctx, out);
    poisoned_after_two(t);
    t.set_max_steps(0);
    whole_error = error_of([&] { t.train(); });
  }
  EXPECT_NE(whole_error.find("at step 6 (epoch 1): 4 steps in a row skipped"), std::string::npos) << whole_error;
  TrainerConfig s = c;
  s.checkpoint_path = dir / "ck.safetensors";
  s.log_path = dir / "resumed.jsonl";
  {
    Context ctx;
    std::ostringstream out;
    Trainer t(s, small_data(), ctx, out);
    poisoned_after_two(t);
    t.set_max_steps(4);
    t.train();  // steps 3 and 4 skipped, then the checkpoint
  }
  const SafetensorsFile ck = read_safetensors(s.checkpoint_path);
  EXPECT_EQ(checkpoint_metadata(ck, "skips_in_a_row"), "2");
  Context ctx;
  std::ostringstream out;
  Trainer t(s, small_data(), ctx, out, &ck, "ck.safetensors");
  EXPECT_EQ(error_of([&] { t.train(); }), whole_error);
  const auto whole = step_lines(dir / "whole.jsonl"), resumed = step_lines(s.log_path);
  ASSERT_EQ(resumed.size(), whole.size());
  for (std::size_t i = 0; i < whole.size(); ++i) {
    EXPECT_EQ(resumed[i]["step"], whole[i]["step"]);
    EXPECT_EQ(resumed[i]["grad_norm"], whole[i]["grad_norm"]) << "step " << whole[i]["step"];
  }
}

TEST(Trainer, ResumeRefusesACheckpointOfAnotherModelOrBatch) {
  const TrainerConfig c = tiny_config();
  Context ctx;
  std::ostringstream out;
  const SafetensorsFile ck = one_step_checkpoint(c, ctx);
  TrainerConfig other = c;
  other.batch = 8;
  EXPECT_NE(error_of([&] { Trainer u(other, small_data(), ctx, out, &ck, "a.safetensors"); })
                .find("a.safetensors was written for batch 16, but this run has batch 8"),
            std::string::npos);
  other = c;
  other.net.widths = {4, 8, 32};
  other.net.name = "resnet8-w4-wide";
  EXPECT_NE(error_of([&] { Trainer u(other, small_data(), ctx, out, &ck); }).find("for model resnet8-w4,"),
            std::string::npos);
}

// A checkpoint path that cannot be written, or the log's own file, is refused by the
// constructor, not after the first epoch's training (the first save).
TEST(Trainer, AnUnwritableCheckpointPathIsRefusedBeforeTraining) {
  Context ctx;
  std::ostringstream out;
  kestrel::testing::TempDir dir("trainer_paths");
  TrainerConfig c = tiny_config();
  c.checkpoint_path = (dir.path() / "no-such-folder" / "run.safetensors").string();
  EXPECT_NE(error_of([&] { Trainer t(c, small_data(), ctx, out); }).find("checkpoint_path"), std::string::npos);
  c.checkpoint_path = (dir.path() / "run.safetensors").string();
  c.log_path = c.checkpoint_path;
  EXPECT_NE(error_of([&] { Trainer t(c, small_data(), ctx, out); }).find("is the checkpoint file"),
            std::string::npos);
  EXPECT_TRUE(dir.entries().empty()) << "nothing written";
}

// The same number of training images is not the same data: a run that fell back to synthetic
// data with CIFAR-10's 50,000 images, or another seed's or copy's images, is refused, naming
// both sources (before: it trained on and then overwrote the checkpoint).
TEST(Trainer, ResumeRefusesACheckpointOfOtherTrainingData) {
  const TrainerConfig c = tiny_config();
  Context ctx;
  std::ostringstream out;
  const SafetensorsFile ck = one_step_checkpoint(c, ctx);
  EXPECT_EQ(checkpoint_metadata(ck, "train_fingerprint"), cifar10_fingerprint(small_data().train));
  EXPECT_EQ(checkpoint_metadata(ck, "train_source"), small_data().source);
  const CifarDataset other_seed = synthetic_cifar10(160, 40, 2);
  const std::string e = error_of([&] { Trainer u(c, other_seed, ctx, out, &ck, "a.safetensors"); });
  EXPECT_NE(e.find("a.safetensors was trained on other data (synthetic (seed 1)"), std::string::npos) << e;
  EXPECT_NE(e.find("than this run's (synthetic (seed 2)"), std::string::npos) << e;
  CifarDataset one_label = small_data();
  one_label.train.labels[77] = static_cast<std::uint8_t>((one_label.train.labels[77] + 1) % 10);
  EXPECT_NE(error_of([&] { Trainer u(c, one_label, ctx, out, &ck); }).find("trained on other data"),
            std::string::npos);
  CifarDataset one_pixel = small_data();
  one_pixel.train.images[12345] ^= 1;
  EXPECT_NE(error_of([&] { Trainer u(c, one_pixel, ctx, out, &ck); }).find("trained on other data"),
            std::string::npos);
  CifarDataset other_test = small_data();  // the test split is not part of the fingerprint
  other_test.test = synthetic_cifar10(160, 40, 3).test;
  EXPECT_EQ(error_of([&] { Trainer u(c, other_test, ctx, out, &ck); }), "(no error)");
  // An older Kestrel's checkpoint (no fingerprint) still resumes, saying its data is unchecked.
  SafetensorsFile older = ck;
  older.metadata.erase("train_fingerprint");
  older.metadata.erase("train_source");
  std::ostringstream said;
  EXPECT_EQ(error_of([&] { Trainer u(c, other_seed, ctx, said, &older, "old.safetensors"); }), "(no error)");
  EXPECT_NE(said.str().find("note: old.safetensors records no training-set fingerprint"), std::string::npos)
      << said.str();
}

// A checkpoint's position is checked against this run before it is used as an index (a crafted
// "step" of " -1" once parsed as 2^64 - 1 and became step -1: reads before the epoch's
// permutation, writes before its loss buffer).
TEST(Trainer, ResumeRefusesAPositionOutsideThisRun) {
  TrainerConfig c = tiny_config();  // 2 epochs of 10 steps
  c.max_steps = 3;                  // mid-epoch
  Context ctx;
  std::ostringstream out;
  Trainer t(c, small_data(), ctx, out);
  t.train();
  const SafetensorsFile good = checkpoint_from_store(t.store(), t.checkpoint_metadata());
  ASSERT_EQ(good.metadata.at("step"), "3");
  EXPECT_NO_THROW(Trainer u(c, small_data(), ctx, out, &good, "ck.safetensors"));
  const struct {
    const char* key;
    const char* value;
    const char* error;
  } bad[] = {
      {"step", " -1", "\"step\" is \" -1\", not an unsigned integer"},
      {"step", "+3", "not an unsigned integer"},
      {"step", "18446744073709551615", "\"step\" is 18446744073709551615, more than this run's steps"},
      {"step", "18446744073709551616", "not an unsigned integer"},
      {"step", "21", "\"step\" is 21, more than this run's steps (epochs x steps an epoch) (20)"},
      {"skipped_steps", "4", "\"skipped_steps\" is 4, more than its \"step\" (3)"},
      {"epoch_loss_steps", "4", "more than the steps taken in its epoch (3)"},
      {"epoch_images", "49", "more than the images of the steps taken in its epoch (48)"},
      {"epoch_correct", "49", "more than its \"epoch_images\""},
      {"epoch_loss_sum", "nan", "\"epoch_loss_sum\" is \"nan\", not a finite number"},
      {"lr", "inf", "\"lr\" is \"inf\", not a finite non-negative number"},
      {"lr", "-0.1", "not a finite non-negative number"},
      {"optimizer_step", "9223372036854775808", "beyond a step count"},
  };
  for (const auto& b : bad) {
    SafetensorsFile f = good;
    f.metadata[b.key] = b.value;
    const std::string e = error_of([&] { Trainer u(c, small_data(), ctx, out, &f, "ck.safetensors"); });
    EXPECT_NE(e.find(b.error), std::string::npos) << b.key << " = '" << b.value << "': " << e;
    EXPECT_NE(e.find("ck.safetensors"), std::string::npos) << e;
  }
}

TEST(Trainer, NonFiniteLossStopsNamingTheStep) {
  TrainerConfig c = tiny_config();
  c.max_steps = 5;
  kestrel::testing::TempDir dir("trainer_nan");
  c.log_path = dir / "log.jsonl";
  Context ctx;
  std::ostringstream out;
  Trainer t(c, small_data(), ctx, out);
  t.train();
  t.store().value("fc.bias").data_as<float>()[3] = NAN;  // host memory on the CPU backend
  t.set_max_steps(0);
  const std::string msg = error_of([&] { t.train(); });
  EXPECT_NE(msg.find("loss became NaN/Inf at step 6 (epoch 1)"), std::string::npos) << msg;
  const auto lines = read_json_lines(c.log_path);
  ASSERT_FALSE(lines.empty());
  EXPECT_EQ(lines.back()["event"], "nonfinite");
  EXPECT_EQ(lines.back()["step"], 6);
  // The failed call left its totals ahead of its position: the Trainer refuses to go on or to
  // checkpoint that state, naming the first error, and stays refused.
  const std::string prefix = ": an earlier train() call of this Trainer stopped with an error (" + msg + ")";
  for (int again = 0; again < 2; ++again) {
    const std::string next = error_of([&] { t.train(); });
    EXPECT_EQ(next.find("train" + prefix), 0u) << next;
  }
  const std::string save = error_of([&] { t.save_checkpoint(dir / "after.safetensors"); });
  EXPECT_EQ(save.find("save_checkpoint" + prefix), 0u) << save;
  EXPECT_FALSE(std::filesystem::exists(dir / "after.safetensors"));
  EXPECT_EQ(read_json_lines(c.log_path).size(), lines.size()) << "a refused call logs nothing";
  EXPECT_GE(t.evaluate(), 0.0) << "evaluation still works";
}

TEST(Trainer, SkipModeSkipsTheUpdateAndRestoresTheStatistics) {
  TrainerConfig c = tiny_config();
  c.nonfinite = NonFinitePolicy::kSkip;
  c.max_skips_in_a_row = 2;
  c.max_steps = 3;
  Context ctx;
  std::ostringstream out;
  Trainer t(c, small_data(), ctx, out);
  t.train();
  float* bias = t.store().value("fc.bias").data_as<float>();
  const float saved = bias[1];
  bias[1] = INFINITY;
  const std::vector<float> params = t.store().flat_params().to_float_vector();
  const std::vector<float> states = t.store().flat_states().to_float_vector();
  const std::int64_t updates = t.store().read_counters().step;
  t.set_max_steps(4);
  const TrainResult skipped = t.train();
  EXPECT_EQ(skipped.skipped_steps, 1);
  ASSERT_EQ(skipped.losses.size(), 1u);
  EXPECT_TRUE(std::isnan(skipped.losses[0]));
  EXPECT_EQ(t.store().read_counters().step, updates) << "no optimizer step";
  EXPECT_TRUE(kestrel::testing::bit_equal(t.store().flat_params().to_float_vector(), params));
  EXPECT_TRUE(kestrel::testing::bit_equal(t.store().flat_states().to_float_vector(), states));
  EXPECT_NE(out.str().find("step 4 (epoch 1): loss "), std::string::npos) << out.str();
  bias[1] = saved;  // the cause goes away: training continues
  t.set_max_steps(6);
  const TrainResult resumed = t.train();
  ASSERT_EQ(resumed.losses.size(), 2u);
  EXPECT_TRUE(std::isfinite(resumed.losses[0]) && std::isfinite(resumed.losses[1]));
  EXPECT_EQ(t.store().read_counters().step, updates + 2);
  bias[1] = NAN;  // for good: stops after max_skips_in_a_row
  t.set_max_steps(0);
  const std::string msg = error_of([&] { t.train(); });
  EXPECT_NE(msg.find("loss became NaN/Inf at step 9 (epoch 1): 3 steps in a row skipped"), std::string::npos) << msg;
}

// The log line of an interval whose steps were all skipped has no loss (null, not 0), and its
// grad_norm is the last applied update's.
TEST(Trainer, AnIntervalOfSkippedStepsOnlyLogsNoLoss) {
  TrainerConfig c = tiny_config();  // log_every 4
  c.nonfinite = NonFinitePolicy::kSkip;
  c.max_skips_in_a_row = 10;
  c.max_steps = 4;
  kestrel::testing::TempDir dir("trainer_skip_log");
  c.log_path = dir / "log.jsonl";
  Context ctx;
  std::ostringstream out;
  Trainer t(c, small_data(), ctx, out);
  t.train();
  float* bias = t.store().value("fc.bias").data_as<float>();
  bias[1] = INFINITY;
  t.set_max_steps(8);
  EXPECT_EQ(t.train().skipped_steps, 4);
  const std::vector<nlohmann::json> steps = step_lines(c.log_path);
  ASSERT_EQ(steps.size(), 2u);
  EXPECT_EQ(steps[0]["step"], 4);
  EXPECT_TRUE(steps[0]["loss"].is_number());
  EXPECT_EQ(steps[1]["step"], 8);
  EXPECT_TRUE(steps[1]["loss"].is_null()) << steps[1].dump();
  EXPECT_EQ(steps[1]["grad_norm"], steps[0]["grad_norm"]) << "no update since step 4";
}

// A batch-1 inference executor over every test image is the reference for evaluate(): with 40
// test images and batches of 16, the last batch has 8 real rows and 8 copies of image 0.
TEST(Trainer, EvaluationCountsOnlyTheRealRowsOfThePaddedLastBatch) {
  TrainerConfig c = tiny_config();
  c.max_steps = 6;
  Context ctx;
  std::ostringstream out;
  Trainer t(c, small_data(), ctx, out);
  t.train();
  const double acc = t.evaluate();

  const Graph g = build_training_graph(c, 1);
  CompileOptions eo;
  eo.training = false;
  Executor one(g, t.store(), ctx, eo);
  one.input("labels").zero(ctx.stream());  // the loss is not looked at
  AugmentParams p;
  p.random_crop = p.random_flip = false;
  for (int ch = 0; ch < 3; ++ch) p.mean[ch] = kCifarMean[ch], p.std[ch] = kCifarStd[ch];
  const CifarSplit& test = small_data().test;
  int correct = 0, image0_correct = 0;
  for (std::int32_t i = 0; i < test.count; ++i) {
    std::int32_t label = 0;
    cpu::augment_batch(test.images.data(), test.count, test.labels.data(), &i, 1, one.input("images").data(),
                       DType::kFloat32, Layout::kNCHW, &label, p);
    one.run();
    const std::vector<float> z = one.output("logits").to_float_vector();
    const int best = static_cast<int>(std::max_element(z.begin(), z.end()) - z.begin());
    correct += best == label;
    if (i == 0) image0_correct = best == label;
  }
  EXPECT_EQ(acc, correct / 40.0) << "image 0 " << (image0_correct ? "right" : "wrong");
}

TEST(Trainer, JsonLogHasTheDocumentedFields) {
  TrainerConfig c = tiny_config();
  kestrel::testing::TempDir dir("trainer_log");
  c.log_path = dir / "log.jsonl";
  c.epochs = 1;
  Context ctx;
  std::ostringstream out;
  Trainer t(c, small_data(), ctx, out);
  t.train();
  const auto lines = read_json_lines(c.log_path);
  ASSERT_EQ(lines.size(), 1u + 2u + 1u);  // start, steps 4 and 8, the epoch
  EXPECT_EQ(lines[0]["event"], "start");
  EXPECT_EQ(lines[0]["model"], "resnet8-w4");
  EXPECT_EQ(lines[0]["max_grad_norm"], 0.0) << "no clipping";
  EXPECT_EQ(lines[0]["steps_per_epoch"], 10);
  for (const auto& j : lines) EXPECT_EQ(j["device"], "cpu");
  EXPECT_EQ(lines[1]["event"], "step");
  EXPECT_EQ(lines[2]["step"], 8);
  const nlohmann::json& e = lines[3];
  EXPECT_EQ(e["event"], "epoch");
  for (const char* k : {"epoch", "step", "loss", "train_acc", "test_acc", "lr", "images_per_s", "peak_mem_mb"})
    EXPECT_TRUE(e.contains(k)) << k;
  // Step lines carry the gradients' global L2 norm of the interval's last update (before any
  // clipping): positive and finite on this run.
  EXPECT_GT(lines[1]["grad_norm"].get<double>(), 0.0);
  EXPECT_TRUE(std::isfinite(lines[2]["grad_norm"].get<double>()));
  EXPECT_EQ(e["step"], 10);
  EXPECT_GT(e["images_per_s"].get<double>(), 0.0);
  EXPECT_GT(e["peak_mem_mb"].get<double>(), 0.0);
  EXPECT_DOUBLE_EQ(lines[1]["lr"].get<double>(), 0.05);  // step 4 of 10: before the first decay
  EXPECT_DOUBLE_EQ(e["lr"].get<double>(), 0.0005);      // after both
  EXPECT_NE(out.str().find("epoch 1/1 step 4/10 loss"), std::string::npos) << out.str();
}

// The rate a log line reports is the one its last step ran at, and train_acc is a fraction of the
// images seen so far in the epoch. Two epochs of 10 steps, log_every 5: step lines after steps 5
// and 15, epoch lines after 10 and 20. Step schedule (PyTorch's MultiStepLR, milestones at steps 10
// and 15 of 20, gamma 0.1): step index 4 runs at 0.05, 9 at 0.05, 14 at 0.005, 19 at 0.0005.
TEST(Trainer, LogLinesReportTheRateOfTheirLastStep) {
  TrainerConfig c = tiny_config();
  kestrel::testing::TempDir dir("trainer_log_lr");
  c.log_path = dir / "log.jsonl";
  c.log_every = 5;
  c.evaluate = false;
  Context ctx;
  std::ostringstream out;
  Trainer t(c, small_data(), ctx, out);
  t.set_max_steps(15);
  t.train();
  // The checkpoint's "epoch" counts the epochs completed: 1 of 2 at step 15.
  EXPECT_EQ(t.checkpoint_metadata().at("epoch"), "1");
  EXPECT_EQ(t.checkpoint_metadata().at("step"), "15");
  t.set_max_steps(0);
  t.train();
  EXPECT_EQ(t.checkpoint_metadata().at("epoch"), "2");
  const auto lines = read_json_lines(c.log_path);
  ASSERT_EQ(lines.size(), 5u);  // start, step 5, epoch 1, step 15, epoch 2
  EXPECT_EQ(lines[1]["step"], 5);
  EXPECT_NEAR(lines[1]["lr"].get<double>(), 0.05, 1e-8);
  EXPECT_EQ(lines[2]["event"], "epoch");
  EXPECT_NEAR(lines[2]["lr"].get<double>(), 0.05, 1e-8);  // step index 9: before the first milestone
  EXPECT_EQ(lines[3]["step"], 15);
  EXPECT_NEAR(lines[3]["lr"].get<double>(), 0.005, 1e-9);  // step index 14: before the second
  EXPECT_NEAR(lines[4]["lr"].get<double>(), 0.0005, 1e-10);
  // train_acc: correct / images over the epoch's steps so far (5 steps of 16 = 80 images).
  for (std::size_t i : {1u, 3u}) {
    const double seen = lines[i]["train_acc"].get<double>() * 80.0;
    EXPECT_NEAR(seen, std::round(seen), 1e-9) << "line " << i << ": not a count of 80 images";
    EXPECT_GT(seen, 0.5) << "line " << i;
  }
}

// A step line's loss is the mean over the steps since the previous line (trainer.h), not since
// the epoch's start: with log_every 3 the line after step 6 averages the losses of step indices
// 3, 4 and 5. The progress bar's fill is the share of the epoch done: 20 * 5/10 = 10 of 20 marks.
TEST(Trainer, StepLinesAverageOnlyTheirOwnInterval) {
  TrainerConfig c = tiny_config();
  kestrel::testing::TempDir dir("trainer_log_interval");
  c.log_path = dir / "log.jsonl";
  c.log_every = 3;
  c.epochs = 1;
  c.evaluate = false;
  Context ctx;
  std::ostringstream out;
  Trainer t(c, small_data(), ctx, out);
  const TrainResult r = t.train();
  ASSERT_EQ(r.losses.size(), 10u);
  const auto lines = read_json_lines(c.log_path);
  ASSERT_EQ(lines.size(), 5u);  // start, steps 3, 6 and 9, the epoch
  for (int k = 1; k <= 3; ++k) {
    EXPECT_EQ(lines[static_cast<std::size_t>(k)]["step"], 3 * k);
    double sum = 0.0;
    for (int i = 3 * (k - 1); i < 3 * k; ++i) sum += r.losses[static_cast<std::size_t>(i)];
    EXPECT_NEAR(lines[static_cast<std::size_t>(k)]["loss"].get<double>(), sum / 3, 1e-6) << "line after step " << 3 * k;
  }
  c.log_path.clear();
  c.progress_bar = true;
  c.log_every = 5;
  std::ostringstream bar;
  Trainer b(c, small_data(), ctx, bar);
  b.set_max_steps(6);
  b.train();
  EXPECT_NE(bar.str().find(" [##########..........] step 5/10 loss"), std::string::npos) << bar.str();
}

// An epoch's images_per_s is the throughput of the steps this train() call ran in it: continued
// after max_steps 7 of 10, the epoch's result covers 3 steps of 16 images over its seconds.
TEST(Trainer, EpochThroughputCountsTheStepsThisCallRan) {
  TrainerConfig c = tiny_config();
  c.epochs = 1;
  c.evaluate = false;
  Context ctx;
  std::ostringstream out;
  Trainer t(c, small_data(), ctx, out);
  t.set_max_steps(7);
  t.train();
  t.set_max_steps(0);
  const TrainResult r = t.train();
  ASSERT_EQ(r.epochs.size(), 1u);
  const EpochResult& e = r.epochs[0];
  ASSERT_GT(e.seconds, 0.0);
  EXPECT_NEAR(e.images_per_s * e.seconds, 3 * 16, 1e-6);
}

// A log that cannot be written (here /dev/full: every write fails with ENOSPC) stops the run with
// an error naming the file and the reason, as a checkpoint that cannot be written does; before,
// every record was dropped silently and the run ended as if logged.
TEST(Trainer, ALogThatCannotBeWrittenIsAnError) {
  if (!std::filesystem::exists("/dev/full")) GTEST_SKIP() << "no /dev/full on this machine";
  TrainerConfig c = tiny_config();
  c.log_path = "/dev/full";
  c.epochs = 1;
  Context ctx;
  std::ostringstream out;
  const std::string e = error_of([&] {
    Trainer t(c, small_data(), ctx, out);
    t.train();
  });
  EXPECT_NE(e.find("cannot write the log file /dev/full"), std::string::npos) << e;
  EXPECT_NE(e.find("No space left on device"), std::string::npos) << e;
}

TEST(Trainer, RejectsInvalidConfigurations) {
  Context ctx;
  std::ostringstream out;
  TrainerConfig c = tiny_config();
  c.batch = 161;
  EXPECT_NE(error_of([&] { Trainer t(c, small_data(), ctx, out); }).find("smaller than one batch"), std::string::npos);
  c = tiny_config();
  c.dtype = DType::kFloat16;
  EXPECT_NE(error_of([&] { validate(c); }).find("fp32 or bf16"), std::string::npos);
  c = tiny_config();
  c.log_every = 0;
  EXPECT_NE(error_of([&] { validate(c); }).find("log interval"), std::string::npos);
  c = tiny_config();
  c.sgd.nesterov = true;
  c.sgd.momentum = 0.f;
  EXPECT_NE(error_of([&] { validate(c); }), "(no error)");
  c = tiny_config();
  c.max_grad_norm = -1.f;
  EXPECT_NE(error_of([&] { validate(c); }).find("max gradient norm"), std::string::npos);
  // Warm-up: shorter than the run, and none with one-cycle (which warms up on its own).
  c = tiny_config();
  c.warmup_epochs = c.epochs;
  EXPECT_NE(error_of([&] { validate(c); }).find("warm-up must be in [0, 2) epochs"), std::string::npos);
  c = tiny_config();
  c.schedule.kind = LrSchedule::Kind::kOneCycle;
  c.warmup_epochs = 0.5;
  EXPECT_NE(error_of([&] { validate(c); }).find("one-cycle"), std::string::npos);
  c = tiny_config();
  c.warmup_epochs = 1.96;  // 19.6 of the 20 steps: rounds to all of them
  EXPECT_NE(error_of([&] { Trainer t(c, small_data(), ctx, out); })
                .find("warm-up (0 steps + 1.96 epochs = 20 steps of 10 an epoch) must be shorter than the 20 training steps"),
            std::string::npos);
}

// validate(TrainerConfig) on its own (cifar10_train calls it before building anything) holds each
// documented range at its edge: label smoothing in [0, 1), a finite gradient-norm bound, and a
// non-negative number of skips in a row.
TEST(Trainer, ValidateRefusesEachRangeJustOutsideIt) {
  TrainerConfig c = tiny_config();
  c.label_smoothing = 1.f;
  EXPECT_NE(error_of([&] { validate(c); }).find("label smoothing"), std::string::npos);
  c.label_smoothing = 0.f;
  EXPECT_NO_THROW(validate(c));
  c = tiny_config();
  c.max_grad_norm = std::numeric_limits<float>::infinity();
  EXPECT_NE(error_of([&] { validate(c); }).find("max gradient norm"), std::string::npos);
  c.max_grad_norm = 0.f;  // 0: no clipping
  EXPECT_NO_THROW(validate(c));
  c = tiny_config();
  c.max_skips_in_a_row = -1;
  EXPECT_NE(error_of([&] { validate(c); }).find("max skips in a row"), std::string::npos);
  c.max_skips_in_a_row = 0;
  EXPECT_NO_THROW(validate(c));
}

// checkpoint_every = k writes the checkpoint after every global step that is a multiple of k (and
// after each epoch, as always): with 10 steps an epoch and k = 3, the file on disk holds steps 3,
// 6, 9, 10 (the epoch's end), 12, 15, 18 and finally 20. stop_requested (asked before every step) reads the file.
TEST(Trainer, CheckpointEveryWritesAfterEachKthStep) {
  kestrel::testing::TempDir dir("trainer_ck_every");
  TrainerConfig c = tiny_config();
  c.evaluate = false;
  c.checkpoint_path = dir / "ck.safetensors";
  c.checkpoint_every = 3;
  std::vector<std::string> seen;
  c.stop_requested = [&] {
    if (std::filesystem::exists(c.checkpoint_path)) {
      const std::string s = read_safetensors(c.checkpoint_path).metadata.at("step");
      if (seen.empty() || seen.back() != s) seen.push_back(s);
    }
    return false;
  };
  Context ctx;
  std::ostringstream out;
  Trainer t(c, small_data(), ctx, out);
  ASSERT_EQ(t.steps_per_epoch(), 10);
  ASSERT_TRUE(t.train().finished);
  seen.push_back(read_safetensors(c.checkpoint_path).metadata.at("step"));
  EXPECT_EQ(seen, (std::vector<std::string>{"3", "6", "9", "10", "12", "15", "18", "20"}));
}

// Each step runs at the schedule's rate of its global step (not of its step within the epoch):
// the tiny run's step schedule (20 steps, milestones 0.5 and 0.75, gamma 0.1, as PyTorch's
// MultiStepLR) gives 0.05 for steps 0..9, 0.005 for 10..14 and 0.0005 for 15..19. The rate the
// store holds after step k is the one step k ran at.
TEST(Trainer, EachStepRunsAtTheRateOfItsGlobalStep) {
  TrainerConfig c = tiny_config();
  c.evaluate = false;
  Context ctx;
  std::ostringstream out;
  Trainer t(c, small_data(), ctx, out);
  ASSERT_EQ(t.config().schedule.total_steps, 20);
  for (std::int64_t k = 0; k < 20; ++k) {
    t.set_max_steps(k + 1);
    t.train();
    ASSERT_EQ(t.global_step(), k + 1);
    const double want = k < 10 ? 0.05 : k < 15 ? 0.005 : 0.0005;
    EXPECT_NEAR(t.store().read_counters().learning_rate, want, want * 1e-6) << "step " << k;
  }
}

// TrainerConfig::schedule.warmup_steps is honoured, and warmup_epochs adds to it (validate() once
// refused any warmup_steps, checking them against a total it does not know yet).
TEST(Trainer, ScheduleWarmupStepsAndEpochsAdd) {
  Context ctx;
  std::ostringstream out;
  TrainerConfig c = tiny_config();
  c.schedule.kind = LrSchedule::Kind::kConstant;
  c.schedule.warmup_steps = 5;
  validate(c);
  Trainer t(c, small_data(), ctx, out);
  EXPECT_EQ(t.config().schedule.total_steps, 20);
  EXPECT_EQ(t.config().schedule.warmup_steps, 5);
  EXPECT_FLOAT_EQ(learning_rate_at(t.config().schedule, 0), c.schedule.base / 10.f);
  EXPECT_FLOAT_EQ(learning_rate_at(t.config().schedule, 5), c.schedule.base);
  c.warmup_epochs = 1.0;
  Trainer both(c, small_data(), ctx, out);
  EXPECT_EQ(both.config().schedule.warmup_steps, 15);
}

// warmup_steps near INT64_MAX: validate() added 1 to it, the constructor the warm-up epochs' steps,
// both overflowing int64 (undefined behaviour; seen with -fsanitize=signed-integer-overflow).
TEST(Trainer, WarmupStepsNearInt64MaxAreRefusedWithoutOverflow) {
  TrainerConfig c = tiny_config();
  c.schedule.kind = LrSchedule::Kind::kConstant;
  c.schedule.warmup_steps = std::numeric_limits<std::int64_t>::max();
  EXPECT_NE(error_of([&] { validate(c); }).find("warm-up steps"), std::string::npos);
  c.schedule.warmup_steps = std::numeric_limits<std::int64_t>::max() - 1;
  c.warmup_epochs = 1.0;
  validate(c);  // the total is not known yet: this passes
  Context ctx;
  std::ostringstream out;
  const std::string e = error_of([&] { Trainer t(c, small_data(), ctx, out); });
  EXPECT_NE(e.find("must be shorter than"), std::string::npos) << e;
}

// Issue 4: ResNet-20 trains (its loss falls) on the CPU backend. Eight synthetic images, one
// batch an epoch, the same images every step (crops change).
TEST(Trainer, ResNet20LossFallsOnTheCpu) {
  TrainerConfig c;
  c.batch = 8;
  c.epochs = 8;
  c.evaluate = false;
  c.random_flip = false;
  c.schedule.kind = LrSchedule::Kind::kConstant;
  c.schedule.base = 0.05f;
  const CifarDataset data = synthetic_cifar10(8, 0, 3);
  Context ctx;
  std::ostringstream out;
  Trainer t(c, data, ctx, out);
  const TrainResult r = t.train();
  ASSERT_EQ(r.losses.size(), 8u);
  std::printf("ResNet-20 on 8 images: loss %.3f -> %.3f\n", r.losses.front(), r.losses.back());
  EXPECT_LT(r.losses.back(), 0.6f * r.losses.front());
}
