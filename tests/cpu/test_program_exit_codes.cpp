// Every program: an unknown flag or an invalid value prints the usage and exits 2; --help
// exits 0 (cifar10_train has its own, fuller test in test_train_program.cpp).
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <string>

#include "program_paths.h"

namespace {
struct Result {
  int code;
  std::string output;
};

Result run(const std::string& program, const std::string& args) {
  const std::string cmd = std::string(KESTREL_PROGRAM_DIR) + "/" + program + " " + args + " 2>&1";
  Result r{-1, {}};
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return r;
  char buf[512];
  while (std::fgets(buf, sizeof buf, p) != nullptr) r.output += buf;
  const int status = pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}
}  // namespace

TEST(ProgramExitCodes, UnknownFlagsAndBadValuesExit2WithTheUsage) {
  KESTREL_REQUIRE_PROGRAMS_OR_SKIP();
  const char* programs[] = {"bench_kernels", "bench_resnet", "seed_dropout", "seed_degradation",
                            "seed_gradient_flow", "kestrel_info", "cifar10_train", "custom_training_loop"};
  for (const char* p : programs) {
    const Result bad = run(p, "--no-such-flag");
    EXPECT_EQ(bad.code, 2) << p << ":\n" << bad.output;
    EXPECT_NE(bad.output.find("--help"), std::string::npos) << p << " should point at --help:\n" << bad.output;
    const Result help = run(p, "--help");
    EXPECT_EQ(help.code, 0) << p;
    EXPECT_NE(help.output.find("Usage"), std::string::npos) << p << ":\n" << help.output;
  }
  for (const char* p : {"seed_dropout", "seed_degradation", "seed_gradient_flow"}) {
    const Result bad = run(p, "--seed notanumber");
    EXPECT_EQ(bad.code, 2) << p << ":\n" << bad.output;
  }
  // The training-length option takes a positive count.
  EXPECT_EQ(run("seed_dropout", "--epochs 0").code, 2);
  EXPECT_EQ(run("seed_degradation", "--steps -3").code, 2);
  EXPECT_EQ(run("seed_gradient_flow", "--steps many").code, 2);
  EXPECT_EQ(run("bench_kernels", "--runs 0").code, 2);
  EXPECT_EQ(run("custom_training_loop", "--steps 0").code, 2);
  EXPECT_EQ(run("custom_training_loop", "--dtype fp64").code, 2);
  EXPECT_EQ(run("custom_training_loop", "--device tpu").code, 2);
}

TEST(ProgramExitCodes, BenchResnetPlansMemoryWithoutAGpu) {
  KESTREL_REQUIRE_PROGRAMS_OR_SKIP();
  // --plan-only compiles each row on the CPU: it needs no device. By default the quick rows
  // (ResNet-20 b512) report the ten rebuilt BN+ReLU outputs (stem + nine blocks); with
  // --recompute-bn off none, and the configs say "keep".
  const Result r = run("bench_resnet", "--plan-only --quick");
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("resnet20 b512 fp32 nchw "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(" 10\n"), std::string::npos) << r.output;
  const Result keep = run("bench_resnet", "--plan-only --quick --recompute-bn off");
  EXPECT_EQ(keep.code, 0) << keep.output;
  EXPECT_NE(keep.output.find("resnet20 b512 fp32 nchw keep"), std::string::npos) << keep.output;
  EXPECT_EQ(keep.output.find(" 10\n"), std::string::npos) << keep.output;
}

