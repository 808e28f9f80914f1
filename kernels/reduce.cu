#include <cub/cub.cuh>

#include <algorithm>

#include "kestrel/core/cuda_check_internal.h"
#include "kestrel/kernels/reduce.h"
#include "kestrel/kernels/reduce_math.h"

namespace kestrel::cuda {
namespace {
using Plus = ::cuda::std::plus<>;

// CUB's scratch for a transform-reduce of n items of In to one Out.
template <typename In, typename Out, typename Transform>
std::size_t transform_reduce_bytes(std::int64_t n, Transform f) {
  std::size_t bytes = 0;
  KESTREL_CUDA_CHECK(cub::DeviceReduce::TransformReduce(nullptr, bytes, static_cast<const In*>(nullptr),
                                                        static_cast<Out*>(nullptr), n, Plus{}, f, Out{}));
  return bytes;
}

std::size_t sum_bytes(std::int64_t n) {
  std::size_t bytes = 0;
  KESTREL_CUDA_CHECK(cub::DeviceReduce::Sum(nullptr, bytes, static_cast<const float*>(nullptr),
                                            static_cast<float*>(nullptr), n));
  return bytes;
}

// Validates the scratch; false when n == 0 (then *out was set to 0 in stream order).
template <typename Out>
bool prepare(const char* op, std::int64_t n, Out* out, void* workspace, std::size_t have,
             std::size_t need, cudaStream_t stream) {
  if (n == 0) {
    KESTREL_CUDA_CHECK(cudaMemsetAsync(out, 0, sizeof(Out), stream));
    return false;
  }
  KESTREL_CHECK(workspace != nullptr && have >= need, op, ": workspace of ", have,
                " bytes is too small, need ", need, " (reduce_workspace_bytes)");
  return true;
}
}  // namespace

std::size_t reduce_workspace_bytes(std::int64_t n) {
  KESTREL_CHECK(n >= 0, "reduce_workspace_bytes: negative element count ", n);
  const reduce_detail::NonFinite16 f16 = reduce_detail::nonfinite16(DType::kBFloat16);
  return std::max({sum_bytes(n), transform_reduce_bytes<float, float>(n, reduce_detail::Square{}),
                   transform_reduce_bytes<float, std::int32_t>(n, reduce_detail::NonFiniteF32{}),
                   transform_reduce_bytes<std::uint16_t, std::int32_t>(n, f16)});
}

void sum(const float* x, std::int64_t n, float* out, void* workspace, std::size_t workspace_bytes,
         cudaStream_t stream) {
  reduce_detail::check_reduce("sum", n, x, DType::kFloat32, out);
  std::size_t need = n > 0 ? sum_bytes(n) : 0;
  if (!prepare("sum", n, out, workspace, workspace_bytes, need, stream)) return;
  KESTREL_CUDA_CHECK(cub::DeviceReduce::Sum(workspace, need, x, out, n, stream));
}

void sum_squares(const float* x, std::int64_t n, float* out, void* workspace,
                 std::size_t workspace_bytes, cudaStream_t stream) {
  reduce_detail::check_reduce("sum_squares", n, x, DType::kFloat32, out);
  std::size_t need = n > 0 ? transform_reduce_bytes<float, float>(n, reduce_detail::Square{}) : 0;
  if (!prepare("sum_squares", n, out, workspace, workspace_bytes, need, stream)) return;
  KESTREL_CUDA_CHECK(cub::DeviceReduce::TransformReduce(workspace, need, x, out, n, Plus{},
                                                        reduce_detail::Square{}, 0.f, stream));
}

void count_nonfinite(const void* x, DType dtype, std::int64_t n, std::int32_t* out,
                     void* workspace, std::size_t workspace_bytes, cudaStream_t stream) {
  reduce_detail::check_count_nonfinite(x, dtype, n, out);
  if (dtype == DType::kFloat32) {
    std::size_t need = n > 0 ? transform_reduce_bytes<float, std::int32_t>(n, reduce_detail::NonFiniteF32{}) : 0;
    if (!prepare("count_nonfinite", n, out, workspace, workspace_bytes, need, stream)) return;
    KESTREL_CUDA_CHECK(cub::DeviceReduce::TransformReduce(workspace, need, static_cast<const float*>(x),
                                                          out, n, Plus{}, reduce_detail::NonFiniteF32{},
                                                          std::int32_t{0}, stream));
  } else {
    const reduce_detail::NonFinite16 f = reduce_detail::nonfinite16(dtype);
    std::size_t need = n > 0 ? transform_reduce_bytes<std::uint16_t, std::int32_t>(n, f) : 0;
    if (!prepare("count_nonfinite", n, out, workspace, workspace_bytes, need, stream)) return;
    KESTREL_CUDA_CHECK(cub::DeviceReduce::TransformReduce(workspace, need,
                                                          static_cast<const std::uint16_t*>(x), out, n,
                                                          Plus{}, f, std::int32_t{0}, stream));
  }
}

}  // namespace kestrel::cuda
