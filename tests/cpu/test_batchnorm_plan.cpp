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
// Elements of `elem_bytes` (default: 2 for 8-wide vectors, bf16; 4 otherwise).
void check_coverage(const BatchNormDims& d, std::int64_t v, std::int64_t elem_bytes = 0) {
  if (elem_bytes == 0) elem_bytes = v == 8 ? 2 : 4;
  SCOPED_TRACE(::testing::Message() << d.n << "x" << d.c << "x" << d.hw << " "
                                    << kestrel::layout_name(d.layout) << " v=" << v
                                    << " elem_bytes=" << elem_bytes);
  const bn::BnGeometry g = bn::bn_geometry(d, v, elem_bytes);
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
  // bf16 walked one element at a time (unaligned or odd extents): bf16's larger blocks.
  check_coverage({7, 64, 49, Layout::kNCHW}, 1, 2);
  check_coverage({64, 24, 49, Layout::kNHWC}, 1, 2);
  check_coverage({300, 5, 7, Layout::kNHWC}, 1, 2);
}

TEST(BatchNormPlan, LargeTensorsUseBoundedPartsAndSpreadOverManyBlocks) {
  const BatchNormDims a{256, 64, 1024, Layout::kNCHW}, b{512, 16, 1024, Layout::kNCHW};
  const BatchNormDims c{256, 64, 1024, Layout::kNHWC}, e{512, 16, 1024, Layout::kNHWC};
  // Every one of these spreads over >= 1024 blocks (several per SM on a 132-SM GPU), in fp32
  // and in bf16.
  for (std::int64_t bytes : {4, 2}) {
    SCOPED_TRACE(bytes);
    EXPECT_GE(a.c * bn::bn_parts(a, bytes), 1024);
    EXPECT_GE(b.c * bn::bn_parts(b, bytes), 1024);
    EXPECT_GE(bn::bn_parts(c, bytes), 1024);
    EXPECT_GE(bn::bn_parts(e, bytes), 1024);
  }
  check_coverage({260, 64, 1024, Layout::kNHWC}, 4);  // parts capped at kMaxParts
  // Grids where bf16's split differs from fp32's: half the parts (32 KB blocks), and the
  // in-between count that keeps 1024 blocks (43 a channel, fp32 64, 32 KB blocks 32).
  check_coverage({256, 64, 1024, Layout::kNHWC}, 8);
  check_coverage({512, 24, 1024, Layout::kNCHW}, 8);
  EXPECT_EQ(bn::bn_parts({512, 24, 1024, Layout::kNCHW}, 2), 43);
  EXPECT_EQ(bn::bn_parts({260, 64, 1024, Layout::kNHWC}), bn::kMaxParts);
}

// A block covers about kChunkBytes in either dtype where the grid keeps kSpreadBlocks blocks:
// bf16 blocks of 256x64x32x32 take twice fp32's elements (8 16-byte vectors a thread in both);
// 512x16x32x32 would drop below 1024 blocks, so bf16 keeps fp32's parts there.
TEST(BatchNormPlan, Bf16BlocksCoverAsManyBytesAsFp32sWhereTheGridStaysWide) {
  for (Layout l : {Layout::kNCHW, Layout::kNHWC}) {
    SCOPED_TRACE(kestrel::layout_name(l));
    const BatchNormDims wide{256, 64, 1024, l}, narrow{512, 16, 1024, l};
    EXPECT_EQ(bn::bn_parts(wide, 2) * 2, bn::bn_parts(wide, 4));
    EXPECT_EQ(bn::bn_parts(narrow, 2), bn::bn_parts(narrow, 4));
    // Elements a block covers: rows of all c channels channels-last, part of one channel in NCHW.
    const std::int64_t per_row = l == Layout::kNHWC ? wide.c : 1;
    EXPECT_EQ(wide.n * wide.hw / bn::bn_parts(wide, 2) * per_row * 2, bn::kChunkBytes);
    EXPECT_EQ(wide.n * wide.hw / bn::bn_parts(wide, 4) * per_row * 4, bn::kChunkBytes);
  }
}

// workspace_layout sizes the partials by bn_parts(d) (fp32's): bf16 never needs more, and every
// count is within [1, kMaxParts].
TEST(BatchNormPlan, Bf16NeverNeedsMorePartsThanTheWorkspaceHolds) {
  std::int64_t checked = 0;
  for (Layout l : {Layout::kNCHW, Layout::kNHWC})
    for (std::int64_t n : {1, 2, 7, 64, 256, 4096})
      for (std::int64_t c : {1, 3, 16, 64, 512, 3000})
        for (std::int64_t hw : {1, 49, 1024}) {
          const BatchNormDims d{n, c, hw, l};
          const std::int64_t bf16 = bn::bn_parts(d, 2), fp32 = bn::bn_parts(d, 4);
          EXPECT_EQ(fp32, bn::bn_parts(d));
          EXPECT_GE(bf16, 1);
          EXPECT_LE(bf16, fp32) << n << "x" << c << "x" << hw << " " << kestrel::layout_name(l);
          EXPECT_LE(fp32, bn::kMaxParts);
          ++checked;
        }
  EXPECT_EQ(checked, 2 * 6 * 6 * 3);
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
