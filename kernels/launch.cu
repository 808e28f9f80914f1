#include "kestrel/kernels/launch_internal.cuh"

namespace kestrel::cuda_detail {

int current_device() {
  int dev = 0;
  KESTREL_CUDA_CHECK(cudaGetDevice(&dev));
  return dev;
}

int sm_count(int dev) {
  static PerDeviceCache cache;  // device properties do not change within a process
  return cache.get(dev, [dev] {
    int n = 0;
    KESTREL_CUDA_CHECK(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev));
    return n;
  });
}

}  // namespace kestrel::cuda_detail
