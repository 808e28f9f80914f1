// The benchmark figures' arithmetic (python_free_examples/bench/figures.h), which the GPU runs
// report but cannot check: the median of the timed runs, how many buffer sets defeat the L2,
// GB/s, % of copy, the batch-norm target and the run counts of --quick. References are a full
// sort and closed forms written here; exact where the arithmetic is exact, else 1e-12 relative
// (double arithmetic of a few operations).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <random>
#include <vector>

#include "error_text.h"
#include "figures.h"
#include "harness.h"

namespace {

using namespace kestrel::bench;

// Against a full sort of the same samples: odd and even counts, ties, and the input left as given
// (the samples are taken by value).
TEST(BenchFigures, TheMedianIsTheUpperMiddleSampleOfTheSortedRuns) {
  std::mt19937 rng(17);
  std::uniform_real_distribution<double> us(50.0, 250.0);
  for (std::size_t count : {1u, 2u, 3u, 4u, 20u, 21u, 100u}) {
    std::vector<double> samples(count);
    for (double& s : samples) s = us(rng);
    const std::vector<double> given = samples;
    std::vector<double> sorted = samples;
    std::sort(sorted.begin(), sorted.end());
    EXPECT_EQ(upper_median(samples), sorted[count / 2]) << count << " samples";
    EXPECT_EQ(samples, given);
  }
  EXPECT_EQ(upper_median({3.0, 1.0}), 3.0);  // the upper of two
  EXPECT_EQ(upper_median({7.0, 7.0, 1.0, 9.0}), 7.0);
  EXPECT_NE(kestrel::testing::error_of([] { upper_median({}); }).find("the median of no samples"), std::string::npos);
}

// ceil(3 * L2 / bytes) sets, at least one: the pass over them covers 3x the L2 and one set fewer
// would not. Closed forms for an H200-sized L2 (60 MiB), then the two inequalities on random sizes.
TEST(BenchFigures, RotationSetsCoverThreeTimesTheL2AndNoMore) {
  const std::size_t mib = std::size_t(1) << 20, l2 = 60 * mib;
  EXPECT_EQ(rotation_set_count(64 * mib, l2), 3);       // 192 MiB >= 180 MiB > 128 MiB
  EXPECT_EQ(rotation_set_count(90 * mib, l2), 2);       // exactly 180 MiB
  EXPECT_EQ(rotation_set_count(90 * mib - 1, l2), 3);  // one byte short of dividing it
  EXPECT_EQ(rotation_set_count(180 * mib, l2), 1);
  EXPECT_EQ(rotation_set_count(1024 * mib, l2), 1);     // larger than 3x L2: still one set
  EXPECT_EQ(rotation_set_count(mib, l2), 180);
  EXPECT_EQ(rotation_set_count(0, l2), 1);              // nothing to rotate
  EXPECT_EQ(rotation_set_count(1, 0), 3);               // an unknown L2 counts as 1 byte
  EXPECT_EQ(rotation_set_count(4, 0), 1);
  std::mt19937_64 rng(23);
  std::uniform_int_distribution<std::size_t> bytes(1, 400 * mib), cache(1, 128 * mib);
  for (int i = 0; i < 1000; ++i) {
    const std::size_t b = bytes(rng), c = cache(rng);
    const auto sets = static_cast<std::size_t>(rotation_set_count(b, c));
    ASSERT_GE(sets, 1u);
    EXPECT_GE(sets * b, 3 * c) << b << " bytes per set, L2 " << c;
    if (sets > 1) {
      EXPECT_LT((sets - 1) * b, 3 * c) << b << " bytes per set, L2 " << c;
    }
  }
}

// GB/s = bytes / (us * 1e3); no bandwidth figure without bytes; a 0 us median gives infinity
// (written as null in JSON, BenchJson.NumbersThatAreNotFiniteBecomeNull).
TEST(BenchFigures, BandwidthIsBytesPerMicrosecondOverAThousand) {
  const double gib2 = 2.0 * 1073741824.0;                 // the copy row: 1 GiB read + 1 GiB written
  EXPECT_DOUBLE_EQ(gbps(gib2, 504.8), gib2 / 504.8e3);    // ~4254 GB/s, the H200's copy rate
  EXPECT_NEAR(gbps(gib2, 504.8), 4254.0, 0.5);
  EXPECT_EQ(gbps(1e9, 1e6), 1.0);                         // 1 GB in one second
  EXPECT_EQ(gbps(0.0, 10.0), 0.0);
  EXPECT_EQ(gbps(-5.0, 10.0), 0.0);
  EXPECT_TRUE(std::isinf(gbps(1e6, 0.0)));
  std::mt19937 rng(29);
  std::uniform_real_distribution<double> b(1e3, 1e10), us(1.0, 1e5);
  for (int i = 0; i < 100; ++i) {
    const double bytes = b(rng), t = us(rng);
    // Moving the bytes at the computed rate takes the measured time: rate * 1e9 B/s * t * 1e-6 s.
    EXPECT_NEAR(gbps(bytes, t) * 1e9 * t * 1e-6, bytes, 1e-12 * bytes);
  }
}

TEST(BenchFigures, PercentOfCopyAndTheBatchNormTarget) {
  EXPECT_DOUBLE_EQ(pct_of_copy(3615.9, 4254.0), 100.0 * 3615.9 / 4254.0);  // ~85%
  EXPECT_EQ(pct_of_copy(4254.0, 4254.0), 100.0);
  EXPECT_EQ(pct_of_copy(0.0, 4254.0), 0.0);   // a row without bytes
  EXPECT_EQ(pct_of_copy(100.0, 0.0), 0.0);    // the copy rate not measured
  EXPECT_EQ(pct_of_copy(100.0, -1.0), 0.0);
  // BN forward over a 256x64x32x32 fp32 tensor: 3 passes of 64 MiB, held to 1.25x their time at
  // 4254 GB/s: 1.25 * 3 * 67108864 B / 4254e3 B/us = 59.16 us.
  const double passes = 3.0 * 256 * 64 * 32 * 32 * 4;
  EXPECT_NEAR(target_us(passes, 4254.0, 1.25), 1.25 * passes / 4254e3, 1e-12 * 60.0);
  EXPECT_NEAR(target_us(passes, 4254.0, 1.25), 59.16, 0.01);
  EXPECT_DOUBLE_EQ(target_us(passes, 4254.0, 1.0) * 4254.0 * 1e3, passes);
}

// Reported figures use the options' counts; --quick takes 2 warm-up runs and at most 10 timed.
TEST(BenchFigures, QuickRunsTakeTwoWarmUpsAndAtMostTenTimedRuns) {
  Options o;
  o.warmup = 7;
  o.runs = 33;
  TimedCounts n = timed_counts(o);
  EXPECT_EQ(n.warmup, 7);
  EXPECT_EQ(n.runs, 33);
  o.quick = true;
  n = timed_counts(o);
  EXPECT_EQ(n.warmup, 2);
  EXPECT_EQ(n.runs, 10);
  o.runs = 4;
  EXPECT_EQ(timed_counts(o).runs, 4);
  const Options defaults;
  EXPECT_EQ(timed_counts(defaults).warmup, 5);
  EXPECT_EQ(timed_counts(defaults).runs, 20);  // >= 20 for reported figures (STYLE.md)
}

}  // namespace
