// Threads on CUDA: two contexts on one device, each driven by its own thread (its own stream,
// caching allocator, cuDNN/cuBLAS handles and convolution plans; the per-device launch caches are
// shared), train side by side and give, bit for bit, what each gives alone: losses, accuracies,
// weights and checkpoint bytes. Deterministic convolution engines (bit-identical results need
// them), CUDA Graph replay on (the trainer's default).
#include <gtest/gtest.h>

#include <string>

#include "side_by_side.h"
#include "tiny_trainer.h"

using namespace kestrel;

TEST(ThreadsCuda, TwoContextsOnTwoThreadsGiveWhatEachGivesAlone) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  const CifarDataset data = synthetic_cifar10(320, 100, 2);  // 10 steps of 32 an epoch, 2 epochs
  kestrel::testing::TempDir dir("threads_cuda");
  const auto runs = kestrel::testing::alone_then_side_by_side(
      5, 6, dir, [&](std::uint64_t seed, const std::string& path) {
        Context ctx(Device::cuda(0));
        ConvPolicy p;
        p.deterministic = true;
        ctx.set_conv_policy(p);
        TrainerConfig c = kestrel::testing::tiny_trainer_config(8, 32, 3);
        c.seed = seed;
        c.net.dropout = 0.1f;
        c.random_flip = true;
        return kestrel::testing::record_training(c, data, ctx, path);
      });
  kestrel::testing::expect_side_by_side_equals_alone(runs, 20);
  EXPECT_TRUE(runs.a_alone.used_cuda_graph && runs.b_alone.used_cuda_graph)
      << "steps replay a CUDA Graph by default";
}
