#include "kestrel/core/context.h"

#include <cublas_v2.h>
#include <cudnn.h>

#include "kestrel/core/cublas_check_internal.h"
#include "kestrel/core/cuda_check_internal.h"
#include "kestrel/core/cudnn_check_internal.h"
#include "kestrel/core/device_guard_internal.h"
#include "kestrel/kernels/conv.h"

namespace kestrel {
namespace {
std::shared_ptr<Allocator> allocator_for(Device d) {
  // Each CPU context has its own (uncached) allocator, so its statistics - the trainer's peak
  // memory - count its own tensors only, as a CUDA context's do; host tensors made without a
  // context (Tensor::empty_cpu) use the process-wide cpu_allocator().
  if (d.is_cpu()) return std::make_shared<CpuAllocator>();
  return make_cuda_allocator(d);  // checks that the device exists
}
}  // namespace

Context::Context(Device device)
    : device_(device), allocator_(allocator_for(device)), stream_(device) {}

Context::~Context() {
  DeviceGuard guard(device_);
  // A CPU context has no stream to wait for (a null handle would mean the GPU's legacy stream).
  const bool cuda = device_.is_cuda();
  if (workspace_ != nullptr) {
    if (cuda) (void)cudaStreamSynchronize(stream_.handle());
    allocator_->deallocate(workspace_);
  }
  if (conv_plans_) {
    if (cuda) (void)cudaStreamSynchronize(stream_.handle());  // no plan may still run when it goes
    conv_plans_.reset();  // and plans go before the handle they were built with
  }
  if (cudnn_ != nullptr) (void)cudnnDestroy(cudnn_);
  if (cublas_ != nullptr) (void)cublasDestroy(cublas_);
}

cudnnContext* Context::cudnn() {
  KESTREL_CHECK(device_.is_cuda(), "cuDNN is only available on CUDA contexts, not ", device_.to_string());
  if (cudnn_ == nullptr) {
    const std::size_t v = cudnnGetVersion();
    KESTREL_CHECK(v >= 90200, "cuDNN ", v, " is too old: Kestrel needs 9.2 or newer");
    DeviceGuard guard(device_);
    cudnnHandle_t h = nullptr;
    KESTREL_CUDNN_CHECK(cudnnCreate(&h));
    cudnn_ = h;
  }
  return cudnn_;
}

cublasContext* Context::cublas() {
  KESTREL_CHECK(device_.is_cuda(), "cuBLAS is only available on CUDA contexts, not ", device_.to_string());
  if (cublas_ == nullptr) {
    DeviceGuard guard(device_);
    cublasHandle_t h = nullptr;
    KESTREL_CUBLAS_CHECK(cublasCreate(&h));
    cublas_ = h;
  }
  return cublas_;
}

cuda::ConvPlanCache& Context::conv_plans() {
  if (!conv_plans_) conv_plans_ = std::make_unique<cuda::ConvPlanCache>(conv_policy_, allocator_.get());
  return *conv_plans_;
}

void Context::set_conv_policy(ConvPolicy policy) {
  KESTREL_CHECK(!conv_plans_, "set_conv_policy must come before the first conv_plans(): plans "
                "already built under the old policy would stay in use");
  conv_policy_ = policy;
}

void* Context::workspace(std::size_t bytes) {
  if (bytes <= workspace_bytes_) return workspace_;
  KESTREL_CHECK(bytes <= workspace_limit_, "workspace request of ", bytes,
                " bytes exceeds the context's limit of ", workspace_limit_, " bytes");
  // Freed in stream order: work queued on stream() that still uses the old buffer finishes
  // before the caching allocator hands the memory to anyone on the same stream.
  allocator_->deallocate(workspace_);
  workspace_ = nullptr;
  workspace_bytes_ = 0;
  workspace_ = allocator_->allocate(bytes, stream_.handle());
  workspace_bytes_ = bytes;
  return workspace_;
}

std::string Context::description() const {
  if (device_.is_cpu()) return "cpu";
  return device_.to_string() + " " + device_description(device_) + ", cuDNN " +
         std::to_string(cudnn_runtime_version());
}

std::size_t cudnn_runtime_version() noexcept { return cudnnGetVersion(); }

}  // namespace kestrel
