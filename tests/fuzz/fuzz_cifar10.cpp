// libFuzzer target: parse_cifar10_batch on arbitrary bytes. It may only raise kestrel::Error;
// anything else (another exception, a sanitizer report, a broken invariant) is a finding.
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "kestrel/core/error.h"
#include "kestrel/layers/cifar10.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  kestrel::CifarSplit split;
  try {
    split = kestrel::parse_cifar10_batch(data, size, "fuzz.bin");
  } catch (const kestrel::Error&) {
    return 0;
  }
  // Accepted input: whole records, valid labels, bytes copied exactly.
  const std::size_t n = static_cast<std::size_t>(split.count);
  if (n == 0 || n * kestrel::kCifarRecordBytes != size || split.labels.size() != n ||
      split.images.size() != n * kestrel::kCifarImageBytes)
    std::abort();
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint8_t* rec = data + i * kestrel::kCifarRecordBytes;
    if (split.labels[i] != rec[0] || split.labels[i] > 9 ||
        std::memcmp(&split.images[i * kestrel::kCifarImageBytes], rec + 1, kestrel::kCifarImageBytes) != 0)
      std::abort();
  }
  return 0;
}
