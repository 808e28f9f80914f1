// kernels/per_device_cache_internal.h: what the CUDA launchers cache about a device (its
// multiprocessor count, blocks of a kernel a multiprocessor holds) is computed once per device,
// kept apart per device, and checked.
#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "kestrel/core/error.h"
#include "kestrel/kernels/per_device_cache_internal.h"

using kestrel::cuda_detail::PerDeviceCache;

TEST(PerDeviceCache, ComputesOncePerDeviceAndKeepsDevicesApart) {
  PerDeviceCache cache;
  int calls = 0;
  auto value_of = [&](int device, int value) {
    return cache.get(device, [&] {
      ++calls;
      return value;
    });
  };
  EXPECT_EQ(value_of(0, 132), 132);
  EXPECT_EQ(value_of(1, 108), 108);  // another architecture: its own value, not device 0's
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(value_of(0, 999), 132);  // cached: the second compute is not called
  EXPECT_EQ(value_of(1, 999), 108);
  EXPECT_EQ(calls, 2);
}

TEST(PerDeviceCache, DevicesPastTheTableAreComputedEachTime) {
  PerDeviceCache cache;
  int calls = 0;
  const int beyond = PerDeviceCache::kMaxDevices;
  for (int i = 1; i <= 3; ++i)
    EXPECT_EQ(cache.get(beyond, [&] { return ++calls; }), i);
  EXPECT_EQ(cache.get(-1, [&] { return ++calls; }), 4);
  EXPECT_EQ(cache.get(PerDeviceCache::kMaxDevices - 1, [] { return 7; }), 7);  // the last slot caches
  EXPECT_EQ(cache.get(PerDeviceCache::kMaxDevices - 1, [] { return 8; }), 7);
}

TEST(PerDeviceCache, ANonPositiveValueIsAnErrorAndIsNotCached) {
  PerDeviceCache cache;
  try {
    cache.get(2, [] { return 0; });
    FAIL() << "expected kestrel::Error";
  } catch (const kestrel::Error& e) {
    EXPECT_NE(std::string(e.what()).find("device 2 gave 0"), std::string::npos) << e.what();
  }
  EXPECT_EQ(cache.get(2, [] { return 5; }), 5);
}

TEST(PerDeviceCache, ThreadsThatMissTogetherAllSeeTheDevicesValue) {
  PerDeviceCache cache;
  std::atomic<int> calls{0};
  std::vector<int> seen(16, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 16; ++t)
    threads.emplace_back([&, t] {
      seen[static_cast<std::size_t>(t)] = cache.get(t % 4, [&] {
        calls.fetch_add(1);
        return 10 + t % 4;
      });
    });
  for (std::thread& th : threads) th.join();
  for (int t = 0; t < 16; ++t) EXPECT_EQ(seen[static_cast<std::size_t>(t)], 10 + t % 4) << "thread " << t;
  EXPECT_GE(calls.load(), 4);  // at least once per device; more only when threads missed together
  EXPECT_LE(calls.load(), 16);
}
