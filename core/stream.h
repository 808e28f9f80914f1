// RAII owners for CUDA streams and events. Move-only; destructors never throw.
// A Stream on the CPU device holds no handle: CPU work is synchronous, so synchronize() is a
// no-op. Every kernel launcher in Kestrel takes its stream explicitly (handle()).
#pragma once

#include "kestrel/core/allocator.h"
#include "kestrel/core/device.h"

struct CUevent_st;

namespace kestrel {

class Stream {
 public:
  // A new non-blocking stream on `device` (raises "no CUDA device: ..." without a GPU).
  explicit Stream(Device device = Device::cpu());
  ~Stream();
  Stream(Stream&& o) noexcept;
  Stream& operator=(Stream&& o) noexcept;
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  Device device() const noexcept { return device_; }
  StreamHandle handle() const noexcept { return handle_; }  // cudaStream_t; nullptr on the CPU
  void synchronize() const;

 private:
  Device device_;
  StreamHandle handle_ = nullptr;
};

class Event {
 public:
  // An event on `device`; `timing` enables elapsed_ms().
  explicit Event(Device device, bool timing = true);
  ~Event();
  Event(Event&& o) noexcept;
  Event& operator=(Event&& o) noexcept;
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;

  void record(const Stream& stream);
  void synchronize() const;
  // Makes `stream` wait for this event's last record.
  void wait_on(const Stream& stream) const;
  // Milliseconds between two recorded, completed events.
  static float elapsed_ms(const Event& start, const Event& end);
  CUevent_st* handle() const noexcept { return handle_; }

 private:
  Device device_;
  CUevent_st* handle_ = nullptr;
};

}  // namespace kestrel
