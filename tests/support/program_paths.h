// Paths of the built programs, which tests/CMakeLists.txt defines for the suites that run them.
// Without the programs (KESTREL_BUILD_EXAMPLES=OFF) they are empty and those tests skip, saying
// why, instead of compiling to nothing. run_built_program runs one and captures what it prints.
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <string>

#ifndef KESTREL_PROGRAM_DIR
#define KESTREL_PROGRAM_DIR ""
#endif
#ifndef KESTREL_CIFAR10_TRAIN
#define KESTREL_CIFAR10_TRAIN ""
#endif
#ifndef KESTREL_BENCH_RESNET
#define KESTREL_BENCH_RESNET ""
#endif

#define KESTREL_REQUIRE_PROGRAMS_OR_SKIP()                                                  \
  do {                                                                                      \
    if (std::string(KESTREL_PROGRAM_DIR).empty())                                           \
      GTEST_SKIP() << "the programs are not built (configured with KESTREL_BUILD_EXAMPLES=OFF)"; \
  } while (0)

namespace kestrel::testing {

struct ProgramRun {
  int code = -1;       // exit status; -1 when it could not start or did not exit normally
  std::string output;  // stdout and stderr together
};

// Runs KESTREL_PROGRAM_DIR/<program> <args> through the shell and returns its exit status and
// everything it printed; with `stdout_to` (a path), only stderr is captured and stdout goes there.
inline ProgramRun run_built_program(const std::string& program, const std::string& args,
                                    const std::string& stdout_to = "") {
  const std::string cmd = std::string(KESTREL_PROGRAM_DIR) + "/" + program + " " + args + " 2>&1" +
                          (stdout_to.empty() ? "" : " >" + stdout_to);
  ProgramRun r;
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return r;
  char buf[512];
  while (std::fgets(buf, sizeof buf, p) != nullptr) r.output += buf;
  const int status = pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

}  // namespace kestrel::testing
