// A positive int per CUDA device, computed once per device and shared by every thread: what the
// launchers cache about the device they launch on (its multiprocessor count, how many blocks of
// a kernel one multiprocessor holds). Host code only, no CUDA: the CPU tests exercise it.
//
// The value is keyed by the device, not cached once per process, because a process may drive
// devices of different architectures (an A100 and an H100 hold different numbers of blocks of
// the same kernel). Two threads that miss at once both compute the value, which is the same
// device property either way, and the slot is atomic, so there is no data race.
#pragma once

#include <atomic>

#include "kestrel/core/error.h"

namespace kestrel::cuda_detail {

class PerDeviceCache {
 public:
  static constexpr int kMaxDevices = 64;  // devices at or past it are computed on every call

  // The value for `device`: the cached one, or `compute()` (which must return > 0), cached.
  template <typename Compute>
  int get(int device, Compute&& compute) {
    const bool cacheable = device >= 0 && device < kMaxDevices;
    if (cacheable) {
      const int v = slots_[device].load(std::memory_order_relaxed);
      if (v > 0) return v;
    }
    const int v = compute();
    KESTREL_CHECK(v > 0, "PerDeviceCache: device ", device, " gave ", v, ", expected a positive value");
    if (cacheable) slots_[device].store(v, std::memory_order_relaxed);
    return v;
  }

 private:
  std::atomic<int> slots_[kMaxDevices] = {};
};

}  // namespace kestrel::cuda_detail
