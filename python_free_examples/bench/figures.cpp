#include "figures.h"

#include <algorithm>

#include "harness.h"
#include "kestrel/core/error.h"

namespace kestrel::bench {

double upper_median(std::vector<double> samples) {
  KESTREL_CHECK(!samples.empty(), "the median of no samples");
  const auto mid = samples.begin() + static_cast<std::ptrdiff_t>(samples.size() / 2);
  std::nth_element(samples.begin(), mid, samples.end());
  return *mid;
}

int rotation_set_count(std::size_t bytes_per_set, std::size_t l2_bytes) {
  if (bytes_per_set == 0) return 1;
  const std::size_t target = 3 * std::max<std::size_t>(l2_bytes, 1);
  const std::size_t sets = target / bytes_per_set + (target % bytes_per_set != 0 ? 1 : 0);
  return static_cast<int>(std::max<std::size_t>(1, sets));
}

double gbps(double bytes, double us) { return bytes > 0 ? bytes / (us * 1e3) : 0.0; }

double pct_of_copy(double rate_gbps, double copy_gbps) {
  return rate_gbps > 0 && copy_gbps > 0 ? 100.0 * rate_gbps / copy_gbps : 0.0;
}

double target_us(double passes_bytes, double copy_gbps, double factor) {
  return factor * passes_bytes / (copy_gbps * 1e3);
}

TimedCounts timed_counts(const Options& o) {
  return o.quick ? TimedCounts{2, std::min(o.runs, 10)} : TimedCounts{o.warmup, o.runs};
}

}  // namespace kestrel::bench
