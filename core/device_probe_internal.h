// Why the CUDA runtime offers no device, in words a user can act on (private header).
#pragma once

#include <cuda_runtime.h>

#include <string>

namespace kestrel::detail {

// The reason for cudaGetDeviceCount's result `e` with `count` devices: "" when there is one.
// The runtime's own text, plus what it means where that text misleads: with no NVIDIA driver
// installed at all it reports cudaErrorInsufficientDriver ("CUDA driver version is insufficient
// for CUDA runtime version"), which reads as if an older driver were there.
std::string cuda_probe_reason(cudaError_t e, int count);

}  // namespace kestrel::detail
