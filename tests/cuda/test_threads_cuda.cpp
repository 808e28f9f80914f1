// Threads on CUDA: two contexts on one device, each driven by its own thread (its own stream,
// caching allocator, cuDNN/cuBLAS handles and convolution plans; the per-device launch caches are
// shared), train side by side and give, bit for bit, what each gives alone: losses, weights and
// checkpoint bytes. Deterministic convolution engines (bit-identical results need them), CUDA
// Graph replay on (the trainer's default).
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "device_copy.h"
#include "temp_dir.h"
#include "test_support.h"
#include "tiny_trainer.h"
#include "kestrel/layers/checkpoint.h"
#include "kestrel/layers/trainer.h"

using namespace kestrel;

namespace {

struct CudaThreadRun {
  std::vector<float> losses, params;
  std::vector<std::uint8_t> checkpoint;
  bool used_cuda_graph = false;
  std::string error;  // an exception's text (threads may not throw into gtest)
};

CudaThreadRun train_on_own_context(std::uint64_t seed, const CifarDataset& data, const std::string& path) {
  CudaThreadRun r;
  try {
    Context ctx(Device::cuda(0));
    ConvPolicy p;
    p.deterministic = true;
    ctx.set_conv_policy(p);
    TrainerConfig c = kestrel::testing::tiny_trainer_config(8, 32, 3);
    c.seed = seed;
    c.net.dropout = 0.1f;
    c.random_flip = true;
    std::ostringstream out;
    Trainer t(c, data, ctx, out);
    r.losses = t.train().losses;
    r.used_cuda_graph = t.train_executor().uses_cuda_graph();
    r.params = kestrel::testing::host_floats(t.store().flat_params(), ctx);
    save_checkpoint(t.store(), path, t.checkpoint_metadata());
    r.checkpoint = kestrel::testing::read_bytes(path);
  } catch (const std::exception& e) {
    r.error = e.what();
  }
  return r;
}

void expect_same_run(const CudaThreadRun& alone, const CudaThreadRun& beside, const char* which) {
  ASSERT_TRUE(alone.error.empty()) << which << " alone: " << alone.error;
  ASSERT_TRUE(beside.error.empty()) << which << " beside another thread: " << beside.error;
  ASSERT_EQ(alone.losses.size(), 20u) << which;
  EXPECT_TRUE(alone.used_cuda_graph && beside.used_cuda_graph) << which;
  EXPECT_TRUE(kestrel::testing::bit_equal(alone.losses, beside.losses)) << which << ": losses";
  EXPECT_TRUE(kestrel::testing::bit_equal(alone.params, beside.params)) << which << ": weights";
  EXPECT_TRUE(alone.checkpoint == beside.checkpoint) << which << ": checkpoint bytes differ";
}

}  // namespace

TEST(ThreadsCuda, TwoContextsOnTwoThreadsGiveWhatEachGivesAlone) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  const CifarDataset data = synthetic_cifar10(320, 100, 2);  // 10 steps of 32 an epoch, 2 epochs
  kestrel::testing::TempDir dir("threads_cuda");
  const CudaThreadRun a_alone = train_on_own_context(5, data, dir / "a_alone.safetensors");
  const CudaThreadRun b_alone = train_on_own_context(6, data, dir / "b_alone.safetensors");
  ASSERT_TRUE(a_alone.error.empty()) << a_alone.error;
  ASSERT_TRUE(b_alone.error.empty()) << b_alone.error;
  ASSERT_NE(a_alone.losses, b_alone.losses) << "the two seeds must give two different runs";

  CudaThreadRun a_beside, b_beside;
  std::thread ta([&] { a_beside = train_on_own_context(5, data, dir / "a_beside.safetensors"); });
  std::thread tb([&] { b_beside = train_on_own_context(6, data, dir / "b_beside.safetensors"); });
  ta.join();
  tb.join();
  expect_same_run(a_alone, a_beside, "seed 5");
  expect_same_run(b_alone, b_beside, "seed 6");
}
