#include "kestrel/kernels/launch_internal.cuh"
#include "kestrel/kernels/layout_convert.h"
#include "kestrel/kernels/layout_convert_math.h"

namespace kestrel::cuda {
namespace {
constexpr int kThreads = 256;

// One thread per element, indexed in the order of the destination so writes are coalesced.
template <typename T, bool kToNhwc>
__global__ void permute_kernel(const T* x, T* y, std::int64_t total, std::int64_t c, std::int64_t hw) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t d = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; d < total;
       d += stride) {
    if (kToNhwc) {
      // d is an NHWC index: (b, s, ch) -> NCHW source.
      const std::int64_t ch = d % c;
      const std::int64_t s = (d / c) % hw;
      const std::int64_t b = d / (c * hw);
      y[d] = x[(b * c + ch) * hw + s];
    } else {
      y[d] = x[layout_detail::nhwc_index_of_nchw(d, c, hw)];
    }
  }
}

template <bool kToNhwc>
void launch(const void* x, void* y, DType dtype, std::int64_t n, std::int64_t c, std::int64_t h,
            std::int64_t w, cudaStream_t stream) {
  layout_detail::check_args(x, y, dtype, n, c, h, w);
  const std::int64_t total = n * c * h * w;
  if (total == 0) return;
  const unsigned grid = cuda_detail::grid_for(total, kThreads);
  switch (dtype_size(dtype)) {
    case 4:
      permute_kernel<std::uint32_t, kToNhwc><<<grid, kThreads, 0, stream>>>(
          static_cast<const std::uint32_t*>(x), static_cast<std::uint32_t*>(y), total, c, h * w);
      break;
    case 2:
      permute_kernel<std::uint16_t, kToNhwc><<<grid, kThreads, 0, stream>>>(
          static_cast<const std::uint16_t*>(x), static_cast<std::uint16_t*>(y), total, c, h * w);
      break;
    default:
      permute_kernel<std::uint8_t, kToNhwc><<<grid, kThreads, 0, stream>>>(
          static_cast<const std::uint8_t*>(x), static_cast<std::uint8_t*>(y), total, c, h * w);
      break;
  }
  KESTREL_CUDA_CHECK_LAUNCH();
}
}  // namespace

void nchw_to_nhwc(const void* x, void* y, DType dtype, std::int64_t n, std::int64_t c, std::int64_t h,
                  std::int64_t w, cudaStream_t stream) {
  launch<true>(x, y, dtype, n, c, h, w, stream);
}

void nhwc_to_nchw(const void* x, void* y, DType dtype, std::int64_t n, std::int64_t c, std::int64_t h,
                  std::int64_t w, cudaStream_t stream) {
  launch<false>(x, y, dtype, n, c, h, w, stream);
}

}  // namespace kestrel::cuda
