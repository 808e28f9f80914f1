// Shared launch helpers of batch normalisation: grid checks, vector width, the per-channel
// combine kernels and the workspace size.
#include <climits>
#include <cstdint>

#include "kestrel/kernels/batchnorm.h"
#include "kestrel/kernels/batchnorm_check_internal.h"
#include "kestrel/kernels/batchnorm_internal.cuh"

namespace kestrel::cuda_detail::bn {
namespace {

template <class P>
__device__ P merge_channel(const P* part, std::int64_t parts, std::int64_t ch) {
  P acc{};
  for (std::int64_t k = threadIdx.x; k < parts; k += kThreads)
    acc = Combine{}(acc, part[ch * parts + k]);
  using Reduce = cub::BlockReduce<P, kThreads>;
  __shared__ typename Reduce::TempStorage tmp;
  return Reduce(tmp).Reduce(acc, Combine{});  // valid in thread 0
}

__global__ void __launch_bounds__(kThreads)
    finalize_stats_kernel(const Welford* part, std::int64_t parts, float m, float eps,
                          float momentum, float* save_mean, float* save_invstd,
                          float* running_mean, float* running_var) {
  const std::int64_t ch = blockIdx.x;
  const Welford w = merge_channel(part, parts, ch);
  if (threadIdx.x == 0)
    bn_detail::bn_finalize_channel(w, m, eps, momentum, save_mean, save_invstd, running_mean,
                                   running_var, ch);
}

__global__ void __launch_bounds__(kThreads)
    finalize_grads_kernel(const GradSums* part, std::int64_t parts, const float* save_invstd,
                          GradSums* sums, float* dgamma, float* dbeta) {
  const std::int64_t ch = blockIdx.x;
  const GradSums s = merge_channel(part, parts, ch);
  if (threadIdx.x == 0) {
    const GradSums out{s.g, s.gd * save_invstd[ch]};  // {dbeta, dgamma}
    sums[ch] = out;
    if (dbeta != nullptr) dbeta[ch] = out.g;
    if (dgamma != nullptr) dgamma[ch] = out.gd;
  }
}

}  // namespace

// Each limit for the grid it governs: NCHW's c * parts blocks in x; channels-last's col_tiles in
// y (x is parts <= kMaxParts); the finalize kernels' c blocks in x.
void check_grid(const BnGeometry& g) {
  const bool fits = g.channels_last ? g.col_tiles <= 65535 : g.c <= INT_MAX / g.parts;
  KESTREL_CHECK(fits && g.c <= INT_MAX, "batchnorm: too many channels for one grid (c=", g.c, ")");
}

std::int64_t vector_width(DType dtype, const BatchNormDims& d,
                          std::initializer_list<const void*> ptrs) {
  const std::int64_t v = 16 / static_cast<std::int64_t>(dtype_size(dtype));
  const std::int64_t extent = bn_detail::channels_last(d) ? d.c : d.hw;
  if (extent % v != 0) return 1;
  for (const void* p : ptrs)
    if (reinterpret_cast<std::uintptr_t>(p) % 16 != 0) return 1;  // null is aligned
  return v;
}

BnGeometry launch_geometry(DType dtype, const BatchNormDims& d,
                           std::initializer_list<const void*> ptrs) {
  const BnGeometry g = bn_detail::bn_geometry(d, vector_width(dtype, d, ptrs),
                                              static_cast<std::int64_t>(dtype_size(dtype)));
  check_grid(g);
  return g;
}

void launch_finalize_stats(const BnGeometry& g, const Welford* part, float m, float eps,
                           float momentum, float* save_mean, float* save_invstd,
                           float* running_mean, float* running_var, cudaStream_t stream) {
  finalize_stats_kernel<<<static_cast<unsigned>(g.c), kThreads, 0, stream>>>(
      part, g.parts, m, eps, momentum, save_mean, save_invstd, running_mean, running_var);
  KESTREL_CUDA_CHECK_LAUNCH();
}

void launch_finalize_grads(const BnGeometry& g, const GradSums* part, const float* save_invstd,
                           GradSums* sums, float* dgamma, float* dbeta, cudaStream_t stream) {
  finalize_grads_kernel<<<static_cast<unsigned>(g.c), kThreads, 0, stream>>>(
      part, g.parts, save_invstd, sums, dgamma, dbeta);
  KESTREL_CUDA_CHECK_LAUNCH();
}

}  // namespace kestrel::cuda_detail::bn

namespace kestrel::cuda {

std::size_t batchnorm_workspace_bytes(const BatchNormDims& d) {
  bn_detail::check_shape("batchnorm_workspace_bytes", d);
  return bn_detail::workspace_layout(d).bytes;
}

}  // namespace kestrel::cuda
