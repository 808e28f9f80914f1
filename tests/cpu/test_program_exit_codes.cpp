// Every program: an unknown flag or an invalid value prints the usage and exits 2; --help
// exits 0 (cifar10_train has its own, fuller test in test_train_program.cpp).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "program_paths.h"
#include "temp_dir.h"

using kestrel::testing::ProgramRun;
using kestrel::testing::run_built_program;

TEST(ProgramExitCodes, UnknownFlagsAndBadValuesExit2WithTheUsage) {
  KESTREL_REQUIRE_PROGRAMS_OR_SKIP();
  const char* programs[] = {"bench_kernels", "bench_resnet", "seed_dropout", "seed_degradation",
                            "seed_gradient_flow", "kestrel_info", "cifar10_train", "custom_training_loop"};
  for (const char* p : programs) {
    const ProgramRun bad = run_built_program(p, "--no-such-flag");
    EXPECT_EQ(bad.code, 2) << p << ":\n" << bad.output;
    EXPECT_NE(bad.output.find("--help"), std::string::npos) << p << " should point at --help:\n" << bad.output;
    const ProgramRun help = run_built_program(p, "--help");
    EXPECT_EQ(help.code, 0) << p;
    EXPECT_NE(help.output.find("Usage"), std::string::npos) << p << ":\n" << help.output;
  }
  for (const char* p : {"seed_dropout", "seed_degradation", "seed_gradient_flow"}) {
    const ProgramRun bad = run_built_program(p, "--seed notanumber");
    EXPECT_EQ(bad.code, 2) << p << ":\n" << bad.output;
  }
  // The training-length option takes a positive count.
  EXPECT_EQ(run_built_program("seed_dropout", "--epochs 0").code, 2);
  EXPECT_EQ(run_built_program("seed_degradation", "--steps -3").code, 2);
  EXPECT_EQ(run_built_program("seed_gradient_flow", "--steps many").code, 2);
  EXPECT_EQ(run_built_program("bench_kernels", "--runs 0").code, 2);
  const ProgramRun maybe = run_built_program("bench_resnet", "--recompute-bn maybe");
  EXPECT_EQ(maybe.code, 2) << maybe.output;
  EXPECT_NE(maybe.output.find("must be on or off, got 'maybe'"), std::string::npos) << maybe.output;
  EXPECT_EQ(run_built_program("custom_training_loop", "--steps 0").code, 2);
  // ... saying what it wants (CLI11's own check printed a range with a 309-digit bound).
  for (const char* p : {"seed_degradation", "custom_training_loop"}) {
    const ProgramRun zero = run_built_program(p, "--steps 0");
    EXPECT_NE(zero.output.find("--steps: must be > 0, got 0"), std::string::npos) << p << ":\n" << zero.output;
    EXPECT_EQ(zero.output.find("17976931348623157"), std::string::npos) << zero.output;
  }
  EXPECT_EQ(run_built_program("custom_training_loop", "--dtype fp64").code, 2);
  EXPECT_EQ(run_built_program("custom_training_loop", "--device tpu").code, 2);
  // It always writes its checkpoint: an empty name is a usage error, not a failure after training.
  const ProgramRun no_name = run_built_program("custom_training_loop", "--checkpoint ''");
  EXPECT_EQ(no_name.code, 2) << no_name.output;
  EXPECT_NE(no_name.output.find("--checkpoint needs a file name"), std::string::npos) << no_name.output;
  // Values CLI11's checks let through once: a NaN or out-of-float-range learning rate (the check
  // compares doubles, the option is a float), a negative seed (wrapped to 2^64 - 1), a device
  // index beyond int (std::stoi threw std::out_of_range and cifar10_train aborted).
  for (const char* lr : {"nan", "1e39", "1e-50"}) {
    const ProgramRun r = run_built_program("custom_training_loop", std::string("--lr ") + lr);
    EXPECT_EQ(r.code, 2) << lr << ":\n" << r.output;
    EXPECT_NE(r.output.find("--lr must be a number in (0, 10]"), std::string::npos) << r.output;
  }
  // Seeds past 2^64 - 1 (CLI11 capped them at 2^64 - 1, silently) and ones not in digits.
  for (const char* p : {"cifar10_train", "custom_training_loop", "seed_dropout"}) {
    for (const char* seed : {"-1", "18446744073709551616", "99999999999999999999999", "1e3"}) {
      const ProgramRun r = run_built_program(p, std::string("--seed ") + seed);
      EXPECT_EQ(r.code, 2) << p << " --seed " << seed << ":\n" << r.output;
      EXPECT_NE(r.output.find("must be a whole number from 0 to 18446744073709551615"), std::string::npos)
          << p << " --seed " << seed << ":\n" << r.output;
    }
  }
  const ProgramRun device = run_built_program("cifar10_train", "--device cuda:99999999999");
  EXPECT_EQ(device.code, 2) << device.output;
  EXPECT_NE(device.output.find("--device must be auto, cpu, cuda or cuda:N"), std::string::npos) << device.output;
}

// A standard output that cannot be written (here /dev/full, every write ENOSPC) fails the program
// with exit 1 and a line on stderr; before, printf's errors went unseen and it exited 0 with its
// table, JSON lines or help lost.
TEST(ProgramExitCodes, AnUnwritableStandardOutputFailsTheProgram) {
  KESTREL_REQUIRE_PROGRAMS_OR_SKIP();
  if (!std::filesystem::exists("/dev/full")) GTEST_SKIP() << "no /dev/full on this machine";
  const char* programs[] = {"bench_kernels", "bench_resnet", "seed_dropout", "seed_degradation",
                            "seed_gradient_flow", "kestrel_info", "cifar10_train", "custom_training_loop"};
  for (const char* p : programs) {
    const ProgramRun help = run_built_program(p, "--help", "/dev/full");
    EXPECT_EQ(help.code, 1) << p << ":\n" << help.output;
    EXPECT_NE(help.output.find(std::string(p) + ": could not write standard output: No space left on device"),
              std::string::npos)
        << p << ":\n" << help.output;
  }
  // Past the help: kestrel_info's report, and a run that does its work (its files are written;
  // only what it printed is lost, and the status says so).
  EXPECT_EQ(run_built_program("kestrel_info", "", "/dev/full").code, 1);
  EXPECT_EQ(run_built_program("kestrel_info", "", "/dev/null").code, 0);
  kestrel::testing::TempDir dir("stdout_full");
  const ProgramRun quick = run_built_program(
      "seed_dropout", "--quick --device cpu --epochs 1 --out " + dir.path().string(), "/dev/full");
  EXPECT_EQ(quick.code, 1) << quick.output;
  EXPECT_TRUE(std::filesystem::exists(dir.path() / "dropout_accuracy.csv")) << quick.output;
}

// An output that cannot be written is an error (exit 1) before the work, not after it: a folder
// that does not exist or cannot hold files, or a folder where a file is wanted.
TEST(ProgramExitCodes, UnwritableOutputsFailBeforeTheWork) {
  KESTREL_REQUIRE_PROGRAMS_OR_SKIP();
  struct Case {
    const char* program;
    const char* args;
    const char* error;
  };
  const Case cases[] = {
      {"cifar10_train", "--checkpoint /nonexistent-kestrel/ck.safetensors", "--checkpoint /nonexistent-kestrel/ck.safetensors: folder /nonexistent-kestrel does not exist"},
      {"cifar10_train", "--log /proc/kestrel.jsonl", "--log /proc/kestrel.jsonl: cannot create files in folder /proc"},
      {"cifar10_train", "--checkpoint /tmp", "--checkpoint /tmp is a folder, not a file"},
      {"cifar10_train", "--checkpoint /etc/passwd/ck.safetensors", "--checkpoint /etc/passwd/ck.safetensors: /etc/passwd is not a folder"},
      {"custom_training_loop", "--checkpoint /nonexistent-kestrel/c.safetensors", "folder /nonexistent-kestrel does not exist"},
      {"seed_dropout", "--quick --out /proc/kestrel-seed", "--out /proc/kestrel-seed: cannot create the folder"},
      {"bench_kernels", "--quick --json /nonexistent-kestrel/b.jsonl", "--json /nonexistent-kestrel/b.jsonl: folder"},
  };
  for (const Case& c : cases) {
    const ProgramRun r = run_built_program(c.program, c.args);
    EXPECT_EQ(r.code, 1) << c.program << " " << c.args << ":\n" << r.output;
    EXPECT_NE(r.output.find(c.error), std::string::npos) << c.program << " " << c.args << ":\n" << r.output;
    EXPECT_EQ(r.output.find("epoch 1/"), std::string::npos) << "trained before failing:\n" << r.output;
  }
}

// A seed program given a bad --data fails before it clears the --out folder: an earlier run's
// charts (perhaps a GPU session's) survive a mistyped data path.
TEST(ProgramExitCodes, ABadDataFolderLeavesAnEarlierSeedReportAlone) {
  KESTREL_REQUIRE_PROGRAMS_OR_SKIP();
  const std::pair<const char*, const char*> programs[] = {{"seed_dropout", "dropout_accuracy.csv"},
                                                          {"seed_degradation", "degradation.csv"},
                                                          {"seed_gradient_flow", "gradient_flow_time.csv"}};
  for (const auto& [program, file] : programs) {
    kestrel::testing::TempDir dir(program);
    const std::filesystem::path earlier = dir.path() / file;
    std::ofstream(earlier) << "an earlier run's table\n";
    const std::string missing = (dir.path() / "no-such-data").string();
    const ProgramRun r = run_built_program(program, "--quick --device cpu --out " + dir.path().string() +
                                                        " --data " + missing);
    EXPECT_EQ(r.code, 1) << program << ":\n" << r.output;
    EXPECT_NE(r.output.find("no-such-data"), std::string::npos) << program << ":\n" << r.output;
    EXPECT_TRUE(std::filesystem::exists(earlier)) << program << " removed an earlier run's " << file;
    EXPECT_EQ(r.output.find("full mode is sized for a GPU"), std::string::npos) << program << ":\n" << r.output;
    // Full mode on the CPU says first that it is meant for a GPU (it fails here on the data).
    const ProgramRun full = run_built_program(program, "--device cpu --out " + dir.path().string() + " --data " + missing);
    EXPECT_EQ(full.code, 1) << program << ":\n" << full.output;
    EXPECT_NE(full.output.find("note: full mode is sized for a GPU"), std::string::npos) << program << ":\n"
                                                                                        << full.output;
  }
}

TEST(ProgramExitCodes, BenchResnetPlansMemoryWithoutAGpu) {
  KESTREL_REQUIRE_PROGRAMS_OR_SKIP();
  // --plan-only compiles each row on the CPU: it needs no device. By default the quick rows
  // (ResNet-20 b512) report the ten rebuilt BN+ReLU outputs (stem + nine blocks); with
  // --recompute-bn off none, and the configs say "keep".
  const ProgramRun r = run_built_program("bench_resnet", "--plan-only --quick");
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("resnet20 b512 fp32 nchw "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(" 10\n"), std::string::npos) << r.output;
  const ProgramRun keep = run_built_program("bench_resnet", "--plan-only --quick --recompute-bn off");
  EXPECT_EQ(keep.code, 0) << keep.output;
  EXPECT_NE(keep.output.find("resnet20 b512 fp32 nchw keep"), std::string::npos) << keep.output;
  EXPECT_EQ(keep.output.find(" 10\n"), std::string::npos) << keep.output;
}


// The edges of each checked option: the last value accepted and the first refused (exit 2, usage
// error: the message names the option, then the usage or CLI11's pointer to --help follows). An
// accepted value must not start the work, so each is given with an output the program checks
// right after its options and cannot write (exit 1, with that output's message): the exit status
// then tells a refused option (2) from an accepted one (1).
TEST(ProgramExitCodes, OptionRangesRefuseAndAcceptTheirEdges) {
  KESTREL_REQUIRE_PROGRAMS_OR_SKIP();
  struct Case {
    const char* program;
    std::string args;
    int code;
  };
  const std::string seed_out = " --device cpu --out /proc/kestrel-seed";  // "cannot create the folder"
  const std::string bench_out = " --json /nonexistent-kestrel/b.jsonl";   // "folder ... does not exist"
  const std::string ckpt_out = " --device cpu --checkpoint /nonexistent-kestrel/c.safetensors";
  std::vector<Case> cases;
  // --device: a name that is no device, or an index past int, is a usage error in every program
  // that takes one.
  for (const char* p : {"seed_dropout", "seed_degradation", "seed_gradient_flow", "custom_training_loop"})
    for (const char* dev : {"tpu", "cuda:99999999999", "cuda:-1", "gpu0"})
      cases.push_back({p, std::string("--device ") + dev, 2});
  for (const char* dev : {"tpu", "gpu0"}) cases.push_back({"cifar10_train", std::string("--device ") + dev, 2});
  // seed_degradation's --dtype fp32|bf16 and --layout nchw|nhwc.
  for (const char* bad : {"--dtype fp16", "--dtype fp64", "--dtype ''", "--layout nchwc", "--layout NHWC"})
    cases.push_back({"seed_degradation", std::string(bad) + seed_out, 2});
  for (const char* good : {"--dtype fp32 --layout nchw", "--dtype bf16 --layout nhwc"})
    cases.push_back({"seed_degradation", std::string(good) + seed_out, 1});
  // The seed programs' training length: > 0.
  cases.push_back({"seed_degradation", "--steps 0" + seed_out, 2});
  cases.push_back({"seed_degradation", "--steps 1" + seed_out, 1});
  cases.push_back({"seed_dropout", "--epochs 1" + seed_out, 1});
  cases.push_back({"seed_gradient_flow", "--steps 1" + seed_out, 1});
  // The benchmarks' --workspace-mb in [1, 65536] and --runs in [1, 100000].
  for (const char* p : {"bench_kernels", "bench_resnet"}) {
    for (const char* bad : {"--workspace-mb 0", "--workspace-mb 65537", "--workspace-mb -1", "--runs 0",
                            "--runs 100001"})
      cases.push_back({p, bad + bench_out, 2});
    for (const char* good : {"--workspace-mb 1", "--workspace-mb 65536", "--runs 1", "--runs 100000"})
      cases.push_back({p, good + bench_out, 1});
  }
  // custom_training_loop: --batch in [1, 4096], --lr in (0, 10], --steps > 0.
  for (const char* bad : {"--batch 0", "--batch 4097", "--lr 0", "--lr -1", "--lr 10.001", "--steps 0"})
    cases.push_back({"custom_training_loop", bad + ckpt_out, 2});
  for (const char* good : {"--batch 1", "--batch 4096", "--lr 10", "--lr 1e-30", "--steps 1"})
    cases.push_back({"custom_training_loop", good + ckpt_out, 1});

  for (const Case& c : cases) {
    const ProgramRun r = run_built_program(c.program, c.args);
    EXPECT_EQ(r.code, c.code) << c.program << " " << c.args << ":\n" << r.output;
    if (c.code == 2) {  // the refusal names the option
      const std::string flag = c.args.substr(0, c.args.find(' '));
      EXPECT_NE(r.output.find(flag), std::string::npos) << c.program << " " << c.args << ":\n" << r.output;
      EXPECT_TRUE(r.output.find("Usage") != std::string::npos || r.output.find("Run with --help") != std::string::npos)
          << c.program << " " << c.args << ":\n" << r.output;
    } else {  // got past its options, to the output check
      EXPECT_TRUE(r.output.find("cannot create the folder") != std::string::npos ||
                  r.output.find("does not exist") != std::string::npos)
          << c.program << " " << c.args << ":\n" << r.output;
    }
  }
}
