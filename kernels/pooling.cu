#include <cub/cub.cuh>

#include "kestrel/core/error.h"
#include "kestrel/kernels/element_io.h"
#include "kestrel/kernels/launch_internal.cuh"
#include "kestrel/kernels/pooling.h"
#include "kestrel/kernels/pooling_math.h"

namespace kestrel::cuda {
namespace {
constexpr int kThreads = 256;
constexpr int kWarp = 32;
constexpr int kWarps = kThreads / kWarp;

__device__ std::int64_t thread_index() {
  return static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ std::int64_t grid_threads() { return static_cast<std::int64_t>(gridDim.x) * blockDim.x; }

// NCHW: each (n, c) plane is contiguous, so one warp reads it coalesced and reduces it.
__global__ void gap_forward_nchw_kernel(const void* x, void* y, DType dtype, std::int64_t planes,
                                        std::int64_t hw) {
  using WarpSum = cub::WarpReduce<float>;
  __shared__ typename WarpSum::TempStorage temp[kWarps];
  const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
  for (std::int64_t plane = static_cast<std::int64_t>(blockIdx.x) * kWarps + warp; plane < planes;
       plane += static_cast<std::int64_t>(gridDim.x) * kWarps) {
    float sum = 0.f;
    for (std::int64_t p = lane; p < hw; p += kWarp) sum += element_io::load_float(x, dtype, plane * hw + p);
    sum = WarpSum(temp[warp]).Sum(sum);
    __syncwarp();
    if (lane == 0) element_io::store_float(y, dtype, plane, sum / static_cast<float>(hw));
  }
}

// NHWC: neighbouring threads take neighbouring channels (coalesced) and walk the positions.
__global__ void gap_forward_nhwc_kernel(const void* x, void* y, DType dtype, std::int64_t n,
                                        std::int64_t c, std::int64_t hw) {
  for (std::int64_t i = thread_index(); i < n * c; i += grid_threads()) {
    const std::int64_t b = i / c, ch = i % c;
    float sum = 0.f;
    for (std::int64_t p = 0; p < hw; ++p) sum += element_io::load_float(x, dtype, (b * hw + p) * c + ch);
    element_io::store_float(y, dtype, i, sum / static_cast<float>(hw));
  }
}

__global__ void gap_backward_kernel(const void* dy, void* dx, DType dtype, std::int64_t total,
                                    std::int64_t c, std::int64_t hw, Layout layout) {
  for (std::int64_t i = thread_index(); i < total; i += grid_threads())
    element_io::store_float(dx, dtype, i, pooling_detail::avg_pool_dx(dy, dtype, layout, i, c, hw));
}

__global__ void max_pool_forward_kernel(const void* x, void* y, DType dtype, std::int64_t total,
                                        std::int64_t c, std::int64_t h, std::int64_t w,
                                        Layout layout) {
  for (std::int64_t o = thread_index(); o < total; o += grid_threads())
    element_io::store_float(y, dtype, o, pooling_detail::max_pool_y(x, dtype, layout, o, c, h, w));
}

// One thread per input element: no atomics, and every element of dx is written.
__global__ void max_pool_backward_kernel(const void* dy, const void* x, void* dx, DType dtype,
                                         std::int64_t total, std::int64_t c, std::int64_t h,
                                         std::int64_t w, Layout layout) {
  for (std::int64_t i = thread_index(); i < total; i += grid_threads())
    element_io::store_float(dx, dtype, i, pooling_detail::max_pool_dx(dy, x, dtype, layout, i, c, h, w));
}
}  // namespace

void global_avg_pool_forward(const void* x, void* y, DType dtype, std::int64_t n, std::int64_t c,
                             std::int64_t hw, Layout layout, cudaStream_t stream) {
  pooling_detail::check_global_pool("global_avg_pool_forward", dtype, n, c, hw, {x, y});
  if (n * c == 0) return;
  if (layout == Layout::kNCHW) {
    gap_forward_nchw_kernel<<<cuda_detail::grid_for(n * c * kWarp, kThreads), kThreads, 0, stream>>>(
        x, y, dtype, n * c, hw);
  } else {
    gap_forward_nhwc_kernel<<<cuda_detail::grid_for(n * c, kThreads), kThreads, 0, stream>>>(
        x, y, dtype, n, c, hw);
  }
  KESTREL_CUDA_CHECK_LAUNCH();
}

void global_avg_pool_backward(const void* dy, void* dx, DType dtype, std::int64_t n,
                              std::int64_t c, std::int64_t hw, Layout layout, cudaStream_t stream) {
  pooling_detail::check_global_pool("global_avg_pool_backward", dtype, n, c, hw, {dy, dx});
  const std::int64_t total = n * c * hw;
  if (total == 0) return;
  gap_backward_kernel<<<cuda_detail::grid_for(total, kThreads), kThreads, 0, stream>>>(
      dy, dx, dtype, total, c, hw, layout);
  KESTREL_CUDA_CHECK_LAUNCH();
}

void max_pool2x2_forward(const void* x, void* y, DType dtype, std::int64_t n, std::int64_t c,
                         std::int64_t h, std::int64_t w, Layout layout, cudaStream_t stream) {
  pooling_detail::check_pool("max_pool2x2_forward", dtype, n, c, h, w, {x, y});
  const std::int64_t total = n * c * (h / 2) * (w / 2);
  if (total == 0) return;
  max_pool_forward_kernel<<<cuda_detail::grid_for(total, kThreads), kThreads, 0, stream>>>(
      x, y, dtype, total, c, h, w, layout);
  KESTREL_CUDA_CHECK_LAUNCH();
}

void max_pool2x2_backward(const void* dy, const void* x, void* dx, DType dtype, std::int64_t n,
                          std::int64_t c, std::int64_t h, std::int64_t w, Layout layout,
                          cudaStream_t stream) {
  pooling_detail::check_pool("max_pool2x2_backward", dtype, n, c, h, w, {dy, x, dx});
  const std::int64_t total = n * c * h * w;
  if (total == 0) return;
  max_pool_backward_kernel<<<cuda_detail::grid_for(total, kThreads), kThreads, 0, stream>>>(
      dy, x, dx, dtype, total, c, h, w, layout);
  KESTREL_CUDA_CHECK_LAUNCH();
}

}  // namespace kestrel::cuda
