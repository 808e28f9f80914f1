#include "kestrel/core/device.h"

#include <cuda_runtime.h>

#include <cstdio>

#include "kestrel/core/cuda_check_internal.h"
#include "kestrel/core/device_probe_internal.h"
#include "kestrel/core/error.h"
#include "kestrel/core/number_text_internal.h"

namespace kestrel {
namespace detail {
std::string cuda_probe_reason(cudaError_t e, int count) {
  if (e == cudaSuccess) return count > 0 ? std::string() : "the CUDA runtime reports 0 devices";
  std::string r = std::string(cudaGetErrorString(e)) + " (" + cudaGetErrorName(e) + ")";
  if (e == cudaErrorInsufficientDriver)
    r += ": no NVIDIA driver is installed, or it is older than CUDA " + std::to_string(CUDART_VERSION / 1000) +
         " needs";
  else if (e == cudaErrorNoDevice)
    r += ": the driver sees no NVIDIA GPU (check nvidia-smi and CUDA_VISIBLE_DEVICES)";
  return r;
}
}  // namespace detail

namespace {
struct Probe {
  int count = 0;
  std::string reason;
};

Probe probe_cuda() noexcept {
  Probe p;
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) (void)cudaGetLastError();
  else p.count = n;
  try {  // the reason is text (allocates); without memory for it, the count still holds
    p.reason = detail::cuda_probe_reason(e, n);
  } catch (...) {
    p.reason.clear();
  }
  return p;
}

const Probe& cached_probe() noexcept {
  // Immutable after first use: the set of devices does not change within a process.
  static const Probe p = probe_cuda();
  return p;
}
}  // namespace

std::string Device::to_string() const {
  return is_cpu() ? std::string("cpu") : "cuda:" + std::to_string(index);
}

Device parse_device(const std::string& name) {
  if (name == "cpu") return Device::cpu();
  if (name == "cuda") return Device::cuda(0);
  if (name.rfind("cuda:", 0) == 0) {
    const std::string num = name.substr(5);
    // At most 4 digits (no machine has 10000 GPUs): std::stoi would throw std::out_of_range,
    // not kestrel::Error, on a longer number.
    KESTREL_CHECK(!num.empty() && num.size() <= 4 && num.find_first_not_of("0123456789") == std::string::npos,
                  "bad device '", name, "' (expected cpu, cuda or cuda:N, N a device index)");
    return Device::cuda(std::stoi(num));
  }
  KESTREL_FAIL("unknown device '", name, "' (expected cpu, cuda or cuda:N)");
}

int cuda_device_count() noexcept { return cached_probe().count; }

std::string cuda_unavailable_reason() { return cached_probe().reason; }

void require_device(const Device& d) {
  if (d.is_cpu()) return;
  const Probe& p = cached_probe();
  KESTREL_CHECK(p.count > 0, "no CUDA device: ", p.reason);
  KESTREL_CHECK(d.index >= 0 && d.index < p.count, "no CUDA device: ", d.to_string(),
                " requested but only ", p.count, " device(s) exist");
}

std::string device_description(const Device& d) {
  if (d.is_cpu()) return "cpu";
  require_device(d);
  cudaDeviceProp prop{};
  KESTREL_CUDA_CHECK(cudaGetDeviceProperties(&prop, d.index));
  const std::string mem =
      detail::fixed_text(static_cast<double>(prop.totalGlobalMem) / (1024.0 * 1024.0 * 1024.0), 1) + " GiB";
  return std::string(prop.name) + " (sm_" + std::to_string(prop.major) + std::to_string(prop.minor) +
         ", " + std::to_string(prop.multiProcessorCount) + " SMs, " + mem + ")";
}

}  // namespace kestrel
