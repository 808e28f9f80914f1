#include "kestrel/kernels/cpu/gather.h"

#include <cstring>

#include "kestrel/kernels/gather_math.h"

namespace kestrel::cpu {

void gather_rows(const void* src, std::int64_t rows, std::int64_t row_bytes, const std::int32_t* indices,
                 std::int64_t n, void* dst) {
  gather_detail::check_gather(src, rows, row_bytes, indices, n, dst);
  if (n == 0 || row_bytes == 0) return;
  for (std::int64_t b = 0; b < n; ++b)
    KESTREL_CHECK(indices[b] >= 0 && indices[b] < rows, "gather_rows: index ", indices[b], " at position ", b,
                  " is outside [0, ", rows, ")");
  const auto* s = static_cast<const unsigned char*>(src);
  auto* d = static_cast<unsigned char*>(dst);
  const auto bytes = static_cast<std::size_t>(row_bytes);
  for (std::int64_t b = 0; b < n; ++b) std::memcpy(d + b * row_bytes, s + indices[b] * row_bytes, bytes);
}

}  // namespace kestrel::cpu
