#include "kestrel/core/error.h"
#include "kestrel/kernels/fill.h"
#include "kestrel/kernels/element_io.h"
#include "kestrel/kernels/fill_math.h"
#include "kestrel/kernels/launch_internal.cuh"

namespace kestrel::cuda {
namespace {
constexpr int kThreads = 256;

enum class FillKind { kConstant, kUniform, kNormal };

__global__ void fill_kernel(void* out, DType dtype, std::int64_t n, FillKind kind,
                            std::uint64_t seed, std::uint64_t offset, float a, float b) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    float v = a;
    if (kind == FillKind::kUniform) v = fill_detail::uniform_value(seed, offset, i, a, b);
    if (kind == FillKind::kNormal) v = fill_detail::normal_value(seed, offset, i, a, b);
    fill_detail::store_as(out, dtype, i, v);
  }
}

void launch(void* out, DType dtype, std::int64_t n, FillKind kind, std::uint64_t seed,
            std::uint64_t offset, float a, float b, cudaStream_t stream) {
  KESTREL_CHECK(is_floating(dtype), "fill needs a floating dtype, got ", dtype_name(dtype));
  element_io::check_buffers("fill", n, dtype, {out});
  if (n == 0) return;
  fill_kernel<<<cuda_detail::grid_for(n, kThreads), kThreads, 0, stream>>>(out, dtype, n, kind, seed,
                                                                           offset, a, b);
  KESTREL_CUDA_CHECK_LAUNCH();
}
}  // namespace

void fill_constant(void* out, DType dtype, std::int64_t n, float value, cudaStream_t stream) {
  launch(out, dtype, n, FillKind::kConstant, 0, 0, value, 0.f, stream);
}

void fill_uniform(void* out, DType dtype, std::int64_t n, std::uint64_t seed, std::uint64_t offset,
                  float lo, float hi, cudaStream_t stream) {
  KESTREL_CHECK(lo <= hi, "fill_uniform: lo (", lo, ") must not exceed hi (", hi, ")");
  launch(out, dtype, n, FillKind::kUniform, seed, offset, lo, hi, stream);
}

void fill_normal(void* out, DType dtype, std::int64_t n, std::uint64_t seed, std::uint64_t offset,
                 float mean, float stddev, cudaStream_t stream) {
  KESTREL_CHECK(stddev >= 0.f, "fill_normal: stddev must be >= 0, got ", stddev);
  launch(out, dtype, n, FillKind::kNormal, seed, offset, mean, stddev, stream);
}

}  // namespace kestrel::cuda
