// libFuzzer target: parse_safetensors on arbitrary bytes. It may only raise kestrel::Error.
// Whatever it accepts must survive serialize -> parse unchanged, and serializing that again
// must give the same bytes; an Error there, like any other failure, is a finding.
#include <cstdint>
#include <cstdlib>

#include "kestrel/core/error.h"
#include "kestrel/layers/safetensors.h"

namespace {
bool same(const kestrel::SafetensorsFile& a, const kestrel::SafetensorsFile& b) {
  if (a.metadata != b.metadata || a.tensors.size() != b.tensors.size()) return false;
  for (const auto& [name, t] : a.tensors) {
    const auto it = b.tensors.find(name);
    if (it == b.tensors.end() || it->second.dtype != t.dtype || it->second.shape != t.shape ||
        it->second.data != t.data)
      return false;
  }
  return true;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  kestrel::SafetensorsFile file;
  try {
    file = kestrel::parse_safetensors(data, size, "fuzz.safetensors");
  } catch (const kestrel::Error&) {
    return 0;
  }
  const std::vector<std::uint8_t> bytes = kestrel::serialize_safetensors(file);
  const kestrel::SafetensorsFile again = kestrel::parse_safetensors(bytes.data(), bytes.size(), "round trip");
  if (!same(file, again) || kestrel::serialize_safetensors(again) != bytes) std::abort();
  return 0;
}
