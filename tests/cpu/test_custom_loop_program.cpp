// The custom_training_loop example (python_free_examples/custom_training_loop.cpp, the program
// docs/LIBRARY.md walks through): a short run learns the synthetic data well above chance, its
// checkpoint is a safetensors file with the network's scoped parameter names, and the program's
// own check that a fresh store loaded from it predicts the same logits passes. --device auto:
// the CPU here, the GPU (CUDA Graph replay, host-fed inputs) on a GPU machine.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "temp_dir.h"
#include "kestrel/core/device.h"
#include "kestrel/layers/safetensors.h"
#include "program_paths.h"

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
    const kestrel::testing::ProgramRun r = kestrel::testing::run_built_program(
        "custom_training_loop", "--device auto --steps 60 --batch 16 " + variant + " --checkpoint " + ckpt);
    const std::string& out = r.output;
    ASSERT_EQ(r.code, 0) << out;
    EXPECT_NE(out.find("reloaded into a fresh store: the same logits"), std::string::npos) << out;
    EXPECT_NE(out.find("a wrongly shaped input is reported: bind_input('images')"), std::string::npos) << out;
    const std::size_t at = out.find("test accuracy ");
    ASSERT_NE(at, std::string::npos) << out;
    const double accuracy = std::strtod(out.c_str() + at + 14, nullptr);
    EXPECT_GT(accuracy, 40.0) << "chance is 10%:\n" << out;  // 60 steps of 16 images: about 70% on the CPU

    const kestrel::SafetensorsFile f = kestrel::read_safetensors(ckpt);
    for (const char* name : {"stem.conv.weight", "block1.conv1.weight", "block2.bn2.running_var", "fc.bias",
                             "optimizer.sgd.momentum_buffer.fc.weight"})
      EXPECT_TRUE(f.tensors.count(name) == 1) << "missing " << name;
    EXPECT_EQ(f.metadata.at("example"), "custom_training_loop");
  }
}
