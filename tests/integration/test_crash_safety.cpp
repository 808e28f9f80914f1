// Crash safety: cifar10_train (CPU backend) is killed with SIGKILL at random moments while it
// writes a checkpoint every step; after every kill the newest checkpoint on disk must be a
// complete, loadable file whose position never goes backwards, and the run must resume from it.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "kestrel/layers/checkpoint.h"
#include "kestrel/layers/safetensors.h"
#include "program_paths.h"
#include "temp_dir.h"

namespace fs = std::filesystem;

namespace {
// Starts cifar10_train with `args`, output to `log`; returns the child's pid.
pid_t start(const std::vector<std::string>& args, const std::string& log) {
  const pid_t pid = fork();
  if (pid == 0) {
    FILE* f = std::freopen(log.c_str(), "a", stdout);
    (void)f;
    dup2(fileno(stdout), fileno(stderr));
    std::vector<char*> argv;
    std::string program = KESTREL_CIFAR10_TRAIN;
    argv.push_back(program.data());
    std::vector<std::string> copy = args;
    for (std::string& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(program.c_str(), argv.data());
    _exit(127);
  }
  return pid;
}

int wait_status(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return status;
}

std::int64_t checkpoint_step(const std::string& path) {
  const kestrel::SafetensorsFile f = kestrel::read_safetensors(path);  // raises if torn or corrupt
  return static_cast<std::int64_t>(kestrel::checkpoint_metadata_u64(f, "step", path));
}
}  // namespace

TEST(CrashSafety, NewestCheckpointAlwaysLoadsAndResumesAfterSigkill) {
  KESTREL_REQUIRE_PROGRAMS_OR_SKIP();
  const kestrel::testing::TempDir dir("crash");  // removed also when an assertion ends the test
  const std::string ck = dir / "run.safetensors";
  const std::string log = dir / "train.log";
  const std::vector<std::string> base = {
      "--device", "cpu", "--data", "synthetic", "--model", "resnet8", "--width", "4", "--train-images", "512",
      "--test-images", "64", "--batch", "16", "--epochs", "40", "--log-every", "1000", "--seed", "3",
      "--checkpoint", ck, "--checkpoint-every", "1"};
  std::mt19937 rng(2026);
  std::int64_t last_step = -1;
  int kills_with_file = 0;
  for (int round = 0; round < 8; ++round) {
    std::vector<std::string> args = base;
    if (fs::exists(ck)) {
      args.push_back("--resume");
      args.push_back(ck);
    }
    const pid_t pid = start(args, log);
    ASSERT_GT(pid, 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(400 + rng() % 900));
    kill(pid, SIGKILL);
    const int status = wait_status(pid);
    ASSERT_TRUE(WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) == 0))
        << "round " << round << ": the trainer failed on its own; see " << log;
    if (!fs::exists(ck)) continue;  // killed before its first checkpoint
    ++kills_with_file;
    std::int64_t step = -1;
    ASSERT_NO_THROW(step = checkpoint_step(ck)) << "round " << round << ": the checkpoint on disk is unreadable";
    EXPECT_GE(step, last_step) << "round " << round << ": the checkpoint went backwards";
    last_step = step;
  }
  ASSERT_GT(kills_with_file, 0) << "no round lived long enough to write a checkpoint; see " << log;
  // Resume from the newest checkpoint and finish a few more steps normally.
  std::vector<std::string> args = base;
  args.insert(args.end(), {"--resume", ck, "--max-steps", std::to_string(last_step + 3)});
  const int status = wait_status(start(args, log));
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "resume failed; see " << log;
  EXPECT_EQ(checkpoint_step(ck), last_step + 3);
}

