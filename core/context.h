// Context: everything Kestrel needs on one device, created once and passed explicitly (no
// global handles). It owns the device allocator, a stream, the cuDNN and cuBLAS handles
// (created on first use, so a context that never convolves never pays for cuDNN), and a
// growable workspace shared by the kernels that need scratch memory.
//
// Thread-safety: a Context is used by one thread at a time (cuDNN's recommended model).
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "kestrel/core/allocator.h"
#include "kestrel/core/device.h"
#include "kestrel/core/stream.h"
#include "kestrel/kernels/conv_desc.h"

struct cudnnContext;
struct cublasContext;

namespace kestrel {
namespace cuda {
class ConvPlanCache;
}  // namespace cuda

class Context {
 public:
  // Raises kestrel::Error("no CUDA device: ...") for a CUDA device that does not exist.
  explicit Context(Device device = Device::cpu());
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  Device device() const noexcept { return device_; }
  const std::shared_ptr<Allocator>& allocator() const noexcept { return allocator_; }
  const Stream& stream() const noexcept { return stream_; }

  // The handles, created on first use (CUDA contexts only; raises on the CPU). Callers set the
  // handle's stream before each use (cudnnSetStream / cublasSetStream).
  cudnnContext* cudnn();
  cublasContext* cublas();

  // The cuDNN convolution plan cache (kernels/conv.h), created on first use with the policy set
  // by set_conv_policy (defaults: first engine that builds, TF32 off, non-deterministic engines
  // allowed, 256 MiB workspace cap). set_conv_policy raises once the cache exists.
  cuda::ConvPlanCache& conv_plans();
  void set_conv_policy(ConvPolicy policy);
  const ConvPolicy& conv_policy() const noexcept { return conv_policy_; }

  // Scratch memory of at least `bytes`, valid for work ordered on stream() until the next call
  // that grows it (growing frees the old buffer: a captured CUDA Graph that baked in the old
  // pointer must not be replayed after that). Raises kestrel::Error above workspace_limit().
  // The executor plans its own workspaces and does not use this one.
  void* workspace(std::size_t bytes);
  std::size_t workspace_bytes() const noexcept { return workspace_bytes_; }
  std::size_t workspace_limit() const noexcept { return workspace_limit_; }
  void set_workspace_limit(std::size_t bytes) noexcept { workspace_limit_ = bytes; }

  // "cuda:0 NVIDIA H200 (sm_90, ...), cuDNN 9.14.0" or "cpu".
  std::string description() const;

 private:
  Device device_;
  std::shared_ptr<Allocator> allocator_;
  Stream stream_;
  cudnnContext* cudnn_ = nullptr;
  cublasContext* cublas_ = nullptr;
  ConvPolicy conv_policy_;
  std::unique_ptr<cuda::ConvPlanCache> conv_plans_;  // plans refer to cudnn_: freed before it
  void* workspace_ = nullptr;
  std::size_t workspace_bytes_ = 0;
  std::size_t workspace_limit_ = std::size_t(256) << 20;  // 256 MiB
};

// cuDNN version of the loaded library as MAJOR*10000 + MINOR*100 + PATCH (e.g. 91400).
std::size_t cudnn_runtime_version() noexcept;

}  // namespace kestrel
