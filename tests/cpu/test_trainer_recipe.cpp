// The trainer's recipe: each epoch reads the training set in its own shuffled order (trainer.h:
// epoch_permutation of shuffle_seed(seed) and the epoch), the configuration's inclusive bounds,
// and a resumed run that must repeat the recipe its checkpoint records.
#include <gtest/gtest.h>

#include <cstdint>
#include <iterator>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "error_text.h"
#include "tiny_trainer.h"
#include "kestrel/core/error.h"
#include "kestrel/kernels/cpu/augment.h"
#include "kestrel/layers/checkpoint.h"
#include "kestrel/layers/cifar10.h"
#include "kestrel/layers/trainer.h"
#include "kestrel/layers/trainer_recipe_internal.h"

using namespace kestrel;
using kestrel::testing::error_of;

// Each epoch reads the training images in its own order: the labels fed to step s of epoch e
// are those of images epoch_permutation(n, shuffle_seed(seed), e)[s * batch + i] (trainer.h).
TEST(TrainerEpochs, ShuffleEveryEpochAnew) {
  TrainerConfig c = kestrel::testing::tiny_trainer_config(2, 16, 4);
  c.evaluate = false;
  c.seed = 3;
  const CifarDataset data = synthetic_cifar10(64, 0, 5);  // 4 steps of 16 an epoch
  Context ctx;
  std::ostringstream out;
  Trainer t(c, data, ctx, out);
  ASSERT_EQ(t.steps_per_epoch(), 4);
  std::vector<std::vector<int>> fed;
  for (std::int64_t global : {1, 5}) {  // step 0 of epoch 0, step 0 of epoch 1
    t.set_max_steps(global);
    t.train();
    const Tensor labels = t.train_executor().input("labels");
    const std::int32_t* l = labels.data_as<std::int32_t>();
    fed.emplace_back(l, l + 16);
    const std::int64_t epoch = (global - 1) / 4, s = (global - 1) % 4;
    const std::vector<std::int32_t> perm = epoch_permutation(64, shuffle_seed(c.seed), epoch);
    for (int i = 0; i < 16; ++i)
      EXPECT_EQ(l[i], data.train.labels[static_cast<std::size_t>(perm[static_cast<std::size_t>(s * 16 + i)])])
          << "epoch " << epoch << " image " << i;
  }
  EXPECT_NE(fed[0], fed[1]) << "epoch 1 started with epoch 0's batch";
}

// Each step's crops and flips draw from Philox (augment_seed(seed), offset = the global step)
// (trainer.h), so epoch 1 does not repeat epoch 0's draws: the images fed at step 0 of epoch 1 are
// the CPU augmentation of that epoch's first images with offset 4 (4 steps an epoch), with the
// configuration's crop, flip and padding.
TEST(TrainerEpochs, AugmentationDrawsFromTheGlobalStep) {
  for (const bool crop : {true, false}) {
    SCOPED_TRACE(crop ? "crop and flip" : "flip only");
    TrainerConfig c = kestrel::testing::tiny_trainer_config(2, 16, 4);
    c.evaluate = false;
    c.seed = 11;
    c.random_crop = crop;
    c.random_flip = true;
    c.pad = 3;
    const CifarDataset data = synthetic_cifar10(64, 0, 5);  // 4 steps of 16 an epoch
    Context ctx;
    std::ostringstream out;
    Trainer t(c, data, ctx, out);
    ASSERT_EQ(t.steps_per_epoch(), 4);
    t.set_max_steps(5);  // through step 0 of epoch 1
    t.train();
    const std::vector<float> fed = t.train_executor().input("images").to_float_vector();
    AugmentParams p;
    p.pad = 3;
    p.random_crop = crop;
    p.random_flip = true;
    for (int ch = 0; ch < 3; ++ch) p.mean[ch] = kCifarMean[ch], p.std[ch] = kCifarStd[ch];
    p.seed = augment_seed(c.seed);
    p.offset = 4;
    const std::vector<std::int32_t> perm = epoch_permutation(64, shuffle_seed(c.seed), 1);
    std::vector<float> want(16 * 3 * 32 * 32);
    std::vector<std::int32_t> labels(16);
    cpu::augment_batch(data.train.images.data(), 64, data.train.labels.data(), perm.data(), 16, want.data(),
                       DType::kFloat32, Layout::kNCHW, labels.data(), p);
    EXPECT_EQ(fed, want);
  }
}

// decay_bn_and_bias = false exempts every 1-D parameter (BN weights and biases, the fc bias) from
// weight decay; true (the default) decays them all. Counted on the store's per-element mask. (The
// training set is exactly one batch, which is enough: one step an epoch.)
TEST(TrainerRecipe, DecayBnAndBiasChoosesWhichParametersDecay) {
  const CifarDataset data = synthetic_cifar10(16, 0, 5);
  for (const bool decay_1d : {true, false}) {
    SCOPED_TRACE(decay_1d ? "decay_bn_and_bias" : "no decay on 1-D parameters");
    TrainerConfig c = kestrel::testing::tiny_trainer_config(2, 16, 4);
    c.decay_bn_and_bias = decay_1d;
    Context ctx;
    std::ostringstream out;
    Trainer t(c, data, ctx, out);
    EXPECT_EQ(t.steps_per_epoch(), 1);
    const ParameterStore& store = t.store();
    std::int64_t multi_d = 0, one_d = 0;
    for (std::size_t i = 0; i < store.count(); ++i) {
      if (!store.trainable(i)) continue;
      (store.value(i).shape().rank() == 1 ? one_d : multi_d) += store.value(i).numel();
    }
    ASSERT_GT(one_d, 0);
    const std::vector<float> mask = store.decay_mask().to_float_vector();
    ASSERT_GE(static_cast<std::int64_t>(mask.size()), multi_d + one_d);  // parameters are aligned: padding between
    std::int64_t decayed = 0;
    for (float m : mask) decayed += m != 0.f;
    EXPECT_EQ(decayed, decay_1d ? multi_d + one_d : multi_d);
  }
}

// The crop padding is in 0..16 (validate(TrainerConfig)).
TEST(TrainerEpochs, AcceptTheLargestCropPadding) {
  TrainerConfig c = kestrel::testing::tiny_trainer_config(2, 16, 4);
  c.pad = 16;
  EXPECT_NO_THROW(validate(c));
  c.pad = 17;
  EXPECT_THROW(validate(c), Error);
}

// The evaluation batch is at most the test set's size: an --eval-batch of 65536 evaluated 1,000
// images as one batch of 65,536 (88 s on a CPU). The accuracy is the same as with a small batch.
TEST(TrainerRecipe, TheEvaluationBatchIsAtMostTheTestSet) {
  TrainerConfig c = kestrel::testing::tiny_trainer_config(4, 16, 4);
  const CifarDataset data = synthetic_cifar10(32, 24, 5);
  Context ctx;
  std::ostringstream out;
  c.eval_batch = 65536;
  Trainer big(c, data, ctx, out);
  EXPECT_EQ(big.eval_executor().input("images").shape()[0], 24);
  c.eval_batch = 5;  // 5 batches, the last one partial
  Trainer small(c, data, ctx, out);
  EXPECT_EQ(small.eval_executor().input("images").shape()[0], 5);
  EXPECT_EQ(big.evaluate(), small.evaluate());
}

// The recipe a checkpoint records holds every setting of the run's optimizer and schedule kind:
// AdamW's betas and eps, the cosine's floor, the one-cycle's pct_start and both divisors, so a
// resume that changes any of them is refused.
TEST(TrainerRecipe, RecordsEverySettingOfTheOptimizerAndSchedule) {
  const CifarDataset data = synthetic_cifar10(16, 0, 5);
  Context ctx;
  std::ostringstream out;
  TrainerConfig c = kestrel::testing::tiny_trainer_config(2, 16, 4);
  c.optimizer = OptimizerKind::kAdamW;
  c.adamw.beta1 = 0.8f;
  c.adamw.beta2 = 0.99f;
  c.adamw.eps = 0.001f;
  c.schedule.kind = LrSchedule::Kind::kCosine;
  c.schedule.min_fraction = 0.1f;
  std::map<std::string, std::string> m = Trainer(c, data, ctx, out).checkpoint_metadata();
  EXPECT_EQ(m["recipe.optimizer"], "adamw");
  EXPECT_EQ(m["recipe.beta1"], "0.8");
  EXPECT_EQ(m["recipe.beta2"], "0.99");
  EXPECT_EQ(m["recipe.eps"], "0.001");
  EXPECT_EQ(m["recipe.min_fraction"], "0.1");
  c.schedule.kind = LrSchedule::Kind::kOneCycle;
  c.schedule.pct_start = 0.25f;
  c.schedule.div_factor = 10.f;
  c.schedule.final_div_factor = 100.f;
  m = Trainer(c, data, ctx, out).checkpoint_metadata();
  EXPECT_EQ(m["recipe.schedule"], "onecycle");
  EXPECT_EQ(m["recipe.pct_start"], "0.25");
  EXPECT_EQ(m["recipe.div_factor"], "10");
  EXPECT_EQ(m["recipe.final_div_factor"], "100");
}

// The recipe a checkpoint records, key by key and in order, as exact text: every key of an SGD
// run with a step schedule and every other setting off its default, then what AdamW, one-cycle,
// cosine and constant schedules record in place of theirs. A key dropped would let a resume
// change that setting unnoticed; a value written otherwise would refuse every earlier checkpoint.
TEST(TrainerRecipe, RecordsEachSettingUnderItsKeyAsExactText) {
  using trainer_detail::Recipe;
  using trainer_detail::training_recipe;
  TrainerConfig c;
  c.dtype = DType::kBFloat16;
  c.layout = Layout::kNHWC;
  c.epochs = 7;
  c.sgd.nesterov = true;
  c.decay_bn_and_bias = false;
  c.schedule.base = 0.2f;
  c.schedule.warmup_steps = 3;
  c.schedule.warmup_div = 5.f;
  c.schedule.milestones = {0.5, 0.875};
  c.schedule.gamma = 0.2f;
  c.label_smoothing = 0.1f;
  c.max_grad_norm = 2.5f;
  c.net.dropout = 0.3f;
  c.random_crop = false;
  c.pad = 2;
  c.nonfinite = NonFinitePolicy::kSkip;
  c.fuse = false;
  const Recipe head = {{"dtype", "bf16"}, {"layout", "nhwc"}, {"epochs", "7"}};
  const Recipe sgd = {{"recipe.optimizer", "sgd"}, {"recipe.momentum", "0.9"}, {"recipe.dampening", "0"},
                      {"recipe.weight_decay", "0.0001"}, {"recipe.nesterov", "true"},
                      {"recipe.decay_bn_and_bias", "false"}};
  const Recipe tail = {{"recipe.label_smoothing", "0.1"}, {"recipe.max_grad_norm", "2.5"}, {"recipe.dropout", "0.3"},
                       {"recipe.random_crop", "false"}, {"recipe.random_flip", "true"}, {"recipe.pad", "2"},
                       {"recipe.nonfinite", "skip"}, {"recipe.fuse", "false"}};
  const auto joined = [](std::initializer_list<Recipe> parts) {
    Recipe r;
    for (const Recipe& p : parts) r.insert(r.end(), p.begin(), p.end());
    return r;
  };
  const Recipe step = {{"recipe.schedule", "step"}, {"recipe.lr", "0.2"}, {"recipe.warmup_steps", "3"},
                       {"recipe.warmup_div", "5"}, {"recipe.milestones", "0.5,0.875"}, {"recipe.gamma", "0.2"}};
  EXPECT_EQ(training_recipe(c), joined({head, sgd, step, tail}));

  c.optimizer = OptimizerKind::kAdamW;
  c.adamw = AdamWConfig{0.8f, 0.99f, 0.001f, 0.05f};
  c.decay_bn_and_bias = true;
  c.schedule.kind = LrSchedule::Kind::kOneCycle;
  c.schedule.warmup_steps = 0;
  c.schedule.pct_start = 0.25f;
  c.schedule.div_factor = 10.f;
  c.schedule.final_div_factor = 100.f;
  const Recipe adamw = {{"recipe.optimizer", "adamw"}, {"recipe.beta1", "0.8"}, {"recipe.beta2", "0.99"},
                        {"recipe.eps", "0.001"}, {"recipe.weight_decay", "0.05"}, {"recipe.decay_bn_and_bias", "true"}};
  const Recipe one_cycle = {{"recipe.schedule", "onecycle"}, {"recipe.lr", "0.2"}, {"recipe.warmup_steps", "0"},
                            {"recipe.warmup_div", "5"}, {"recipe.pct_start", "0.25"}, {"recipe.div_factor", "10"},
                            {"recipe.final_div_factor", "100"}};
  EXPECT_EQ(training_recipe(c), joined({head, adamw, one_cycle, tail}));
  c.schedule.kind = LrSchedule::Kind::kCosine;
  c.schedule.min_fraction = 0.125f;
  const Recipe cosine = {{"recipe.schedule", "cosine"}, {"recipe.lr", "0.2"}, {"recipe.warmup_steps", "0"},
                         {"recipe.warmup_div", "5"}, {"recipe.min_fraction", "0.125"}};
  EXPECT_EQ(training_recipe(c), joined({head, adamw, cosine, tail}));
  c.schedule.kind = LrSchedule::Kind::kConstant;
  const Recipe constant = {{"recipe.schedule", "constant"}, {"recipe.lr", "0.2"}, {"recipe.warmup_steps", "0"},
                           {"recipe.warmup_div", "5"}};
  EXPECT_EQ(training_recipe(c), joined({head, adamw, constant, tail}));
}

// The differences are exactly the recorded entries whose value differs, named without the
// "recipe." prefix, in the recipe's order; keys a checkpoint does not record are not differences.
// Whether it records a recipe at all is said by a key that starts with "recipe.", and said each
// call (false for a checkpoint without one, whatever the flag held).
TEST(TrainerRecipe, DifferencesAreTheRecordedValuesThatDiffer) {
  const trainer_detail::Recipe recipe = {{"epochs", "3"}, {"recipe.lr", "0.1"}, {"recipe.pad", "4"}, {"recipe.fuse", "true"}};
  const std::map<std::string, std::string> recorded = {
      {"epochs", "2"}, {"recipe.lr", "0.05"}, {"recipe.pad", "4"}, {"seed", "1"}};
  bool any = false;
  EXPECT_EQ(trainer_detail::recipe_differences(recorded, recipe, &any),
            (std::vector<std::string>{"epochs 2 (this run: 3)", "lr 0.05 (this run: 0.1)"}));
  EXPECT_TRUE(any);
  any = true;
  EXPECT_TRUE(trainer_detail::recipe_differences({{"epochs", "3"}, {"old.recipe.lr", "1"}}, recipe, &any).empty());
  EXPECT_FALSE(any) << "\"recipe.\" only counts at a key's start";
}

// A resumed run repeats its checkpoint's recipe: every option that would change the training
// (here dtype, epochs, learning rate, schedule, dropout, optimizer settings, augmentation) is
// refused, all differences named in one error, before anything is built; the same recipe
// resumes. A checkpoint without a recipe (an older Kestrel's) resumes with a note, and another
// seed is replaced by the checkpoint's with a note.
TEST(TrainerRecipe, AResumeWithAnotherRecipeIsRefusedNamingEveryDifference) {
  const TrainerConfig c = kestrel::testing::tiny_trainer_config(4, 16, 4);
  const CifarDataset data = synthetic_cifar10(64, 16, 5);
  Context ctx;
  std::ostringstream out;
  SafetensorsFile ck;
  {
    TrainerConfig first = c;
    first.max_steps = 1;
    Trainer t(first, data, ctx, out);
    t.train();
    ck = checkpoint_from_store(t.store(), t.checkpoint_metadata());
  }
  EXPECT_EQ(checkpoint_metadata(ck, "recipe.optimizer"), "sgd");
  EXPECT_EQ(checkpoint_metadata(ck, "recipe.lr"), "0.05");
  EXPECT_EQ(error_of([&] { Trainer u(c, data, ctx, out, &ck, "ck.st"); }), "(no error)") << "the same recipe";
  {  // this checkpoint records its recipe: no "records no training recipe" note on resuming
    std::ostringstream said;
    Trainer u(c, data, ctx, said, &ck, "ck.st");
    EXPECT_EQ(said.str().find("records no training recipe"), std::string::npos) << said.str();
  }

  TrainerConfig other = c;
  other.dtype = DType::kBFloat16;
  other.epochs = 3;
  other.schedule.base = 0.1f;
  other.schedule.kind = LrSchedule::Kind::kCosine;
  other.net.dropout = 0.25f;
  other.sgd.nesterov = true;
  other.pad = 2;
  const std::string e = error_of([&] { Trainer u(other, data, ctx, out, &ck, "ck.st"); });
  for (const char* want : {"ck.st was written by a run with another recipe: ", "dtype fp32 (this run: bf16)",
                           "epochs 2 (this run: 3)", "schedule step (this run: cosine)", "lr 0.05 (this run: 0.1)",
                           "dropout 0 (this run: 0.25)", "nesterov false (this run: true)", "pad 4 (this run: 2)",
                           "resume with the options that made it"})
    EXPECT_NE(e.find(want), std::string::npos) << want << " in: " << e;
  // A step schedule against a step schedule: its milestones are compared too.
  TrainerConfig milestones = c;
  milestones.schedule.milestones = {0.5, 0.9};
  const std::string m = error_of([&] { Trainer u(milestones, data, ctx, out, &ck); });
  EXPECT_NE(m.find("milestones 0.5,0.75 (this run: 0.5,0.9)"), std::string::npos) << m;

  // An older Kestrel's checkpoint records no recipe: it resumes, saying so.
  SafetensorsFile older = ck;
  for (auto it = older.metadata.begin(); it != older.metadata.end();)
    it = it->first.rfind("recipe.", 0) == 0 ? older.metadata.erase(it) : std::next(it);
  std::ostringstream said;
  TrainerConfig reseeded = c;
  reseeded.seed = c.seed + 7;
  EXPECT_EQ(error_of([&] { Trainer u(reseeded, data, ctx, said, &older, "old.st"); }), "(no error)");
  EXPECT_NE(said.str().find("note: old.st records no training recipe"), std::string::npos) << said.str();
  EXPECT_NE(said.str().find("note: continuing with old.st's seed " + std::to_string(c.seed) + " (this run was given " +
                            std::to_string(c.seed + 7)),
            std::string::npos)
      << said.str();
}
