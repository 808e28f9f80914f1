#include "kestrel/kernels/conv.h"

#include <string>

#include "kestrel/core/cudnn_check_internal.h"
#include "kestrel/kernels/conv_plan_internal.h"

namespace kestrel::cuda {
namespace {
using cudnn_detail::ConvAlignment;
using cudnn_detail::ConvPlan;

// Puts the handle on `stream` before any plan lookup: a cache miss under ConvPolicy::autotune
// times the candidates on the handle's stream and skips timing while that stream is being
// captured into a CUDA Graph, so the handle must be on the caller's stream, not on whatever stream
// an earlier call left it.
void bind_stream(cudnnHandle_t handle, ConvOp op, cudaStream_t stream) {
  KESTREL_CHECK(handle != nullptr, "conv2d ", conv_op_name(op), ": the cuDNN handle is null");
  KESTREL_CUDNN_CHECK(cudnnSetStream(handle, stream));
}

void run(ConvPlanCache& cache, cudnnHandle_t handle, ConvOp op, const Conv2dDesc& d,
         const void* a, const void* b, void* c, void* workspace, std::size_t workspace_bytes,
         cudaStream_t stream) {
  validate(d);
  const ConvAlignment align = cudnn_detail::launcher_alignment(op, d, a, b, c);
  bind_stream(handle, op, stream);
  const ConvPlan& plan = cache.impl().get(handle, op, d, align);
  const auto needed = static_cast<std::size_t>(plan.workspace);
  KESTREL_CHECK(workspace_bytes >= needed, "conv2d ", conv_op_name(op), " of ", to_string(d),
                " needs ", needed, " workspace bytes, got ", workspace_bytes,
                " (ask ConvPlanCache::workspace_bytes with the same pointers)");
  KESTREL_CHECK(needed == 0 || workspace != nullptr, "conv2d ", conv_op_name(op),
                ": workspace is null but ", needed, " bytes are needed");
  const cudnn_detail::ConvSlots s = cudnn_detail::slots_of(op, a, b, c);
  const cudnnStatus_t st =
      cudnn_detail::execute_plan(handle, plan.plan, s.x, s.w, s.y, needed > 0 ? workspace : nullptr);
  if (st != CUDNN_STATUS_SUCCESS) {
    const std::string call = std::string("cudnnBackendExecute(") + conv_op_name(op) + ", " +
                             to_string(d) + ", engine " + std::to_string(plan.engine_index) + ")";
    detail::throw_cudnn_error(st, call.c_str(), detail::short_file(__FILE__), __LINE__);
  }
}
}  // namespace

ConvPlanCache::ConvPlanCache(ConvPolicy policy, Allocator* scratch) : impl_(std::make_unique<Impl>()) {
  impl_->policy = policy;
  impl_->scratch = scratch;
}

ConvPlanCache::~ConvPlanCache() = default;

std::size_t ConvPlanCache::workspace_bytes(cudnnContext* handle, ConvOp op, const Conv2dDesc& d,
                                           cudaStream_t stream) {
  validate(d);
  bind_stream(handle, op, stream);
  return static_cast<std::size_t>(impl_->get(handle, op, d, ConvAlignment{}).workspace);
}

std::size_t ConvPlanCache::workspace_bytes(cudnnContext* handle, ConvOp op, const Conv2dDesc& d,
                                           const void* a, const void* b, const void* c, cudaStream_t stream) {
  validate(d);
  const ConvAlignment align = cudnn_detail::launcher_alignment(op, d, a, b, c);
  bind_stream(handle, op, stream);
  return static_cast<std::size_t>(impl_->get(handle, op, d, align).workspace);
}

std::size_t ConvPlanCache::size() const noexcept { return impl_->plans.size(); }
std::size_t ConvPlanCache::hits() const noexcept { return impl_->hits; }
std::size_t ConvPlanCache::untuned() const noexcept { return impl_->untuned; }
std::string ConvPlanCache::last_untuned() const { return impl_->last_untuned; }
const ConvPolicy& ConvPlanCache::policy() const noexcept { return impl_->policy; }

void conv2d_forward(ConvPlanCache& cache, cudnnContext* handle, const Conv2dDesc& d,
                    const void* x, const void* w, void* y, void* workspace,
                    std::size_t workspace_bytes, cudaStream_t stream) {
  run(cache, handle, ConvOp::kForward, d, x, w, y, workspace, workspace_bytes, stream);
}

void conv2d_backward_data(ConvPlanCache& cache, cudnnContext* handle, const Conv2dDesc& d,
                          const void* dy, const void* w, void* dx, void* workspace,
                          std::size_t workspace_bytes, cudaStream_t stream) {
  run(cache, handle, ConvOp::kBackwardData, d, dy, w, dx, workspace, workspace_bytes, stream);
}

void conv2d_backward_filter(ConvPlanCache& cache, cudnnContext* handle, const Conv2dDesc& d,
                            const void* x, const void* dy, void* dw, void* workspace,
                            std::size_t workspace_bytes, cudaStream_t stream) {
  run(cache, handle, ConvOp::kBackwardFilter, d, x, dy, dw, workspace, workspace_bytes, stream);
}

}  // namespace kestrel::cuda
