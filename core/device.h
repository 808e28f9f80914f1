// Device: where a tensor lives and a kernel runs. A machine without a GPU (or without a
// driver) is a normal state: cuda_device_count() is 0 there, and asking for a CUDA device
// raises kestrel::Error("no CUDA device: <reason>").
#pragma once

#include <string>

namespace kestrel {

enum class DeviceType { kCPU, kCUDA };

struct Device {
  DeviceType type = DeviceType::kCPU;
  int index = 0;

  static Device cpu() noexcept { return Device{DeviceType::kCPU, 0}; }
  static Device cuda(int index = 0) noexcept { return Device{DeviceType::kCUDA, index}; }
  bool is_cpu() const noexcept { return type == DeviceType::kCPU; }
  bool is_cuda() const noexcept { return type == DeviceType::kCUDA; }
  bool operator==(const Device& o) const noexcept { return type == o.type && index == o.index; }
  bool operator!=(const Device& o) const noexcept { return !(*this == o); }
  std::string to_string() const;  // "cpu", "cuda:0"
};

// Parses "cpu", "cuda", "cuda:N"; raises kestrel::Error otherwise.
Device parse_device(const std::string& name);

// Number of usable CUDA devices; 0 (never an exception) when there is no GPU or no driver.
int cuda_device_count() noexcept;
// Why cuda_device_count() is 0 ("no CUDA-capable device is detected", "driver not found", ...);
// empty when a device exists.
std::string cuda_unavailable_reason();
// Raises kestrel::Error naming the reason when `d` is a CUDA device that does not exist.
void require_device(const Device& d);
// "NVIDIA H200 (sm_90, 132 SMs, 139.8 GiB)" for a CUDA device; "cpu" for the CPU.
std::string device_description(const Device& d);

}  // namespace kestrel
