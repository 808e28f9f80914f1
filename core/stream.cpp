#include "kestrel/core/stream.h"

#include <chrono>
#include <utility>

#include "kestrel/core/cuda_check_internal.h"
#include "kestrel/core/device_guard_internal.h"

namespace kestrel {

Stream::Stream(Device device) : device_(device) {
  if (device.is_cpu()) return;
  require_device(device);
  DeviceGuard guard(device);
  cudaStream_t s = nullptr;
  KESTREL_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  handle_ = s;
}

Stream::~Stream() {
  if (handle_ != nullptr) {
    DeviceGuard guard(device_);
    (void)cudaStreamDestroy(handle_);
  }
}

// A moved-from stream is a CPU one (no handle), not a CUDA stream whose null handle would mean
// the device's legacy default stream.
Stream::Stream(Stream&& o) noexcept
    : device_(std::exchange(o.device_, Device::cpu())), handle_(std::exchange(o.handle_, nullptr)) {}

Stream& Stream::operator=(Stream&& o) noexcept {
  if (this != &o) {
    Stream tmp(std::move(*this));
    device_ = std::exchange(o.device_, Device::cpu());
    handle_ = std::exchange(o.handle_, nullptr);
  }
  return *this;
}

void Stream::synchronize() const {
  if (handle_ == nullptr) return;
  KESTREL_CUDA_CHECK(cudaStreamSynchronize(handle_));
}

Event::Event(Device device, bool timing) : device_(device) {
  require_device(device);
  KESTREL_CHECK(device.is_cuda(), "events exist only on CUDA devices, got ", device.to_string());
  DeviceGuard guard(device);
  cudaEvent_t e = nullptr;
  KESTREL_CUDA_CHECK(cudaEventCreateWithFlags(&e, timing ? cudaEventDefault : cudaEventDisableTiming));
  handle_ = e;
}

Event::~Event() {
  if (handle_ != nullptr) (void)cudaEventDestroy(handle_);
}

Event::Event(Event&& o) noexcept : device_(o.device_), handle_(std::exchange(o.handle_, nullptr)) {}

Event& Event::operator=(Event&& o) noexcept {
  if (this != &o) {
    Event tmp(std::move(*this));
    device_ = o.device_;
    handle_ = std::exchange(o.handle_, nullptr);
  }
  return *this;
}

void Event::record(const Stream& stream) { KESTREL_CUDA_CHECK(cudaEventRecord(handle_, stream.handle())); }
void Event::synchronize() const { KESTREL_CUDA_CHECK(cudaEventSynchronize(handle_)); }
void Event::wait_on(const Stream& stream) const {
  KESTREL_CUDA_CHECK(cudaStreamWaitEvent(stream.handle(), handle_, 0));
}

float Event::elapsed_ms(const Event& start, const Event& end) {
  float ms = 0.f;
  KESTREL_CUDA_CHECK(cudaEventElapsedTime(&ms, start.handle_, end.handle_));
  return ms;
}

}  // namespace kestrel
