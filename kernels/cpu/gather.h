// CPU twin of kernels/gather.h: same arguments, no stream; indices in host memory. Raises
// kestrel::Error for an index outside [0, rows), naming its position, before writing anything
// (so it copies whole rows; the GPU's word walk, gather_math.h, is tested on the CPU directly).
#pragma once

#include <cstdint>

namespace kestrel::cpu {
void gather_rows(const void* src, std::int64_t rows, std::int64_t row_bytes,
                 const std::int32_t* indices, std::int64_t n, void* dst);
}  // namespace kestrel::cpu
