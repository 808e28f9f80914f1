// Shared helpers for Kestrel's GoogleTest suites.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

namespace kestrel::testing {

// True when KESTREL_REQUIRE_GPU=1: CUDA tests then fail instead of skipping without a device.
bool gpu_required();
// Empty when a CUDA device is usable; otherwise why not.
std::string gpu_unavailable_reason();

// Compares `actual` with `expected` element by element with |a - e| <= abs_tol + rel_tol * |e|.
// On failure reports how many elements differ and the first few with their indices.
::testing::AssertionResult all_close(const std::vector<double>& actual,
                                     const std::vector<double>& expected, double abs_tol,
                                     double rel_tol, int max_report = 5);
template <typename A, typename E>
::testing::AssertionResult all_close(const std::vector<A>& actual, const std::vector<E>& expected,
                                     double abs_tol, double rel_tol, int max_report = 5) {
  return all_close(std::vector<double>(actual.begin(), actual.end()),
                   std::vector<double>(expected.begin(), expected.end()), abs_tol, rel_tol,
                   max_report);
}
// Bit-for-bit equality of two buffers of the same type, reporting the first mismatches.
template <typename T>
::testing::AssertionResult bit_equal(const std::vector<T>& a, const std::vector<T>& b,
                                     int max_report = 5) {
  if (a.size() != b.size())
    return ::testing::AssertionFailure() << "sizes differ: " << a.size() << " vs " << b.size();
  std::ostringstream os;
  std::size_t bad = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::memcmp(&a[i], &b[i], sizeof(T)) != 0) {
      if (static_cast<int>(bad) < max_report) os << "\n  [" << i << "] " << +a[i] << " vs " << +b[i];
      ++bad;
    }
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << bad << " of " << a.size() << " elements differ:" << os.str();
}

}  // namespace kestrel::testing

// Skips the current test when no CUDA device exists (printing why), or fails it when
// KESTREL_REQUIRE_GPU=1.
#define KESTREL_REQUIRE_CUDA_OR_SKIP()                                                    \
  do {                                                                                    \
    const std::string kestrel_reason_ = ::kestrel::testing::gpu_unavailable_reason();     \
    if (!kestrel_reason_.empty()) {                                                       \
      if (::kestrel::testing::gpu_required()) {                                           \
        FAIL() << "KESTREL_REQUIRE_GPU=1 but no CUDA device: " << kestrel_reason_;        \
      } else {                                                                            \
        GTEST_SKIP() << "no CUDA device: " << kestrel_reason_;                            \
      }                                                                                   \
    }                                                                                     \
  } while (0)
