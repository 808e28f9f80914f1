// The arithmetic behind the benchmark figures (medians, rotation sets, GB/s, % of copy, targets),
// apart from the CUDA timing in harness.cpp so that the CPU tests check it
// (tests/cpu/test_bench_figures.cpp); the harness and the benchmark sections call these.
#pragma once

#include <cstddef>
#include <vector>

namespace kestrel::bench {

struct Options;

// The median of the samples, the upper of the two middle ones for an even count (the element at
// index count / 2 in sorted order). Raises kestrel::Error when there are none.
double upper_median(std::vector<double> samples);

// How many buffer sets of bytes_per_set to rotate through so that one pass over them covers at
// least 3x an L2 of l2_bytes (so no call finds its inputs in L2): ceil(3 * l2 / bytes), at least 1;
// 1 for empty sets. An unknown L2 (0) counts as 1 byte.
int rotation_set_count(std::size_t bytes_per_set, std::size_t l2_bytes);

// GB/s (1e9 bytes per second) of bytes moved in us microseconds; 0 when bytes <= 0 (no bandwidth
// figure for the row). A 0 us median gives infinity, which the JSON line writes as null.
double gbps(double bytes, double us);

// The rate as a percentage of the copy bandwidth; 0 when either is unknown (<= 0).
double pct_of_copy(double rate_gbps, double copy_gbps);

// The time of `passes_bytes` moved at `factor` times the copy bandwidth's time, in microseconds:
// the bar a bandwidth-bound kernel is held to (bench_batchnorm: factor 1.25).
double target_us(double passes_bytes, double copy_gbps, double factor);

// Warm-up and timed run counts of one measurement: the options', or, with --quick, 2 warm-up
// runs and at most 10 timed ones.
struct TimedCounts {
  int warmup, runs;
};
TimedCounts timed_counts(const Options& o);

}  // namespace kestrel::bench
