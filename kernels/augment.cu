#include "kestrel/core/error.h"
#include "kestrel/kernels/augment.h"
#include "kestrel/kernels/element_io.h"
#include "kestrel/kernels/launch_internal.cuh"

namespace kestrel::cuda {
namespace {
using namespace augment_detail;
constexpr int kThreads = 256;

// One thread per output element in the output's memory order (coalesced stores); the image's
// draw is recomputed per element (a Philox block is cheaper than a second pass).
__global__ void augment_kernel(const std::uint8_t* dataset, std::int64_t num_images,
                               const std::uint8_t* labels_in, const std::int32_t* indices,
                               std::int64_t n, void* out, DType out_dtype, Layout out_layout,
                               std::int32_t* labels_out, int pad, bool random_crop,
                               bool random_flip, Norm norm, std::uint64_t seed,
                               std::uint64_t offset, const std::uint64_t* offset_ptr) {
  const std::uint64_t off = stream_offset(offset, offset_ptr);
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  const std::int64_t first = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  for (std::int64_t i = first; i < n * kImageBytes; i += stride) {
    const element_io::Index4 at = element_io::coords4(out_layout, i, kChannels, kSide, kSide);
    const std::int32_t index = indices[at.n];
    float v = NAN;
    if (index >= 0 && index < num_images) {
      const Draw d = draw(seed, off, at.n, pad, random_crop, random_flip);
      v = pixel(dataset + index * kImageBytes, static_cast<int>(at.c), static_cast<int>(at.y),
                static_cast<int>(at.x), d, pad, norm);
    }
    element_io::store_float(out, out_dtype, i, v);
  }
  if (labels_out == nullptr) return;
  for (std::int64_t b = first; b < n; b += stride) {
    const std::int32_t index = indices[b];
    labels_out[b] = index >= 0 && index < num_images ? static_cast<std::int32_t>(labels_in[index]) : -1;
  }
}
}  // namespace

void augment_batch(const std::uint8_t* dataset, std::int64_t num_images,
                   const std::uint8_t* labels_in, const std::int32_t* indices, std::int64_t n,
                   void* out, DType out_dtype, Layout out_layout, std::int32_t* labels_out,
                   const AugmentParams& p, cudaStream_t stream) {
  check_augment(num_images, n, out_dtype, p, dataset, indices, out, labels_in, labels_out);
  if (n == 0) return;
  augment_kernel<<<cuda_detail::grid_for(n * kImageBytes, kThreads), kThreads, 0, stream>>>(
      dataset, num_images, labels_in, indices, n, out, out_dtype, out_layout, labels_out, p.pad,
      p.random_crop, p.random_flip, normalisation(p), p.seed, p.offset, p.offset_ptr);
  KESTREL_CUDA_CHECK_LAUNCH();
}

}  // namespace kestrel::cuda
