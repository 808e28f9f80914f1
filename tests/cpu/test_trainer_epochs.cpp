// The trainer's epochs: each reads the training set in its own shuffled order (trainer.h:
// epoch_permutation of shuffle_seed(seed) and the epoch), and the configuration's inclusive bounds.
#include <gtest/gtest.h>

#include <cstdint>
#include <sstream>
#include <vector>

#include "tiny_trainer.h"
#include "kestrel/core/error.h"
#include "kestrel/layers/cifar10.h"
#include "kestrel/layers/trainer.h"

using namespace kestrel;

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

// The crop padding is in 0..16 (validate(TrainerConfig)).
TEST(TrainerEpochs, AcceptTheLargestCropPadding) {
  TrainerConfig c = kestrel::testing::tiny_trainer_config(2, 16, 4);
  c.pad = 16;
  EXPECT_NO_THROW(validate(c));
  c.pad = 17;
  EXPECT_THROW(validate(c), Error);
}
