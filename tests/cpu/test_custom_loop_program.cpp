// The custom_training_loop example (python_free_examples/custom_training_loop.cpp, the program
// docs/LIBRARY.md walks through): a short run learns the synthetic data well above chance, its
// checkpoint is a safetensors file with the network's scoped parameter names, and the program's
// own check that a fresh store loaded from it predicts the same logits passes. --device auto:
// the CPU here, the GPU (CUDA Graph replay, host-fed inputs) on a GPU machine.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "temp_dir.h"
#include "kestrel/core/device.h"
#include "kestrel/layers/safetensors.h"
#include "program_paths.h"

namespace {
struct ExampleRun {
  int code = -1;
  std::string out;
};

ExampleRun run_example(const std::string& args) {
  ExampleRun r;
  const std::string cmd = std::string(KESTREL_PROGRAM_DIR) + "/custom_training_loop " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return r;
  char buf[512];
  while (std::fgets(buf, sizeof buf, p) != nullptr) r.out += buf;
  const int status = pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}
}  // namespace

TEST(CustomTrainingLoopProgram, LearnsSavesAndReloadsTheSameNetwork) {
  KESTREL_REQUIRE_PROGRAMS_OR_SKIP();
  kestrel::testing::TempDir dir("custom_loop");
  // fp32 NCHW everywhere; on a GPU machine also bf16 channels-last (host floats stored as bf16
  // NHWC by Tensor::from_vector, then the CUDA Graph). The CPU's bf16 path is covered by the
  // kernel and graph suites; a second CPU run would only add a quarter-minute here.
  std::vector<std::string> variants = {"--dtype fp32 --layout nchw"};
  if (kestrel::cuda_device_count() > 0) variants.push_back("--dtype bf16 --layout nhwc");
  for (const std::string& variant : variants) {
    SCOPED_TRACE(variant);
    const std::string ckpt = (dir.path() / "net.safetensors").string();
    const ExampleRun r = run_example("--device auto --steps 60 --batch 16 " + variant + " --checkpoint " + ckpt);
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("reloaded into a fresh store: the same logits"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("a wrongly shaped input is reported: bind_input('images')"), std::string::npos) << r.out;
    const std::size_t at = r.out.find("test accuracy ");
    ASSERT_NE(at, std::string::npos) << r.out;
    const double accuracy = std::strtod(r.out.c_str() + at + 14, nullptr);
    EXPECT_GT(accuracy, 40.0) << "chance is 10%:\n" << r.out;  // 60 steps of 16 images: about 70% on the CPU

    const kestrel::SafetensorsFile f = kestrel::read_safetensors(ckpt);
    for (const char* name : {"stem.conv.weight", "block1.conv1.weight", "block2.bn2.running_var", "fc.bias",
                             "optimizer.sgd.momentum_buffer.fc.weight"})
      EXPECT_TRUE(f.tensors.count(name) == 1) << "missing " << name;
    EXPECT_EQ(f.metadata.at("example"), "custom_training_loop");
  }
}
