// Autotuning of convolution plans (ConvPolicy::autotune): each candidate runs on zeroed scratch
// tensors and the fastest is kept. Failures make it fall back to cuDNN's first choice, never
// raise (autotuning is an optimisation), but say why: the plan records it and
// ConvPlanCache::untuned() counts it, so a benchmark can tell an untuned plan from a slow one.
#include <cuda_runtime.h>

#include <algorithm>
#include <limits>

#include "kestrel/core/allocator.h"
#include "kestrel/core/error.h"
#include "kestrel/kernels/conv_plan_internal.h"

namespace kestrel::cudnn_detail {
namespace {
constexpr int kTimedRuns = 3;

// One trial buffer: from `alloc` when given (in stream order on `stream`, counted in its
// statistics), otherwise cudaMalloc. Failing to get it is not an error: autotuning is skipped.
class Scratch {
 public:
  Scratch(std::size_t bytes, Allocator* alloc, cudaStream_t stream) : alloc_(alloc) {
    if (bytes == 0) return;
    if (alloc_ != nullptr) {
      try {
        p_ = alloc_->allocate(bytes, stream);
      } catch (...) {  // OutOfMemoryError (the allocator cleared it), a sticky fault, bad_alloc
        p_ = nullptr;
      }
    } else if (cudaMalloc(&p_, bytes) != cudaSuccess) {
      (void)cudaGetLastError();
      p_ = nullptr;
    }
    failed_ = p_ == nullptr;
  }
  ~Scratch() {
    if (p_ == nullptr) return;
    if (alloc_ != nullptr)
      alloc_->deallocate(p_);
    else
      (void)cudaFree(p_);
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  void* get() const noexcept { return p_; }
  bool failed() const noexcept { return failed_; }

 private:
  Allocator* alloc_;
  void* p_ = nullptr;
  bool failed_ = false;
};

class Event {
 public:
  Event() {
    if (cudaEventCreate(&e_) != cudaSuccess) {
      (void)cudaGetLastError();
      e_ = nullptr;
    }
  }
  ~Event() {
    if (e_ != nullptr) (void)cudaEventDestroy(e_);
  }
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  cudaEvent_t get() const noexcept { return e_; }

 private:
  cudaEvent_t e_ = nullptr;
};

// Runs of `plan` between two events: the stream is idle when the first is recorded, so the host's
// work to launch the first run (building the variant pack) falls inside the timing; back-to-back
// runs overlap it with the GPU's work for the later ones and make it a small share.
constexpr int kRunsPerTiming = 4;

// Milliseconds of one run of `plan` (the mean of kRunsPerTiming back to back), or a negative
// value when it fails.
float time_run(cudnnHandle_t handle, const ConvPlan& plan, cudaStream_t stream, void* x, void* w,
               void* y, void* ws, const Event& start, const Event& stop) {
  if (cudaEventRecord(start.get(), stream) != cudaSuccess) return -1.f;
  for (int r = 0; r < kRunsPerTiming; ++r)
    if (execute_plan(handle, plan.plan, x, w, y, ws) != CUDNN_STATUS_SUCCESS) return -1.f;
  float ms = -1.f;
  if (cudaEventRecord(stop.get(), stream) != cudaSuccess ||
      cudaEventSynchronize(stop.get()) != cudaSuccess ||
      cudaEventElapsedTime(&ms, start.get(), stop.get()) != cudaSuccess)
    return -1.f;
  return ms / kRunsPerTiming;
}
}  // namespace

Autotuned fastest_plan(cudnnHandle_t handle, const Conv2dDesc& d,
                       const std::vector<std::unique_ptr<ConvPlan>>& plans, Allocator* scratch) {
  cudaStream_t stream = nullptr;
  if (cudnnGetStream(handle, &stream) != CUDNN_STATUS_SUCCESS)
    return {0, "the cuDNN handle's stream could not be read"};
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  if (cudaStreamIsCapturing(stream, &capture) != cudaSuccess ||
      capture != cudaStreamCaptureStatusNone) {
    (void)cudaGetLastError();
    // No allocations or synchronisation inside a capture.
    return {0, "the stream was being captured into a CUDA graph"};
  }
  const std::size_t element = dtype_size(d.dtype);
  std::int64_t ws_bytes = 0;
  for (const auto& p : plans) ws_bytes = std::max(ws_bytes, p->workspace);
  const std::size_t x_bytes = static_cast<std::size_t>(d.x_elements()) * element;
  const std::size_t w_bytes = static_cast<std::size_t>(d.w_elements()) * element;
  const std::size_t y_bytes = static_cast<std::size_t>(d.y_elements()) * element;
  Scratch x(x_bytes, scratch, stream), w(w_bytes, scratch, stream), y(y_bytes, scratch, stream),
      ws(static_cast<std::size_t>(ws_bytes), scratch, stream);
  if (x.failed() || w.failed() || y.failed() || ws.failed())
    return {0, "no memory for the trial tensors and workspace"};
  Event start, stop;
  if (start.get() == nullptr || stop.get() == nullptr)
    return {0, "the timing events could not be created"};
  // Zeroed inputs: timing does not depend on values, and no NaN slow paths.
  if (cudaMemsetAsync(x.get(), 0, x_bytes, stream) != cudaSuccess ||
      cudaMemsetAsync(w.get(), 0, w_bytes, stream) != cudaSuccess ||
      cudaMemsetAsync(y.get(), 0, y_bytes, stream) != cudaSuccess) {
    (void)cudaGetLastError();
    return {0, "the trial tensors could not be cleared"};
  }
  Autotuned r{0, "no candidate ran"};
  float best_ms = std::numeric_limits<float>::infinity();
  for (std::size_t i = 0; i < plans.size(); ++i) {
    float fastest = std::numeric_limits<float>::infinity();
    bool ok = time_run(handle, *plans[i], stream, x.get(), w.get(), y.get(), ws.get(), start,
                       stop) >= 0.f;  // warm-up
    for (int run = 0; ok && run < kTimedRuns; ++run) {
      const float ms =
          time_run(handle, *plans[i], stream, x.get(), w.get(), y.get(), ws.get(), start, stop);
      ok = ms >= 0.f;
      fastest = std::min(fastest, ms);
    }
    if (!ok) {
      (void)cudaGetLastError();
      continue;
    }
    if (fastest < best_ms) {
      best_ms = fastest;
      r = {i, nullptr};
    }
  }
  // Leave the stream as we found it: nothing of ours may still run when the scratch is freed.
  (void)cudaStreamSynchronize(stream);
  (void)cudaGetLastError();
  return r;
}

}  // namespace kestrel::cudnn_detail
