#include "kestrel/kernels/launch_internal.cuh"

namespace kestrel::cuda_detail {

int sm_count() {
  constexpr int kMaxDevices = 64;
  static int cached[kMaxDevices] = {0};  // device properties do not change within a process
  int dev = 0;
  KESTREL_CUDA_CHECK(cudaGetDevice(&dev));
  if (dev < kMaxDevices && cached[dev] > 0) return cached[dev];
  int n = 0;
  KESTREL_CUDA_CHECK(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev));
  if (dev < kMaxDevices) cached[dev] = n;
  return n;
}

}  // namespace kestrel::cuda_detail
