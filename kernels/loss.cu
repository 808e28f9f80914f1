#include <cub/cub.cuh>

#include "kestrel/core/error.h"
#include "kestrel/kernels/element_io.h"
#include "kestrel/kernels/launch_internal.cuh"
#include "kestrel/kernels/loss.h"
#include "kestrel/kernels/loss_math.h"

namespace kestrel::cuda {
namespace {
using element_io::load_float;
using element_io::store_float;
using loss_detail::RowStats;

// One warp per row, kWarps rows per block at a time, grid-stride over rows.
constexpr int kWarp = 32;
constexpr int kWarps = 8;
constexpr int kThreads = kWarp * kWarps;
using WarpSum = cub::WarpReduce<float>;
using WarpArgMax = cub::WarpReduce<loss_detail::ArgMax>;

struct WarpScratch {
  typename WarpSum::TempStorage sum[kWarps];
  typename WarpArgMax::TempStorage argmax[kWarps];
};

__device__ float broadcast(float v) { return cub::ShuffleIndex<kWarp>(v, 0, 0xffffffffu); }

__device__ unsigned grid_rows() { return gridDim.x * kWarps; }
__device__ std::int64_t first_row() {
  return static_cast<std::int64_t>(blockIdx.x) * kWarps + threadIdx.x / kWarp;
}

// RowStats of one row, valid in every lane of the warp.
__device__ RowStats warp_row_stats(const void* x, DType dtype, std::int64_t base, std::int64_t cols,
                                   typename WarpSum::TempStorage& temp) {
  const int lane = threadIdx.x % kWarp;
  float m = -INFINITY;
  for (std::int64_t j = lane; j < cols; j += kWarp) m = fmaxf(m, load_float(x, dtype, base + j));
  m = broadcast(WarpSum(temp).Reduce(m, ::cuda::maximum<>{}));
  __syncwarp();
  float se = 0.f, ss = 0.f;
  for (std::int64_t j = lane; j < cols; j += kWarp) {
    const float d = load_float(x, dtype, base + j) - m;
    se += expf(d);
    ss += d;
  }
  se = broadcast(WarpSum(temp).Sum(se));
  __syncwarp();
  ss = broadcast(WarpSum(temp).Sum(ss));
  __syncwarp();
  return RowStats{m, se, ss};
}

// Arg-max of one row, valid in lane 0.
__device__ std::int32_t warp_row_argmax(const void* x, DType dtype, std::int64_t base,
                                        std::int64_t cols, typename WarpArgMax::TempStorage& temp) {
  loss_detail::ArgMax best = loss_detail::argmax_identity();
  for (std::int64_t j = threadIdx.x % kWarp; j < cols; j += kWarp)
    best = loss_detail::argmax_combine(
        best, loss_detail::ArgMax{load_float(x, dtype, base + j), static_cast<std::int32_t>(j)});
  const std::int32_t index = WarpArgMax(temp).Reduce(best, loss_detail::ArgMaxOp{}).index;
  __syncwarp();
  return index;
}

// row_loss[i] = loss_i / n (NaN for a label outside [0, k)); dlogits row i when non-null.
__global__ void cross_entropy_rows_kernel(const void* logits, DType dtype,
                                          const std::int32_t* labels, std::int64_t n,
                                          std::int64_t k, float eps, float* row_loss,
                                          void* dlogits, const float* dloss_scale) {
  __shared__ WarpScratch scratch;
  auto& temp = scratch.sum[threadIdx.x / kWarp];
  const float coef = (dloss_scale ? *dloss_scale : 1.f) / static_cast<float>(n);
  for (std::int64_t i = first_row(); i < n; i += grid_rows()) {
    const std::int64_t base = i * k;
    const RowStats s = warp_row_stats(logits, dtype, base, k, temp);
    const std::int32_t label = labels[i];
    const bool valid = label >= 0 && label < k;
    if (threadIdx.x % kWarp == 0) {
      row_loss[i] = valid ? loss_detail::cross_entropy_row(s, load_float(logits, dtype, base + label),
                                                           eps, k) /
                                static_cast<float>(n)
                          : NAN;
    }
    if (dlogits == nullptr) continue;
    for (std::int64_t j = threadIdx.x % kWarp; j < k; j += kWarp) {
      const float t = loss_detail::smoothed_target(j == label, eps, k);
      const float g = loss_detail::cross_entropy_grad(load_float(logits, dtype, base + j), s, t, coef);
      store_float(dlogits, dtype, base + j, valid ? g : NAN);
    }
  }
}

__global__ void softmax_forward_kernel(const void* x, void* y, DType dtype, std::int64_t rows,
                                       std::int64_t cols) {
  __shared__ WarpScratch scratch;
  auto& temp = scratch.sum[threadIdx.x / kWarp];
  for (std::int64_t i = first_row(); i < rows; i += grid_rows()) {
    const std::int64_t base = i * cols;
    const RowStats s = warp_row_stats(x, dtype, base, cols, temp);
    for (std::int64_t j = threadIdx.x % kWarp; j < cols; j += kWarp)
      store_float(y, dtype, base + j, loss_detail::softmax_prob(load_float(x, dtype, base + j), s.max, s.sum_exp));
  }
}

__global__ void softmax_backward_kernel(const void* dy, const void* y, void* dx, DType dtype,
                                        std::int64_t rows, std::int64_t cols) {
  __shared__ WarpScratch scratch;
  auto& temp = scratch.sum[threadIdx.x / kWarp];
  for (std::int64_t i = first_row(); i < rows; i += grid_rows()) {
    const std::int64_t base = i * cols;
    float dot = 0.f;
    for (std::int64_t j = threadIdx.x % kWarp; j < cols; j += kWarp)
      dot = fmaf(load_float(dy, dtype, base + j), load_float(y, dtype, base + j), dot);
    dot = broadcast(WarpSum(temp).Sum(dot));
    __syncwarp();
    for (std::int64_t j = threadIdx.x % kWarp; j < cols; j += kWarp)
      store_float(dx, dtype, base + j,
                  loss_detail::softmax_grad(load_float(dy, dtype, base + j), load_float(y, dtype, base + j), dot));
  }
}

// Each warp counts its rows' hits in lane 0; one BlockReduce and one atomic per block.
__global__ void count_correct_kernel(const void* logits, DType dtype, const std::int32_t* labels,
                                     std::int64_t n, std::int64_t k, std::int64_t* correct) {
  __shared__ WarpScratch scratch;
  using BlockSum = cub::BlockReduce<unsigned long long, kThreads>;
  __shared__ typename BlockSum::TempStorage block_temp;
  unsigned long long hits = 0;
  for (std::int64_t i = first_row(); i < n; i += grid_rows()) {
    const std::int32_t arg = warp_row_argmax(logits, dtype, i * k, k, scratch.argmax[threadIdx.x / kWarp]);
    if (threadIdx.x % kWarp == 0 && arg == labels[i]) ++hits;
  }
  const unsigned long long total = BlockSum(block_temp).Sum(hits);
  // Two's complement: adding as unsigned equals adding as int64.
  if (threadIdx.x == 0 && total != 0)
    atomicAdd(reinterpret_cast<unsigned long long*>(correct), total);
}

__global__ void argmax_rows_kernel(const void* x, DType dtype, std::int64_t rows, std::int64_t cols,
                                   std::int32_t* out) {
  __shared__ WarpScratch scratch;
  for (std::int64_t i = first_row(); i < rows; i += grid_rows()) {
    const std::int32_t arg = warp_row_argmax(x, dtype, i * cols, cols, scratch.argmax[threadIdx.x / kWarp]);
    if (threadIdx.x % kWarp == 0) out[i] = arg;
  }
}

unsigned row_blocks(std::int64_t rows) { return cuda_detail::grid_for(rows * kWarp, kThreads); }

constexpr std::size_t kAlign = 256;
std::size_t row_loss_bytes(std::int64_t n) {
  return (static_cast<std::size_t>(n) * sizeof(float) + kAlign - 1) / kAlign * kAlign;
}
std::size_t cub_sum_bytes(std::int64_t n) {
  std::size_t bytes = 0;
  KESTREL_CUDA_CHECK(cub::DeviceReduce::Sum(nullptr, bytes, static_cast<const float*>(nullptr),
                                            static_cast<float*>(nullptr), n));
  return bytes;
}
}  // namespace

std::size_t softmax_cross_entropy_workspace_bytes(std::int64_t n, std::int64_t k) {
  KESTREL_CHECK(n >= 1 && k >= 1, "softmax_cross_entropy_workspace_bytes: n and k must be >= 1, got n=",
                n, " k=", k);
  return row_loss_bytes(n) + cub_sum_bytes(n);
}

void softmax_cross_entropy(const void* logits, DType dtype, const std::int32_t* labels,
                           std::int64_t n, std::int64_t k, float label_smoothing, float* loss,
                           void* dlogits, const float* dloss_scale, void* workspace,
                           cudaStream_t stream) {
  loss_detail::check_cross_entropy(logits, labels, loss, dlogits, dtype, n, k, label_smoothing);
  cuda_detail::check_workspace(workspace, "softmax_cross_entropy", "softmax_cross_entropy_workspace_bytes");
  float* row_loss = static_cast<float*>(workspace);
  void* cub_temp = static_cast<char*>(workspace) + row_loss_bytes(n);
  cross_entropy_rows_kernel<<<row_blocks(n), kThreads, 0, stream>>>(
      logits, dtype, labels, n, k, label_smoothing, row_loss, dlogits, dloss_scale);
  KESTREL_CUDA_CHECK_LAUNCH();
  std::size_t cub_bytes = cub_sum_bytes(n);
  KESTREL_CUDA_CHECK(cub::DeviceReduce::Sum(cub_temp, cub_bytes, static_cast<const float*>(row_loss),
                                            loss, n, stream));
}

void softmax_forward(const void* x, void* y, DType dtype, std::int64_t rows, std::int64_t cols,
                     cudaStream_t stream) {
  loss_detail::check_rows("softmax_forward", dtype, rows, cols, {x, y});
  if (rows == 0) return;
  softmax_forward_kernel<<<row_blocks(rows), kThreads, 0, stream>>>(x, y, dtype, rows, cols);
  KESTREL_CUDA_CHECK_LAUNCH();
}

void softmax_backward(const void* dy, const void* y, void* dx, DType dtype, std::int64_t rows,
                      std::int64_t cols, cudaStream_t stream) {
  loss_detail::check_rows("softmax_backward", dtype, rows, cols, {dy, y, dx});
  if (rows == 0) return;
  softmax_backward_kernel<<<row_blocks(rows), kThreads, 0, stream>>>(dy, y, dx, dtype, rows, cols);
  KESTREL_CUDA_CHECK_LAUNCH();
}

void count_correct(const void* logits, DType dtype, const std::int32_t* labels, std::int64_t n,
                   std::int64_t k, std::int64_t* correct, cudaStream_t stream) {
  loss_detail::check_rows("count_correct", dtype, n, k, {logits}, {labels, correct});
  if (n == 0) return;
  count_correct_kernel<<<row_blocks(n), kThreads, 0, stream>>>(logits, dtype, labels, n, k, correct);
  KESTREL_CUDA_CHECK_LAUNCH();
}

void argmax_rows(const void* x, DType dtype, std::int64_t rows, std::int64_t cols,
                 std::int32_t* out, cudaStream_t stream) {
  loss_detail::check_rows("argmax_rows", dtype, rows, cols, {x}, {out});
  if (rows == 0) return;
  argmax_rows_kernel<<<row_blocks(rows), kThreads, 0, stream>>>(x, dtype, rows, cols, out);
  KESTREL_CUDA_CHECK_LAUNCH();
}

}  // namespace kestrel::cuda
