// The GPU's channels-last batch-norm statistics, replayed on the CPU with the kernel's own
// arithmetic (kernels/batchnorm_math.h: its cursor, per-thread shifted sums about each thread's
// first value, the tree fold of Welford triples by Chan's formula over row lanes, then the merge
// of the parts) on data that is hard for shifted sums: means 1e3-1e4 times the spread, and each
// part's first row an outlier 50 spreads off. Mean and variance against a double-precision
// two-pass reference.
//
// Why per-thread shifts and Chan's formula at every fold level, though its division makes the
// fold a large share of the bf16 kernel's instructions: a shift common to the block (a value of
// its first row, so that the fold is plain addition) was tried, and on this data its variance
// was off by 2.8e-5 (the outlier's (50 spreads)^2 cancels in every thread's sums), over the bound
// below; per-thread shifts confine an outlier to the thread that starts with it.
//
// Tolerance: the variance's relative error <= 2e-5, i.e. invstd within 1e-5, the CUDA tests'
// bound on fp32 outputs (tests/support/batchnorm_step.h); the mean's error <= 1e-6 of |mean|.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <sstream>
#include <utility>
#include <vector>

#include "kestrel/kernels/batchnorm_math.h"
#include "kestrel/kernels/cpu/batchnorm.h"
#include "kestrel/kernels/cpu/layernorm.h"

using kestrel::BatchNormDims;
using kestrel::Layout;
namespace bn = kestrel::bn_detail;

namespace {

struct Stats {
  std::vector<double> mean, var;
};

// What reduce_nhwc_kernel and finalize_stats_kernel compute, in their order: for each block
// (part, tile), each thread's sums about its first value (StatsOp), made a Welford triple, the
// tree fold over row lanes; the parts merged in index order.
Stats gpu_channels_last_stats(const std::vector<float>& x, const BatchNormDims& d, std::int64_t v,
                              std::int64_t elem_bytes) {
  const bn::BnGeometry g = bn::bn_geometry(d, v, elem_bytes);
  std::vector<bn::Welford> parts(static_cast<std::size_t>(d.c * g.parts), bn::Welford{0.f, 0.f, 0.f});
  const int rows = static_cast<int>(g.rows_per_iter), col_tile = static_cast<int>(g.col_tile);
  const int width = col_tile * static_cast<int>(v);
  for (std::int64_t part = 0; part < g.parts; ++part) {
    for (std::int64_t tile = 0; tile < g.col_tiles; ++tile) {
      std::vector<bn::Welford> sm(static_cast<std::size_t>(rows * width), bn::Welford{0.f, 0.f, 0.f});
      for (int t = 0; t < bn::kThreads; ++t) {
        bn::NhwcCursor cur(g, part, tile, t);
        std::vector<bn::ShiftedSums> acc(static_cast<std::size_t>(v), bn::ShiftedSums{0.f, 0.f, 0.f});
        float n = 0.f;
        std::int64_t off;
        while (cur.next(off)) {
          for (std::int64_t j = 0; j < v; ++j) {
            bn::ShiftedSums& a = acc[static_cast<std::size_t>(j)];
            if (n == 0.f) a.shift = x[static_cast<std::size_t>(off + j)];
            bn::shifted_add(a, x[static_cast<std::size_t>(off + j)]);
          }
          n += 1.f;
        }
        const int row_lane = t / col_tile, slot = (t % col_tile) * static_cast<int>(v);
        if (row_lane >= rows) continue;
        for (std::int64_t j = 0; j < v; ++j)
          sm[static_cast<std::size_t>(row_lane * width + slot + j)] =
              cur.active ? bn::shifted_to_welford(acc[static_cast<std::size_t>(j)], n) : bn::Welford{0.f, 0.f, 0.f};
      }
      int top = 1;
      while (top < rows) top <<= 1;
      for (int s = top / 2; s > 0; s >>= 1)
        for (int lane = 0; lane < s && lane + s < rows; ++lane)
          for (int k = 0; k < width; ++k) {
            bn::Welford& dst = sm[static_cast<std::size_t>(lane * width + k)];
            dst = bn::welford_combine(dst, sm[static_cast<std::size_t>((lane + s) * width + k)]);
          }
      for (int k = 0; k < width; ++k) {
        const std::int64_t ch = tile * g.col_tile * v + k;
        if (ch < d.c) parts[static_cast<std::size_t>(ch * g.parts + part)] = sm[static_cast<std::size_t>(k)];
      }
    }
  }
  Stats s;
  for (std::int64_t ch = 0; ch < d.c; ++ch) {
    bn::Welford w{0.f, 0.f, 0.f};
    for (std::int64_t k = 0; k < g.parts; ++k) w = bn::welford_combine(w, parts[static_cast<std::size_t>(ch * g.parts + k)]);
    s.mean.push_back(w.mean);
    s.var.push_back(static_cast<double>(w.m2) / static_cast<double>(g.rows));
  }
  return s;
}

Stats two_pass(const std::vector<float>& x, const BatchNormDims& d) {
  Stats s;
  const std::int64_t m = d.n * d.hw;
  for (std::int64_t ch = 0; ch < d.c; ++ch) {
    double sum = 0, ss = 0;
    for (std::int64_t r = 0; r < m; ++r) sum += x[static_cast<std::size_t>(r * d.c + ch)];
    const double mean = sum / static_cast<double>(m);
    for (std::int64_t r = 0; r < m; ++r) {
      const double dv = x[static_cast<std::size_t>(r * d.c + ch)] - mean;
      ss += dv * dv;
    }
    s.mean.push_back(mean);
    s.var.push_back(ss / static_cast<double>(m));
  }
  return s;
}

}  // namespace

TEST(BatchNormBlockStats, ChannelsLastStatisticsAreAccurateOnHardData) {
  std::mt19937 gen(71);
  std::normal_distribution<float> unit(0.f, 1.f);
  struct Case {
    BatchNormDims d;
    std::int64_t v, elem_bytes;
  };
  const Case cases[] = {{{64, 64, 49, Layout::kNHWC}, 8, 2},   // bf16 vectors, 32 row lanes
                        {{64, 64, 49, Layout::kNHWC}, 4, 4},   // fp32 vectors, 16 row lanes
                        {{96, 24, 16, Layout::kNHWC}, 1, 4},   // scalar walk, 10 row lanes (not 2^k)
                        {{300, 520, 1, Layout::kNCHW}, 1, 4}};  // hw = 1: channels-last, 3 tiles
  for (const Case& c : cases) {
    const BatchNormDims& d = c.d;
    SCOPED_TRACE(::testing::Message() << d.n << "x" << d.c << "x" << d.hw << " v=" << c.v);
    const bn::BnGeometry g = bn::bn_geometry(d, c.v, c.elem_bytes);
    ASSERT_GT(g.parts, 1);
    const std::int64_t m = d.n * d.hw;
    std::vector<float> x(static_cast<std::size_t>(m * d.c));
    for (std::int64_t r = 0; r < m; ++r)
      for (std::int64_t ch = 0; ch < d.c; ++ch) {
        const float mean = ch % 2 == 0 ? 1000.f : -50.f, spread = ch % 2 == 0 ? 0.1f : 0.01f;  // 1e4, 5e3 std
        x[static_cast<std::size_t>(r * d.c + ch)] = mean + spread * unit(gen);
      }
    for (std::int64_t part = 0; part < g.parts; ++part) {  // each part's first row: 50 std off
      std::int64_t row0, row_end;
      bn::part_range(part, g.parts, g.rows, row0, row_end);
      for (std::int64_t ch = 0; ch < d.c; ++ch)
        x[static_cast<std::size_t>(row0 * d.c + ch)] += (ch % 2 == 0 ? 0.1f : 0.01f) * 50.f;
    }
    const Stats got = gpu_channels_last_stats(x, d, c.v, c.elem_bytes), want = two_pass(x, d);
    double worst_mean = 0, worst_var = 0;
    for (std::int64_t ch = 0; ch < d.c; ++ch) {
      const auto i = static_cast<std::size_t>(ch);
      worst_mean = std::max(worst_mean, std::fabs(got.mean[i] - want.mean[i]) / std::fabs(want.mean[i]));
      worst_var = std::max(worst_var, std::fabs(got.var[i] - want.var[i]) / want.var[i]);
    }
    EXPECT_LE(worst_mean, 1e-6);
    EXPECT_LE(worst_var, 2e-5);
    std::ostringstream key, value;
    key << "worst_var_rel_error_" << d.n << "x" << d.c << "x" << d.hw << "_v" << c.v;
    value << worst_var;
    RecordProperty(key.str(), value.str());
  }
}

// The CPU twins' own statistics over long channels and rows of ordinary data (mean 100, spread
// 1): their runs of 64 values are merged pairwise, as the GPU's reductions merge, not in one
// serial chain, whose 65,536 merges for a channel of 2^22 values left the mean 45 ulps off and
// invstd 2.9e-5 off (layer norm over 2^20 features: 24 ulps). Reference: long-double two-pass.
// Bounds: mean within 4 ulps (3e-7 of |mean|), invstd / rstd within 2e-6.
TEST(CpuNormStatistics, LongChannelsAndRowsStayAccurate) {
  const std::int64_t m = std::int64_t{1} << 22;
  std::vector<float> x(static_cast<std::size_t>(m));
  std::mt19937 rng(11);
  std::normal_distribution<float> gauss(100.f, 1.f);
  for (float& v : x) v = gauss(rng);
  auto moments = [&](std::int64_t count) {
    long double sum = 0, sq = 0;
    for (std::int64_t i = 0; i < count; ++i) sum += x[static_cast<std::size_t>(i)];
    const long double mean = sum / count;
    for (std::int64_t i = 0; i < count; ++i) {
      const long double d = x[static_cast<std::size_t>(i)] - mean;
      sq += d * d;
    }
    return std::pair<double, double>{static_cast<double>(mean), static_cast<double>(sq / count)};
  };
  {
    const BatchNormDims d{64, 1, m / 64, Layout::kNCHW};
    std::vector<float> y(x.size());
    const float gamma = 1.f, beta = 0.f;
    float rm = 0.f, rv = 1.f, mean = 0.f, invstd = 0.f;
    kestrel::cpu::batchnorm_forward_training(x.data(), nullptr, y.data(), kestrel::DType::kFloat32, d, &gamma, &beta,
                                             1e-5f, 0.1f, &rm, &rv, &mean, &invstd, kestrel::BnActivation::kNone,
                                             nullptr);
    const auto [ref_mean, ref_var] = moments(m);
    EXPECT_NEAR(mean, ref_mean, 3e-7 * ref_mean) << "batch norm mean";
    EXPECT_NEAR(invstd, 1.0 / std::sqrt(ref_var + 1e-5), 2e-6 / std::sqrt(ref_var)) << "batch norm invstd";
  }
  {
    const std::int64_t cols = std::int64_t{1} << 20;
    std::vector<float> y(static_cast<std::size_t>(cols)), gamma(y.size(), 1.f), beta(y.size(), 0.f);
    float mean = 0.f, rstd = 0.f;
    kestrel::cpu::layernorm_forward(x.data(), y.data(), kestrel::DType::kFloat32, 1, cols, gamma.data(), beta.data(),
                                    1e-5f, &mean, &rstd);
    const auto [ref_mean, ref_var] = moments(cols);
    const double ref_rstd = 1.0 / (std::sqrt(ref_var) + 1e-5);
    EXPECT_NEAR(mean, ref_mean, 3e-7 * ref_mean) << "layer norm mean";
    EXPECT_NEAR(rstd, ref_rstd, 2e-6 * ref_rstd) << "layer norm rstd";
  }
}

TEST(BatchNormBlockStats, ShiftedSumsThatRoundBelowZeroGiveZeroVariance) {
  // Sums about a shift far from the data (layernorm.cu's per-thread sums start at shift 0) can
  // round to s2 < s1 * s1 / n. Ten copies of 1.1f about 0, summed in float as shifted_add does:
  // s1 = 11.000001f, s2 = 12.1000004f, and s1 * (s1 / 10) = 12.1000023f > s2, so the raw
  // m2 = s2 - s1 * mean_d is -1.9e-6; the true variance is 0 and the triple must say m2 = 0
  // (a negative m2 makes var + eps negative and invstd NaN for eps < 1.9e-7).
  bn::ShiftedSums s{0.f, 0.f, 0.f};
  for (int i = 0; i < 10; ++i) bn::shifted_add(s, 1.1f);
  ASSERT_LT(s.s2 - s.s1 * (s.s1 / 10.f), 0.f) << "the data must make the raw difference negative";
  const bn::Welford w = bn::shifted_to_welford(s, 10.f);
  EXPECT_EQ(w.n, 10.f);
  EXPECT_EQ(w.m2, 0.f);
  EXPECT_NEAR(w.mean, 1.1, 2e-7);  // 11.000001f / 10, within an ulp or two of 1.1
  EXPECT_TRUE(std::isfinite(bn::bn_invstd(w.m2 / w.n, 1e-8f)));
  // A NaN m2 is not clamped: it stays NaN (the comparison m2 < 0 is false).
  bn::ShiftedSums bad{0.f, 1.f, std::numeric_limits<float>::quiet_NaN()};
  EXPECT_TRUE(std::isnan(bn::shifted_to_welford(bad, 2.f).m2));
}
