#include <cuda_runtime.h>

#include "kestrel/kernels/gather.h"
#include "kestrel/kernels/gather_math.h"
#include "kestrel/kernels/launch_internal.cuh"

namespace kestrel::cuda {
namespace {
constexpr int kThreads = 256;

template <typename Word>
__global__ void gather_kernel(const Word* src, std::int64_t rows, std::int64_t words_per_row,
                              const std::int32_t* indices, std::int64_t words, Word fill, Word* dst) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t w = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; w < words;
       w += stride)
    dst[w] = gather_detail::gathered_word(src, rows, words_per_row, indices, w, fill);
}

template <typename Word>
void launch(const void* src, std::int64_t rows, std::int64_t row_bytes, const std::int32_t* indices,
            std::int64_t n, Word fill, void* dst, cudaStream_t stream) {
  const std::int64_t per = row_bytes / static_cast<std::int64_t>(sizeof(Word)), words = n * per;
  gather_kernel<Word><<<cuda_detail::grid_for(words, kThreads), kThreads, 0, stream>>>(
      static_cast<const Word*>(src), rows, per, indices, words, fill, static_cast<Word*>(dst));
  KESTREL_CUDA_CHECK_LAUNCH();
}
}  // namespace

void gather_rows(const void* src, std::int64_t rows, std::int64_t row_bytes,
                 const std::int32_t* indices, std::int64_t n, void* dst, cudaStream_t stream) {
  gather_detail::check_gather(src, rows, row_bytes, indices, n, dst);
  if (n == 0 || row_bytes == 0) return;
  switch (gather_detail::word_bytes(row_bytes, src, dst)) {
    case 16:
      return launch(src, rows, row_bytes, indices, n, make_uint4(~0u, ~0u, ~0u, ~0u), dst, stream);
    case 4:
      return launch(src, rows, row_bytes, indices, n, ~0u, dst, stream);
    default:
      return launch(src, rows, row_bytes, indices, n, static_cast<unsigned char>(0xFF), dst, stream);
  }
}

}  // namespace kestrel::cuda
