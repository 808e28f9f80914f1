// Layer normalisation on the GPU (kernels/layernorm.h). Forward: one block per row (grid-stride
// over rows), shifted sums merged with a block reduction, then the normalise pass over the row
// (it is still in L1/L2). Backward: one block per group of rows computes dx row by row and keeps
// its group's column sums of dgamma / dbeta in the workspace; a second kernel adds the groups.
#include <cub/cub.cuh>

#include "kestrel/kernels/batchnorm_internal.cuh"
#include "kestrel/kernels/launch_internal.cuh"
#include "kestrel/kernels/layernorm.h"
#include "kestrel/kernels/layernorm_math.h"

namespace kestrel::cuda_detail::ln {
namespace {

using bn::as_float;
using bn::from_float;
using ln_detail::RowSums;
using ln_detail::Welford;

constexpr int kThreads = 256;
constexpr std::int64_t kMaxBlocks = 8192;  // forward grid (grid-stride beyond)

struct Combine {
  __device__ Welford operator()(const Welford& a, const Welford& b) const {
    return bn_detail::welford_combine(a, b);
  }
  __device__ RowSums operator()(const RowSums& a, const RowSums& b) const {
    return ln_detail::row_sums_combine(a, b);
  }
};

template <typename S>
__global__ void __launch_bounds__(kThreads)
    forward_kernel(const S* x, S* y, std::int64_t rows, std::int64_t cols, const float* gamma,
                   const float* beta, float eps, float* save_mean, float* save_rstd) {
  using Reduce = cub::BlockReduce<Welford, kThreads>;
  __shared__ typename Reduce::TempStorage tmp;
  __shared__ float row_mean, row_rstd;
  for (std::int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const S* xr = x + row * cols;
    bn_detail::ShiftedSums acc{0.f, 0.f, 0.f};
    float n = 0.f;
    for (std::int64_t j = threadIdx.x; j < cols; j += kThreads) {
      const float v = as_float(xr[j]);
      if (n == 0.f) acc.shift = v;
      bn_detail::shifted_add(acc, v);
      n += 1.f;
    }
    const Welford w = Reduce(tmp).Reduce(bn_detail::shifted_to_welford(acc, n), Combine{});
    if (threadIdx.x == 0) {
      float mean, rstd;
      ln_detail::ln_finalize(w, static_cast<float>(cols), eps, mean, rstd);
      row_mean = mean;
      row_rstd = rstd;
      if (save_mean != nullptr) save_mean[row] = mean;
      if (save_rstd != nullptr) save_rstd[row] = rstd;
    }
    __syncthreads();
    const float mean = row_mean, rstd = row_rstd;
    S* yr = y + row * cols;
    for (std::int64_t j = threadIdx.x; j < cols; j += kThreads)
      yr[j] = from_float<S>(ln_detail::ln_forward_element(as_float(xr[j]), mean, rstd, gamma,
                                                           beta, j));
    __syncthreads();  // tmp and row_mean are reused by the next row
  }
}

// Block b handles rows b, b + gridDim.x, ...; its column sums go to part_g / part_b row b
// (the first row stores, later rows add; column j always belongs to the same thread).
template <typename S>
__global__ void __launch_bounds__(kThreads)
    backward_kernel(const S* dy, const S* x, std::int64_t rows, std::int64_t cols,
                    const float* gamma, const float* save_mean, const float* save_rstd, S* dx,
                    float* part_g, float* part_b) {
  using Reduce = cub::BlockReduce<RowSums, kThreads>;
  __shared__ typename Reduce::TempStorage tmp;
  __shared__ RowSums row_sums;
  float* pg = part_g + blockIdx.x * cols;
  float* pb = part_b + blockIdx.x * cols;
  bool first = true;
  for (std::int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const std::int64_t base = row * cols;
    const float mean = save_mean[row], rstd = save_rstd[row];
    RowSums acc{0.f, 0.f, 0.f};
    for (std::int64_t j = threadIdx.x; j < cols; j += kThreads)
      ln_detail::row_sums_add(acc, as_float(dy[base + j]), as_float(x[base + j]), mean, gamma, j);
    const RowSums total = Reduce(tmp).Reduce(acc, Combine{});
    if (threadIdx.x == 0) row_sums = total;
    __syncthreads();
    const ln_detail::BackwardCoeffs k =
        ln_detail::backward_coeffs(row_sums, mean, rstd, static_cast<float>(cols));
    for (std::int64_t j = threadIdx.x; j < cols; j += kThreads) {
      const float dyv = as_float(dy[base + j]), xv = as_float(x[base + j]);
      pg[j] = ln_detail::accumulate_dgamma(first ? 0.f : pg[j], dyv, xv, mean, rstd);
      pb[j] = first ? dyv : pb[j] + dyv;
      dx[base + j] = from_float<S>(ln_detail::backward_element(dyv, xv, gamma, j, k));
    }
    first = false;
    __syncthreads();  // tmp and row_sums are reused by the next row
  }
}

__global__ void __launch_bounds__(kThreads)
    column_sums_kernel(const float* part_g, const float* part_b, std::int64_t groups,
                       std::int64_t cols, float* dgamma, float* dbeta) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * kThreads;
  for (std::int64_t j = static_cast<std::int64_t>(blockIdx.x) * kThreads + threadIdx.x; j < cols;
       j += stride) {
    float g = 0.f, b = 0.f;
    for (std::int64_t k = 0; k < groups; ++k) {
      g += part_g[k * cols + j];
      b += part_b[k * cols + j];
    }
    if (dgamma != nullptr) dgamma[j] = g;
    if (dbeta != nullptr) dbeta[j] = b;
  }
}

std::int64_t groups_for(std::int64_t rows) { return rows < ln_detail::kGroups ? rows : ln_detail::kGroups; }

}  // namespace
}  // namespace kestrel::cuda_detail::ln

namespace kestrel::cuda {

void layernorm_forward(const void* x, void* y, DType dtype, std::int64_t rows, std::int64_t cols,
                       const float* gamma, const float* beta, float eps, float* save_mean,
                       float* save_rstd, cudaStream_t stream) {
  namespace ln = cuda_detail::ln;
  ln_detail::check_forward(x, y, dtype, rows, cols, eps);
  const auto blocks = static_cast<unsigned>(rows < ln::kMaxBlocks ? rows : ln::kMaxBlocks);
  if (dtype == DType::kFloat32) {
    ln::forward_kernel<float><<<blocks, ln::kThreads, 0, stream>>>(
        static_cast<const float*>(x), static_cast<float*>(y), rows, cols, gamma, beta, eps,
        save_mean, save_rstd);
  } else {
    ln::forward_kernel<bfloat16><<<blocks, ln::kThreads, 0, stream>>>(
        static_cast<const bfloat16*>(x), static_cast<bfloat16*>(y), rows, cols, gamma, beta, eps,
        save_mean, save_rstd);
  }
  KESTREL_CUDA_CHECK_LAUNCH();
}

std::size_t layernorm_workspace_bytes(std::int64_t rows, std::int64_t cols) {
  ln_detail::check_shape("layernorm_workspace_bytes", rows, cols, DType::kFloat32);
  return static_cast<std::size_t>(2 * cuda_detail::ln::groups_for(rows) * cols) * sizeof(float);
}

void layernorm_backward(const void* dy, const void* x, DType dtype, std::int64_t rows,
                        std::int64_t cols, const float* gamma, const float* save_mean,
                        const float* save_rstd, void* dx, float* dgamma, float* dbeta,
                        void* workspace, cudaStream_t stream) {
  namespace ln = cuda_detail::ln;
  ln_detail::check_backward(dy, x, dtype, rows, cols, save_mean, save_rstd, dx);
  cuda_detail::check_workspace(workspace, "layernorm_backward", "layernorm_workspace_bytes");
  const std::int64_t groups = ln::groups_for(rows);
  float* part_g = static_cast<float*>(workspace);
  float* part_b = part_g + groups * cols;
  const auto blocks = static_cast<unsigned>(groups);
  if (dtype == DType::kFloat32) {
    ln::backward_kernel<float><<<blocks, ln::kThreads, 0, stream>>>(
        static_cast<const float*>(dy), static_cast<const float*>(x), rows, cols, gamma, save_mean,
        save_rstd, static_cast<float*>(dx), part_g, part_b);
  } else {
    ln::backward_kernel<bfloat16><<<blocks, ln::kThreads, 0, stream>>>(
        static_cast<const bfloat16*>(dy), static_cast<const bfloat16*>(x), rows, cols, gamma,
        save_mean, save_rstd, static_cast<bfloat16*>(dx), part_g, part_b);
  }
  KESTREL_CUDA_CHECK_LAUNCH();
  if (dgamma == nullptr && dbeta == nullptr) return;
  ln::column_sums_kernel<<<cuda_detail::grid_for(cols, ln::kThreads), ln::kThreads, 0, stream>>>(
      part_g, part_b, groups, cols, dgamma, dbeta);
  KESTREL_CUDA_CHECK_LAUNCH();
}

}  // namespace kestrel::cuda
