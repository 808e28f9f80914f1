// Row gather on the GPU: row b of dst = row indices[b] of src, rows of `row_bytes` bytes each (an
// image of any dtype and layout whose batch index is outermost, or a label). It moves a shuffled
// batch out of a device-resident dataset. CPU twin: kernels/cpu/gather.h; index walk:
// kernels/gather_math.h.
//
// indices: [n] int32 in device memory. An index outside [0, rows) cannot raise on the GPU: that
// destination row is filled with 0xFF bytes (NaN in fp32, bf16 and fp16; -1 in int32, which the
// loss kernels treat as a bad label; 255 in uint8, which is not detectable), so the loss turns
// NaN and the caller's non-finite check sees it. The CPU twin raises kestrel::Error
// naming the position instead. n, rows, row_bytes >= 0, the pointers and that the destination
// overlaps neither the source nor the indices are checked here.
// 16-byte copies when row_bytes and both pointers allow them, else 4-byte, else single bytes.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace kestrel::cuda {
void gather_rows(const void* src, std::int64_t rows, std::int64_t row_bytes,
                 const std::int32_t* indices, std::int64_t n, void* dst, cudaStream_t stream);
}  // namespace kestrel::cuda
