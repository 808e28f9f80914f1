// The GPU batch-norm kernels' work partitioning, run on the CPU: for every block and thread of
// the grids the launchers use, the cursors (kernels/batchnorm_math.h) visit each element of the
// tensor exactly once, inside the tensor, with the channel the kernel assumes for each lane.
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "kestrel/kernels/batchnorm_math.h"

using kestrel::BatchNormDims;
using kestrel::Layout;
namespace bn = kestrel::bn_detail;

namespace {

std::int64_t channel_at(const BatchNormDims& d, std::int64_t off) {
  return d.layout == Layout::kNCHW && d.hw > 1 ? (off / d.hw) % d.c : off % d.c;
}

// Walks the whole grid of geometry g and counts visits per element; checks lane channels.
void check_coverage(const BatchNormDims& d, std::int64_t v) {
  SCOPED_TRACE(::testing::Message() << d.n << "x" << d.c << "x" << d.hw << " "
                                    << kestrel::layout_name(d.layout) << " v=" << v);
  const bn::BnGeometry g = bn::bn_geometry(d, v);
  const std::int64_t total = d.n * d.c * d.hw;
  std::vector<std::uint8_t> visits(static_cast<std::size_t>(total), 0);
  std::int64_t bad = 0;
  auto visit = [&](std::int64_t off, std::int64_t ch0, std::int64_t lane_step) {
    if (off < 0 || off + v > total || off % v != 0) {
      ++bad;
      return;
    }
    for (std::int64_t j = 0; j < v; ++j) {
      ++visits[off + j];
      if (channel_at(d, off + j) != ch0 + j * lane_step) ++bad;
    }
  };
  ASSERT_GE(g.parts, 1);
  ASSERT_LE(g.parts, bn::kMaxParts);
  if (g.channels_last) {
    ASSERT_EQ(g.cv * v, d.c);
    ASSERT_LE(g.rows_per_iter * g.col_tile, bn::kThreads);
    for (std::int64_t part = 0; part < g.parts; ++part)
      for (std::int64_t tile = 0; tile < g.col_tiles; ++tile)
        for (int t = 0; t < bn::kThreads; ++t) {
          bn::NhwcCursor cur(g, part, tile, t);
          std::int64_t off;
          while (cur.next(off)) visit(off, cur.first_channel(), 1);
        }
  } else {
    ASSERT_EQ(g.hwv * v, d.hw);
    for (std::int64_t b = 0; b < d.c * g.parts; ++b) {
      const std::int64_t ch = b / g.parts, k = b % g.parts;
      for (int t = 0; t < bn::kThreads; ++t) {
        bn::NchwCursor cur(g, ch, k, t);
        std::int64_t off;
        while (cur.next(off)) visit(off, ch, 0);
      }
    }
  }
  EXPECT_EQ(bad, 0);
  std::int64_t wrong = 0;
  for (std::uint8_t c : visits) wrong += c != 1;
  EXPECT_EQ(wrong, 0) << "elements not visited exactly once";
}

}  // namespace

TEST(BatchNormPlan, CursorsCoverEveryElementOnce) {
  // NCHW: scalar walks over odd planes (a step of 256 threads spans several planes), vector
  // walks, one channel, hw == 1 (goes channels-last).
  check_coverage({3, 5, 7, Layout::kNCHW}, 1);
  check_coverage({7, 64, 49, Layout::kNCHW}, 1);
  check_coverage({2, 3, 8, Layout::kNCHW}, 4);
  check_coverage({5, 16, 1024, Layout::kNCHW}, 4);
  check_coverage({5, 16, 1024, Layout::kNCHW}, 8);
  check_coverage({256, 1, 1024, Layout::kNCHW}, 4);
  check_coverage({3, 2, 300, Layout::kNCHW}, 4);
  // Planes of more vectors than a block has threads (hwv > 256): a step stays in its plane and
  // wraps into the next image only on some steps.
  check_coverage({3, 2, 1024, Layout::kNCHW}, 1);
  check_coverage({3, 2, 1000, Layout::kNCHW}, 1);
  check_coverage({9, 3, 4096, Layout::kNCHW}, 4);
  check_coverage({17, 5, 1000, Layout::kNCHW}, 8);
  check_coverage({256, 3, 1, Layout::kNCHW}, 1);
  // Channels-last: fewer vector columns than threads (several rows at once), a partial row
  // group (3 columns), more columns than threads (two tiles, the second partial).
  check_coverage({7, 64, 49, Layout::kNHWC}, 4);
  check_coverage({7, 64, 49, Layout::kNHWC}, 8);
  check_coverage({2, 3, 49, Layout::kNHWC}, 1);
  check_coverage({2, 512, 1, Layout::kNHWC}, 4);
  check_coverage({3, 1100, 2, Layout::kNHWC}, 4);
  check_coverage({1, 2048, 3, Layout::kNHWC}, 8);
  check_coverage({256, 1, 49, Layout::kNHWC}, 1);
}

TEST(BatchNormPlan, LargeTensorsUseBoundedPartsAndSpreadOverManyBlocks) {
  const BatchNormDims a{256, 64, 1024, Layout::kNCHW}, b{512, 16, 1024, Layout::kNCHW};
  const BatchNormDims c{256, 64, 1024, Layout::kNHWC}, e{512, 16, 1024, Layout::kNHWC};
  // Every one of these spreads over >= 1024 blocks (several per SM on a 132-SM GPU).
  EXPECT_GE(a.c * bn::bn_parts(a), 1024);
  EXPECT_GE(b.c * bn::bn_parts(b), 1024);
  EXPECT_GE(bn::bn_parts(c), 1024);
  EXPECT_GE(bn::bn_parts(e), 1024);
  check_coverage({260, 64, 1024, Layout::kNHWC}, 4);  // parts capped at kMaxParts
  EXPECT_EQ(bn::bn_parts({260, 64, 1024, Layout::kNHWC}), bn::kMaxParts);
}

TEST(BatchNormPlan, PartRangesTileTheTotal) {
  for (std::int64_t total : {1, 7, 256, 1000003})
    for (std::int64_t parts : {1, 2, 3, 255, 2048}) {
      std::int64_t expect = 0;
      for (std::int64_t k = 0; k < parts; ++k) {
        std::int64_t b, e;
        bn::part_range(k, parts, total, b, e);
        EXPECT_EQ(b, expect);
        EXPECT_GE(e, b);
        EXPECT_LE(e - b, total / parts + 1);
        expect = e;
      }
      EXPECT_EQ(expect, total);
    }
}
