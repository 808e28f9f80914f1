#include "test_support.h"

#include <cstdlib>
#include <cstring>

#include "kestrel/core/device.h"

namespace kestrel::testing {

bool gpu_required() {
  const char* v = std::getenv("KESTREL_REQUIRE_GPU");
  return v != nullptr && std::strcmp(v, "1") == 0;
}

std::string gpu_unavailable_reason() {
  if (cuda_device_count() > 0) return {};
  const std::string r = cuda_unavailable_reason();
  return r.empty() ? "unknown reason" : r;
}

::testing::AssertionResult all_close(const std::vector<double>& actual,
                                     const std::vector<double>& expected, double abs_tol,
                                     double rel_tol, int max_report) {
  if (actual.size() != expected.size())
    return ::testing::AssertionFailure() << "sizes differ: " << actual.size() << " vs "
                                         << expected.size();
  std::ostringstream os;
  std::size_t bad = 0;
  double worst = 0.0;
  for (std::size_t i = 0; i < actual.size(); ++i) {
    const double a = actual[i], e = expected[i];
    const double tol = abs_tol + rel_tol * std::fabs(e);
    const bool ok = (std::isnan(a) && std::isnan(e)) || std::fabs(a - e) <= tol;
    if (!ok) {
      if (static_cast<int>(bad) < max_report)
        os << "\n  [" << i << "] actual " << a << " expected " << e << " (|diff| " << std::fabs(a - e)
           << " > tol " << tol << ")";
      ++bad;
      if (std::fabs(a - e) > worst || std::isnan(a)) worst = std::isnan(a) ? NAN : std::fabs(a - e);
    }
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << bad << " of " << actual.size()
                                       << " elements out of tolerance (abs " << abs_tol << ", rel "
                                       << rel_tol << "), worst |diff| " << worst << ":" << os.str();
}

}  // namespace kestrel::testing
