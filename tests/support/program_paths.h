// Paths of the built programs, which tests/CMakeLists.txt defines for the suites that run them.
// Without the programs (KESTREL_BUILD_EXAMPLES=OFF) they are empty and those tests skip, saying
// why, instead of compiling to nothing.
#pragma once

#include <gtest/gtest.h>

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
