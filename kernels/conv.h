// 2-D convolutions on the GPU through cuDNN's graph (backend) API. CPU twins: kernels/cpu/conv.h.
//
// ConvPlanCache owns cuDNN execution plans, one per (op, Conv2dDesc, pointer alignments, handle),
// built on first use and kept for the cache's life (a plan costs 1-10 ms to find, more for
// runtime-compiled engines). It is not thread-safe: one per Context (Context::conv_plans()).
// Constructing one needs no GPU; building a plan needs a cuDNN handle (cuDNN >= 9.2).
//
// The launchers compute y = conv(x, w), dx = conv_backward_data(dy, w) and dw =
// conv_backward_filter(x, dy) (alpha 1, beta 0: outputs are overwritten), ordered on `stream`.
// `workspace` must hold at least workspace_bytes(...) bytes for the same op, desc and pointer
// alignments and stay alive until the stream passes the call. All pointers are device memory in
// `desc.dtype` and `desc.layout` (filters KCRS for NCHW, KRSC for NHWC). Invalid descs, a too
// small workspace and "no cuDNN engine works" raise kestrel::Error before anything is launched;
// the last names the op, the desc and cuDNN's own message.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <memory>
#include <string>

#include "kestrel/kernels/conv_desc.h"

struct cudnnContext;

namespace kestrel {
class Allocator;
}

namespace kestrel::cuda {

class ConvPlanCache {
 public:
  // `scratch` (may be null: cudaMalloc) provides autotuning's trial tensors and workspace, so
  // they count in that allocator's statistics and reuse its cache (Context passes its own); it
  // must outlive the cache.
  explicit ConvPlanCache(ConvPolicy policy = {}, Allocator* scratch = nullptr);
  ~ConvPlanCache();
  ConvPlanCache(const ConvPlanCache&) = delete;
  ConvPlanCache& operator=(const ConvPlanCache&) = delete;

  // Scratch bytes the plan for (op, d) needs, building and caching the plan if needed. Assumes
  // 16-byte aligned tensors (any cudaMalloc'd or caching-allocator block); the second form takes
  // the three pointers the launcher will bind, in the launcher's order. A cache miss under
  // ConvPolicy::autotune times the candidates on `stream`, the stream the convolutions will run
  // on: the handle is set to it (null is the legacy default stream, as for cudnnSetStream). It is
  // required, not defaulted: a handle left on another context's, or a destroyed, stream would
  // have autotuning allocate and time there.
  std::size_t workspace_bytes(cudnnContext* handle, ConvOp op, const Conv2dDesc& d, cudaStream_t stream);
  std::size_t workspace_bytes(cudnnContext* handle, ConvOp op, const Conv2dDesc& d,
                              const void* a, const void* b, const void* c, cudaStream_t stream);

  std::size_t size() const noexcept;  // plans cached
  std::size_t hits() const noexcept;  // lookups answered from the cache
  // Plans cached that ConvPolicy::autotune was asked to time but could not (no memory for the
  // trial tensors, a CUDA graph being captured, no candidate ran, ...): each is cuDNN's first
  // choice instead, which may be slower. last_untuned() names the latest one's op, desc and
  // reason ("" when none). Autotuning never raises; this is how its fallback is seen.
  std::size_t untuned() const noexcept;
  std::string last_untuned() const;
  const ConvPolicy& policy() const noexcept;

  struct Impl;  // cuDNN objects; defined in kernels/conv_plan_internal.h
  Impl& impl() noexcept { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
};

void conv2d_forward(ConvPlanCache& cache, cudnnContext* handle, const Conv2dDesc& d,
                    const void* x, const void* w, void* y, void* workspace,
                    std::size_t workspace_bytes, cudaStream_t stream);
void conv2d_backward_data(ConvPlanCache& cache, cudnnContext* handle, const Conv2dDesc& d,
                          const void* dy, const void* w, void* dx, void* workspace,
                          std::size_t workspace_bytes, cudaStream_t stream);
void conv2d_backward_filter(ConvPlanCache& cache, cudnnContext* handle, const Conv2dDesc& d,
                            const void* x, const void* dy, void* dw, void* workspace,
                            std::size_t workspace_bytes, cudaStream_t stream);

}  // namespace kestrel::cuda
