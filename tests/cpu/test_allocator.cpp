// The caching allocator's bookkeeping, driven by a fake backend with a fixed capacity, and the
// CPU allocator.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <limits>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "error_text.h"
#include "kestrel/core/allocator.h"
#include "kestrel/core/error.h"

namespace {
// A backend with `capacity` bytes that counts its calls.
class FakeRawMemory final : public kestrel::RawMemory {
 public:
  explicit FakeRawMemory(std::size_t capacity, int* allocs, int* frees, int* syncs)
      : capacity_(capacity), allocs_(allocs), frees_(frees), syncs_(syncs) {}
  void* raw_allocate(std::size_t bytes) override {
    if (fault) throw kestrel::Error("sticky fault of an earlier kernel");
    if (used_ + bytes > capacity_) return nullptr;
    void* p = std::malloc(bytes);
    sizes_[p] = bytes;
    used_ += bytes;
    ++*allocs_;
    return p;
  }
  void raw_free(void* p) noexcept override {
    used_ -= sizes_[p];
    sizes_.erase(p);
    std::free(p);
    ++*frees_;
  }
  std::size_t free_bytes() const noexcept override { return capacity_ - used_; }
  void synchronize() noexcept override { ++*syncs_; }
  kestrel::Device device() const noexcept override { return kestrel::Device::cuda(0); }
  bool fault = false;  // raw_allocate raises, as the CUDA backend does for a non-OOM failure

 private:
  std::size_t capacity_, used_ = 0;
  std::map<void*, std::size_t> sizes_;
  int *allocs_, *frees_, *syncs_;
};

struct Fixture {
  int allocs = 0, frees = 0, syncs = 0;
  kestrel::CachingAllocator make(std::size_t capacity) {
    return kestrel::CachingAllocator(std::make_unique<FakeRawMemory>(capacity, &allocs, &frees, &syncs));
  }
};

kestrel::StreamHandle stream_id(std::uintptr_t i) { return reinterpret_cast<kestrel::StreamHandle>(i); }
}  // namespace

TEST(SizeClass, RoundsSmallToHalfKiBAndLargeToAQuarterPowerOfTwoAtMostTwoMiB) {
  using kestrel::allocation_size_class;
  constexpr std::size_t MiB = std::size_t(1) << 20;
  EXPECT_EQ(allocation_size_class(0), 0u);
  EXPECT_EQ(allocation_size_class(1), 512u);
  EXPECT_EQ(allocation_size_class(512), 512u);
  EXPECT_EQ(allocation_size_class(513), 1024u);
  EXPECT_EQ(allocation_size_class(MiB - 1), MiB);
  EXPECT_EQ(allocation_size_class(MiB), MiB);
  EXPECT_EQ(allocation_size_class(MiB + 1), MiB + MiB / 4);
  EXPECT_EQ(allocation_size_class(2 * MiB + 1), 2 * MiB + MiB / 2);
  EXPECT_EQ(allocation_size_class(8 * MiB + 1), 10 * MiB);
  EXPECT_EQ(allocation_size_class(9 * MiB), 10 * MiB);  // steps stop growing at 2 MiB
  EXPECT_EQ(allocation_size_class(std::size_t(2231) * 1000 * 1000), 2128 * MiB) << "a ResNet-56 arena wastes < 2 MiB";
  for (std::size_t b = 1; b < (std::size_t(8) << 30); b = b * 3 + 7) {
    const std::size_t c = allocation_size_class(b);
    EXPECT_GE(c, b);
    EXPECT_LT(c - b, b < MiB ? 512u : 2 * MiB) << b;
    if (b >= MiB) {
      EXPECT_LT(c - b, b / 4) << b;  // and below a quarter of the request
    }
  }
}

// Within a step of SIZE_MAX, rounding up wrapped around to a tiny class (2^64 - 2 bytes, a
// Shape{INT64_MAX} bf16 tensor, became class 0), and the backend was asked for 0 bytes.
TEST(SizeClass, NeverRoundsARequestDownNearTheTopOfSizeT) {
  using kestrel::allocation_size_class;
  constexpr std::size_t kMax = std::numeric_limits<std::size_t>::max();
  for (std::size_t b : {kMax, kMax - 1, kMax - 3, kMax - (std::size_t(1) << 20), kMax - (std::size_t(2) << 20) + 2})
    EXPECT_GE(allocation_size_class(b), b) << b;
}

TEST(CachingAllocator, ARequestNearTheTopOfSizeTIsOutOfMemoryNotAZeroByteBlock) {
  Fixture f;
  auto a = f.make(1 << 30);
  void* p = nullptr;
  EXPECT_THROW(p = a.allocate(std::numeric_limits<std::size_t>::max() - 1, stream_id(1)),
               kestrel::OutOfMemoryError);
  EXPECT_EQ(f.allocs, 0) << "the backend handed out a block for a 2^64 - 2 byte request";
  if (p != nullptr) a.deallocate(p);
}

TEST(CachingAllocator, ReusesFreedBlocksOfTheSameClassOnTheSameStream) {
  Fixture f;
  auto a = f.make(1 << 30);
  void* p = a.allocate(1000, stream_id(1));
  a.deallocate(p);
  void* q = a.allocate(900, stream_id(1));  // same 1024-byte class
  EXPECT_EQ(p, q);
  EXPECT_EQ(f.allocs, 1);
  EXPECT_EQ(a.stats().cache_hits, 1u);
  void* r = a.allocate(900, stream_id(2));  // another stream never gets that block
  EXPECT_NE(r, q);
  EXPECT_EQ(f.allocs, 2);
  a.deallocate(q);
  a.deallocate(r);
}

TEST(CachingAllocator, TracksCurrentPeakAndReservedBytes) {
  Fixture f;
  auto a = f.make(1 << 30);
  void* p = a.allocate(4096, stream_id(1));
  void* q = a.allocate(10000, stream_id(1));  // 10240 after rounding
  auto s = a.stats();
  EXPECT_EQ(s.current_bytes, 4096u + 10240u);
  EXPECT_EQ(s.peak_bytes, 4096u + 10240u);
  EXPECT_EQ(s.reserved_bytes, 4096u + 10240u);
  a.deallocate(q);
  s = a.stats();
  EXPECT_EQ(s.current_bytes, 4096u);
  EXPECT_EQ(s.peak_bytes, 4096u + 10240u);
  EXPECT_EQ(s.reserved_bytes, 4096u + 10240u) << "freed blocks stay cached";
  a.reset_peak();
  EXPECT_EQ(a.stats().peak_bytes, 4096u);
  a.release_cached();
  s = a.stats();
  EXPECT_EQ(s.reserved_bytes, 4096u);
  EXPECT_EQ(f.frees, 1);
  EXPECT_GE(f.syncs, 1) << "cached blocks are released only after synchronising";
  a.deallocate(p);
  EXPECT_EQ(a.allocate(0, stream_id(1)), nullptr);
}

// Each counter moves with its event and the peaks are maxima: a smaller block after a larger one
// was freed and released keeps both peaks, and reset_peak() brings both down to what is held now.
// Releasing an empty cache costs no device synchronisation; a deallocate of nullptr is a no-op,
// with no warning; an allocator destroyed with a block still in use frees it and says so.
TEST(CachingAllocator, CountersAndPeaksFollowEveryEvent) {
  Fixture f;
  {
    auto a = f.make(1 << 30);
    a.deallocate(a.allocate(8192, stream_id(1)));
    a.release_cached();
    (void)a.allocate(1024, stream_id(1));  // still in use when the allocator goes
    auto s = a.stats();
    EXPECT_EQ(s.allocations, 2u);
    EXPECT_EQ(s.backend_allocations, 2u);
    EXPECT_EQ(s.reserved_bytes, 1024u);
    EXPECT_EQ(s.peak_bytes, 8192u);
    EXPECT_EQ(s.peak_reserved_bytes, 8192u);
    a.reset_peak();
    s = a.stats();
    EXPECT_EQ(s.peak_bytes, 1024u);
    EXPECT_EQ(s.peak_reserved_bytes, 1024u);
    const int syncs = f.syncs;
    a.release_cached();
    EXPECT_EQ(f.syncs, syncs) << "nothing cached, nothing to wait for";
    ::testing::internal::CaptureStderr();
    a.deallocate(nullptr);
    EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");
    ::testing::internal::CaptureStderr();
  }
  const std::string said = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(said.find("allocator for cuda:0 destroyed with 1 block(s) still in use"), std::string::npos) << said;
  EXPECT_EQ(f.frees, 2) << "the block still in use is freed, not leaked";
}

TEST(CachingAllocator, OutOfMemoryStatesRequestedAndFreeBytesAndStaysUsable) {
  Fixture f;
  auto a = f.make(1 << 20);  // 1 MiB device
  void* p = a.allocate(600 * 1024, stream_id(1));
  try {
    (void)a.allocate(700 * 1024, stream_id(1));
    FAIL() << "expected OutOfMemoryError";
  } catch (const kestrel::OutOfMemoryError& e) {
    EXPECT_EQ(e.requested_bytes(), 700u * 1024u);
    EXPECT_EQ(e.free_bytes(), (1u << 20) - 600u * 1024u);
    const std::string what = e.what();
    EXPECT_NE(what.find("out of memory on cuda:0"), std::string::npos) << what;
    EXPECT_NE(what.find("requested 716800 bytes"), std::string::npos) << what;
    EXPECT_NE(what.find("434176 bytes free"), std::string::npos) << what;
  }
  // The message gives the size class asked of the device too.
  const std::string rounded = kestrel::testing::error_of([&] { (void)a.allocate(700 * 1024 + 1, stream_id(1)); });
  EXPECT_NE(rounded.find("requested 716801 bytes (717312 with rounding)"), std::string::npos) << rounded;
  EXPECT_NE(rounded.find("this allocator holds 614400 bytes in use"), std::string::npos) << rounded;
  EXPECT_EQ(a.stats().ooms, 2u);
  EXPECT_EQ(a.stats().current_bytes, 600u * 1024u) << "a failed request changes nothing";
  void* q = a.allocate(300 * 1024, stream_id(1));  // still usable
  EXPECT_NE(q, nullptr);
  a.deallocate(p);
  a.deallocate(q);
}

TEST(CachingAllocator, ReleasesTheCacheAndRetriesBeforeGivingUp) {
  Fixture f;
  auto a = f.make(1 << 20);
  void* p = a.allocate(700 * 1024, stream_id(1));
  a.deallocate(p);  // cached: the device is "full" of a free block
  void* q = a.allocate(800 * 1024, stream_id(1));  // different class: needs the cache released
  EXPECT_NE(q, nullptr);
  EXPECT_EQ(f.frees, 1);
  a.deallocate(q);
}

// A backend failure that is not out of memory (CUDA: a sticky fault of an earlier kernel that
// cudaMalloc reports) reaches the caller as itself, not as OutOfMemoryError, and costs no
// release of the cache; the allocator stays usable.
TEST(CachingAllocator, ABackendFaultIsReportedAsItselfNotAsOutOfMemory) {
  int allocs = 0, frees = 0, syncs = 0;
  auto raw = std::make_unique<FakeRawMemory>(1 << 20, &allocs, &frees, &syncs);
  FakeRawMemory* fake = raw.get();
  kestrel::CachingAllocator a(std::move(raw));
  a.deallocate(a.allocate(4096, stream_id(1)));  // one cached block
  fake->fault = true;
  try {
    (void)a.allocate(8192, stream_id(1));
    ADD_FAILURE() << "the fault was swallowed";
  } catch (const kestrel::OutOfMemoryError& e) {
    ADD_FAILURE() << "reported as out of memory: " << e.what();
  } catch (const kestrel::Error& e) {
    EXPECT_NE(std::string(e.what()).find("sticky fault"), std::string::npos) << e.what();
  }
  EXPECT_EQ(a.stats().ooms, 0u);
  EXPECT_EQ(frees, 0) << "the cache was released for a failure that is not out of memory";
  fake->fault = false;
  void* p = a.allocate(8192, stream_id(1));
  EXPECT_NE(p, nullptr);
  a.deallocate(p);
}

TEST(CpuAllocator, AlignsTo64BytesAndCounts) {
  kestrel::CpuAllocator a;
  std::set<void*> seen;
  for (std::size_t n : {1u, 63u, 64u, 1000u, 1u << 20}) {
    void* p = a.allocate(n, nullptr);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % 64, 0u);
    seen.insert(p);
  }
  EXPECT_EQ(a.stats().allocations, 5u);
  EXPECT_EQ(a.stats().current_bytes, 64u + 64u + 64u + 1024u + (1u << 20));
  for (void* p : seen) a.deallocate(p);
  EXPECT_EQ(a.stats().current_bytes, 0u);
}

TEST(CpuAllocator, ImpossibleRequestRaisesOutOfMemory) {
  kestrel::CpuAllocator a;
  EXPECT_THROW((void)a.allocate(std::size_t(1) << 62, nullptr), kestrel::OutOfMemoryError);
  EXPECT_EQ(a.stats().ooms, 1u);
}

// A request whose rounding up to 64 bytes wraps around size_t is out of memory, not a 0-byte
// block handed out for it; the allocator stays usable.
TEST(CpuAllocator, ARequestThatWrapsWhenRoundedIsOutOfMemory) {
  kestrel::CpuAllocator a;
  for (std::size_t n : {std::numeric_limits<std::size_t>::max(), std::numeric_limits<std::size_t>::max() - 62})
    EXPECT_THROW((void)a.allocate(n, nullptr), kestrel::OutOfMemoryError) << n;
  EXPECT_EQ(a.stats().ooms, 2u);
  EXPECT_EQ(a.stats().allocations, 0u);
  void* p = a.allocate(100, nullptr);
  EXPECT_NE(p, nullptr);
  a.deallocate(p);
}

// Every counter of AllocatorStats through allocations, frees and reset_peak (the CPU allocator
// caches nothing: reserved follows in use, and each allocation is a backend allocation). A
// zero-byte request returns nullptr and counts nothing (allocator.h's contract).
TEST(CpuAllocator, StatsFollowAllocationsFreesAndPeakResets) {
  kestrel::CpuAllocator a;
  // {allocations, current, peak}; backend allocations, reserved and peak reserved must equal them.
  const auto expect = [&](std::uint64_t allocations, std::size_t current, std::size_t peak) {
    const kestrel::AllocatorStats st = a.stats();
    EXPECT_EQ(st.allocations, allocations);
    EXPECT_EQ(st.backend_allocations, allocations);
    EXPECT_EQ(st.current_bytes, current);
    EXPECT_EQ(st.reserved_bytes, current);
    EXPECT_EQ(st.peak_bytes, peak);
    EXPECT_EQ(st.peak_reserved_bytes, peak);
  };
  EXPECT_EQ(a.allocate(0, nullptr), nullptr);
  expect(0, 0, 0);
  void* p = a.allocate(100, nullptr);   // 128 bytes
  void* q = a.allocate(1000, nullptr);  // 1024
  expect(2, 1152, 1152);
  a.deallocate(q);
  expect(2, 128, 1152);
  a.reset_peak();
  expect(2, 128, 128);
  void* r = a.allocate(64, nullptr);
  a.deallocate(r);
  a.deallocate(p);
  expect(3, 0, 192);
}
