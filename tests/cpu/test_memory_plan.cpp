// The memory planner: a property test over random lifetimes (no two simultaneously live
// buffers share bytes), reuse on a chain, and a checker that can fail.
#include <gtest/gtest.h>

#include <algorithm>
#include <limits>
#include <random>
#include <string>

#include "kestrel/core/error.h"
#include "kestrel/core/memory_plan.h"

using kestrel::BufferRequest;
using kestrel::MemoryPlan;
using kestrel::plan_is_valid;

TEST(MemoryPlan, ChainReusesMemory) {
  // a -> b -> c -> d: each buffer is read only by the next step, so two slots suffice.
  std::vector<BufferRequest> r = {{1000, 0, 1}, {1000, 1, 2}, {1000, 2, 3}, {1000, 3, 4}};
  const auto p = kestrel::plan_memory(r, 256);
  EXPECT_TRUE(kestrel::plan_is_valid(r, p));
  EXPECT_EQ(p.arena_bytes, 2048u);
  EXPECT_EQ(p.total_bytes, 4000u);
  EXPECT_EQ(p.live_peak_bytes, 2000u);  // two buffers at each shared step
  EXPECT_EQ(p.offsets[0], p.offsets[2]);
}

TEST(MemoryPlan, OffsetsAreAligned) {
  std::vector<BufferRequest> r = {{3, 0, 5}, {5, 0, 5}, {7, 1, 2}};
  const auto p = kestrel::plan_memory(r, 64);
  for (std::size_t o : p.offsets) EXPECT_EQ(o % 64, 0u);
  EXPECT_TRUE(kestrel::plan_is_valid(r, p));
}

TEST(MemoryPlan, CheckerDetectsOverlap) {
  std::vector<BufferRequest> r = {{100, 0, 3}, {100, 2, 5}};
  kestrel::MemoryPlan bad;
  bad.offsets = {0, 50};
  bad.arena_bytes = 150;
  EXPECT_FALSE(kestrel::plan_is_valid(r, bad));
  bad.offsets = {0, 100};
  bad.arena_bytes = 200;
  EXPECT_TRUE(kestrel::plan_is_valid(r, bad));
}

TEST(MemoryPlan, RandomGraphsNeverOverlapLiveBuffers) {
  std::mt19937 rng(2026);
  for (int trial = 0; trial < 300; ++trial) {
    const int n = 1 + static_cast<int>(rng() % 120);
    const int steps = 1 + static_cast<int>(rng() % 60);
    std::vector<BufferRequest> r(n);
    for (auto& b : r) {
      b.first_step = static_cast<int>(rng() % steps);
      b.last_step = b.first_step + static_cast<int>(rng() % (steps - b.first_step + 1));
      b.bytes = (rng() % 4 == 0) ? rng() % 64 : 1 + rng() % (1 << 20);
    }
    const auto p = kestrel::plan_memory(r, 256);
    ASSERT_TRUE(kestrel::plan_is_valid(r, p)) << "trial " << trial;
    // The arena never needs more than placing everything side by side.
    std::size_t side_by_side = 0;
    for (const auto& b : r) side_by_side += (std::max<std::size_t>(b.bytes, 1) + 255) / 256 * 256;
    EXPECT_LE(p.arena_bytes, side_by_side);
    // ... and at least the largest set of buffers alive at one step, which live_peak_bytes
    // reports (counted here by brute force over the steps).
    std::size_t peak = 0;
    for (int s = 0; s < steps; ++s) {
      std::size_t live = 0;
      for (const auto& b : r)
        if (b.first_step <= s && s <= b.last_step) live += b.bytes;
      EXPECT_GE(p.arena_bytes, live);
      peak = std::max(peak, live);
    }
    EXPECT_EQ(p.live_peak_bytes, peak) << "trial " << trial;
  }
}

TEST(MemoryPlan, RejectsBadRequests) {
  EXPECT_THROW(kestrel::plan_memory({{10, 5, 4}}), kestrel::Error);
  EXPECT_THROW(kestrel::plan_memory({{10, 0, 1}}, 3), kestrel::Error);
  // A negative step once indexed the liveness count before its first element.
  try {
    kestrel::plan_memory({{16, 0, 2}, {10, -3, 1}});
    ADD_FAILURE() << "no error for a request starting at step -3";
  } catch (const kestrel::Error& e) {
    EXPECT_NE(std::string(e.what()).find("request 1 starts at step -3"), std::string::npos) << e.what();
  }
}

// Step numbers may be as large as int holds: the live peak is a sweep over the requests, not a
// count per step (which once allocated one counter a step, and overflowed at INT_MAX + 1).
TEST(MemoryPlan, HugeStepNumbersNeedNoMemoryPerStep) {
  const int top = std::numeric_limits<int>::max();
  const std::vector<BufferRequest> r = {{16, 0, top}, {32, top - 1, top}, {8, 5, 6}};
  const auto p = kestrel::plan_memory(r, 256);
  EXPECT_TRUE(kestrel::plan_is_valid(r, p));
  EXPECT_EQ(p.live_peak_bytes, 48u);
  EXPECT_EQ(p.total_bytes, 56u);
}

// plan_is_valid follows the contract of memory_plan.h: byte ranges [offset, offset + bytes) of
// simultaneously live buffers must be disjoint, and an empty range (a zero-byte buffer) is
// disjoint from every range, wherever it is placed.
TEST(MemoryPlan, CheckerAcceptsZeroByteBuffersInsideLiveRanges) {
  const std::vector<BufferRequest> r = {{100, 0, 3}, {0, 1, 2}, {0, 0, 3}};
  MemoryPlan p;
  p.offsets = {0, 0, 50};  // both empty buffers sit inside the live 100-byte one
  p.arena_bytes = 100;
  EXPECT_TRUE(plan_is_valid(r, p));
  // A one-byte buffer at the same place does overlap.
  const std::vector<BufferRequest> r1 = {{100, 0, 3}, {1, 1, 2}, {0, 0, 3}};
  EXPECT_FALSE(plan_is_valid(r1, p));
}

// plan_is_valid also holds every buffer inside the arena (memory_plan.h: arena_bytes is the end
// of the highest placed buffer): a buffer running past arena_bytes is invalid even alone.
TEST(MemoryPlan, CheckerRejectsABufferPastTheArenaEnd) {
  const std::vector<BufferRequest> r = {{100, 0, 1}, {100, 2, 3}};
  MemoryPlan p;
  p.offsets = {0, 256};
  p.arena_bytes = 300;  // the second buffer ends at 356
  EXPECT_FALSE(plan_is_valid(r, p));
  p.arena_bytes = 356;
  EXPECT_TRUE(plan_is_valid(r, p));
}

// Equal sizes tie in the size order and are then placed by earlier start: first fit in order of
// start is optimal on intervals, so the arena is exactly the live peak. Here (hand-checked) at
// most two 256-byte buffers are alive at once; placing the later-starting [3, 5] before [1, 2]
// would need a third slot.
TEST(MemoryPlan, EqualSizedBuffersPlacedByStartNeedOnlyTheLivePeak) {
  const std::vector<BufferRequest> r = {{256, 1, 2}, {256, 3, 5}, {256, 0, 3}, {256, 4, 4}};
  const auto p = kestrel::plan_memory(r, 256);
  EXPECT_TRUE(plan_is_valid(r, p));
  EXPECT_EQ(p.live_peak_bytes, 512u);
  EXPECT_EQ(p.arena_bytes, 512u);
  std::mt19937 rng(7);
  for (int trial = 0; trial < 200; ++trial) {
    const int n = 1 + static_cast<int>(rng() % 12), steps = 1 + static_cast<int>(rng() % 10);
    std::vector<BufferRequest> q(static_cast<std::size_t>(n));
    for (auto& b : q) {
      b.bytes = 256;
      b.first_step = static_cast<int>(rng() % steps);
      b.last_step = b.first_step + static_cast<int>(rng() % 4);
    }
    const auto pq = kestrel::plan_memory(q, 256);
    std::size_t peak = 0;  // brute force over the steps
    for (int s = 0; s < steps + 4; ++s) {
      std::size_t live = 0;
      for (const auto& b : q)
        if (b.first_step <= s && s <= b.last_step) live += b.bytes;
      peak = std::max(peak, live);
    }
    ASSERT_EQ(pq.arena_bytes, peak) << "trial " << trial;
  }
}

// The edges of the contract in memory_plan.h: a first step of -1 is refused like -3; total_bytes
// sums the requests as given (zero-byte ones add nothing) while each zero-byte request still
// takes an aligned slot of its own inside the arena; the checker refuses a plan whose offsets are
// not one per request.
TEST(MemoryPlan, EdgesOfTheContract) {
  EXPECT_THROW(kestrel::plan_memory({{10, -1, 1}}), kestrel::Error);
  const std::vector<BufferRequest> r = {{0, 0, 2}, {0, 1, 3}, {100, 0, 3}};
  const MemoryPlan p = kestrel::plan_memory(r, 256);
  EXPECT_EQ(p.total_bytes, 100u);
  EXPECT_EQ(p.arena_bytes, 3u * 256u);
  for (std::size_t i = 0; i < r.size(); ++i) {
    EXPECT_EQ(p.offsets[i] % 256, 0u);
    EXPECT_LT(p.offsets[i], p.arena_bytes);
  }
  EXPECT_NE(p.offsets[0], p.offsets[1]);
  EXPECT_TRUE(plan_is_valid(r, p));
  MemoryPlan extra = p;
  extra.offsets.push_back(0);
  EXPECT_FALSE(plan_is_valid(r, extra));
  MemoryPlan fewer = p;
  fewer.offsets.pop_back();
  EXPECT_FALSE(plan_is_valid(r, fewer));
}
