#include <cub/cub.cuh>

#include "kestrel/kernels/bias.h"
#include "kestrel/kernels/bias_math.h"
#include "kestrel/kernels/element_io.h"
#include "kestrel/kernels/launch_internal.cuh"

namespace kestrel::cuda {
namespace {
constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;

template <typename T>
__global__ void add_kernel(T* y, const float* bias, std::int64_t total, std::int64_t c,
                           std::int64_t inner) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
       i < total; i += stride) {
    const float b = bias[bias_detail::channel_of(i, c, inner)];
    element_io::store(y, i, bias_detail::add_bias(element_io::load(y, i), b));
  }
}

// Column sums of a row-major [rows, cols] matrix, 32 columns a tile: lane l of warp w sums rows
// w, w + 8, ... of column l (coalesced), then 32 logical 8-lane warps (CUB) add the 8 partials of
// one column each. Fixed order, so repeatable.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    column_sums_kernel(const T* dy, float* dbias, std::int64_t rows, std::int64_t cols) {
  using Reduce = cub::WarpReduce<float, kWarps>;
  __shared__ float partial[kWarps][33];
  __shared__ typename Reduce::TempStorage temp[32];
  const int lane = static_cast<int>(threadIdx.x) % 32, warp = static_cast<int>(threadIdx.x) / 32;
  const int group = static_cast<int>(threadIdx.x) / kWarps, member = static_cast<int>(threadIdx.x) % kWarps;
  const std::int64_t tiles = (cols + 31) / 32;
  for (std::int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
    const std::int64_t col = tile * 32 + lane;
    float acc = 0.f;
    if (col < cols)
      for (std::int64_t r = warp; r < rows; r += kWarps) acc += element_io::load(dy, r * cols + col);
    partial[warp][lane] = acc;
    __syncthreads();
    const float total = Reduce(temp[group]).Sum(partial[member][group]);
    const std::int64_t out = tile * 32 + group;
    if (member == 0 && out < cols) dbias[out] = total;
    __syncthreads();  // `partial` is rewritten by the next tile
  }
}

// Per-channel sums of an NCHW tensor: one block a channel, threads striding over each plane.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    plane_sums_kernel(const T* dy, float* dbias, std::int64_t n, std::int64_t c, std::int64_t hw) {
  using Reduce = cub::BlockReduce<float, kThreads>;
  __shared__ typename Reduce::TempStorage temp;
  for (std::int64_t ch = blockIdx.x; ch < c; ch += gridDim.x) {
    float acc = 0.f;
    for (std::int64_t b = 0; b < n; ++b) {
      const T* plane = dy + (b * c + ch) * hw;
      for (std::int64_t s = threadIdx.x; s < hw; s += kThreads) acc += element_io::load(plane, s);
    }
    const float total = Reduce(temp).Sum(acc);
    if (threadIdx.x == 0) dbias[ch] = total;
    __syncthreads();  // `temp` is reused by the next channel
  }
}

void add(const char* what, void* y, const float* bias, DType dtype, std::int64_t n,
         std::int64_t c, std::int64_t hw, Layout layout, cudaStream_t stream) {
  bias_detail::check_args(what, dtype, n, c, hw, y, bias);
  const std::int64_t total = n * c * hw;
  if (total == 0) return;
  const std::int64_t inner = bias_detail::inner_of(layout, hw);
  element_io::dispatch_float_or_bf16(dtype, what, [&](auto tag) {
    using T = decltype(tag);
    add_kernel<T><<<cuda_detail::grid_for(total, kThreads), kThreads, 0, stream>>>(
        static_cast<T*>(y), bias, total, c, inner);
  });
  KESTREL_CUDA_CHECK_LAUNCH();
}

void sums(const char* what, const void* dy, float* dbias, DType dtype, std::int64_t n,
          std::int64_t c, std::int64_t hw, Layout layout, cudaStream_t stream) {
  bias_detail::check_args(what, dtype, n, c, hw, dy, dbias);
  if (c == 0) return;
  element_io::dispatch_float_or_bf16(dtype, what, [&](auto tag) {
    using T = decltype(tag);
    const T* src = static_cast<const T*>(dy);
    if (layout == Layout::kNCHW && hw > 1) {
      plane_sums_kernel<T><<<cuda_detail::grid_for(c * kThreads, kThreads), kThreads, 0, stream>>>(
          src, dbias, n, c, hw);
    } else {  // NHWC (or hw == 1): a row-major [n*hw, c] matrix
      const std::int64_t tiles = (c + 31) / 32;
      column_sums_kernel<T><<<cuda_detail::grid_for(tiles * kThreads, kThreads), kThreads, 0,
                              stream>>>(src, dbias, n * hw, c);
    }
  });
  KESTREL_CUDA_CHECK_LAUNCH();
}
}  // namespace

void bias_add_rows(void* y, const float* bias, std::int64_t rows, std::int64_t cols, DType dtype,
                   cudaStream_t stream) {
  add("bias_add_rows", y, bias, dtype, rows, cols, 1, Layout::kNHWC, stream);
}

void bias_backward_rows(const void* dy, float* dbias, std::int64_t rows, std::int64_t cols,
                        DType dtype, cudaStream_t stream) {
  sums("bias_backward_rows", dy, dbias, dtype, rows, cols, 1, Layout::kNHWC, stream);
}

void channel_bias_add(void* y, const float* bias, DType dtype, std::int64_t n, std::int64_t c,
                      std::int64_t hw, Layout layout, cudaStream_t stream) {
  add("channel_bias_add", y, bias, dtype, n, c, hw, layout, stream);
}

void channel_bias_backward(const void* dy, float* dbias, DType dtype, std::int64_t n,
                           std::int64_t c, std::int64_t hw, Layout layout, cudaStream_t stream) {
  sums("channel_bias_backward", dy, dbias, dtype, n, c, hw, layout, stream);
}

}  // namespace kestrel::cuda
