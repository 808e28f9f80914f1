#include "kestrel/core/error.h"
#include "kestrel/kernels/dropout.h"
#include "kestrel/kernels/elementwise.h"
#include "kestrel/kernels/vector_internal.cuh"

namespace kestrel::cuda {
namespace {
constexpr int kThreads = 256;

struct MaskArgs {
  std::uint64_t seed;
  std::uint64_t offset;             // added to *offset_ptr
  const std::uint64_t* offset_ptr;  // device memory or null
  std::uint32_t threshold;
  float factor;
};

// The kN / 2 Philox words of the unit that starts at element `first` (a multiple of kN) of block
// r, chosen with compile-time indices (a runtime index into r.x would put it in local memory).
template <int kN, int kUnitsPerBlock>
__device__ __forceinline__ void unit_words(const Philox4x32& r, int first, std::uint32_t (&w)[kN / 2]) {
#pragma unroll
  for (int k = 0; k < kN / 2; ++k) {
    std::uint32_t pick = r.x[k];
#pragma unroll
    for (int s = 1; s < kUnitsPerBlock; ++s)
      if (first == s * kN) pick = r.x[s * kN / 2 + k];
    w[k] = pick;
  }
}

// One thread handles a unit of 16 bytes per iteration: 4 fp32 (half of the 8 elements one
// Philox block serves) or 8 16-bit values (a whole block), so a warp's 16-byte accesses cover
// 512 contiguous bytes. Units start at element 0, so element i always uses bits
// mask_bits(block i / 8, i % 8), on the vector path (`vectorized`: x and y 16-byte aligned) and
// the scalar path alike; the two fp32 units of a block each draw the block (fp32 was bound by
// memory, not by Philox). The vector path issues its load before drawing the block, so Philox
// hides the load latency.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    dropout_kernel(const T* x, T* y, std::int64_t n, MaskArgs m, bool vectorized) {
  constexpr int kN = cuda_detail::kVecElems<T>;
  constexpr int kUnitsPerBlock = dropout_detail::kElementsPerBlock / kN;
  static_assert(kUnitsPerBlock * kN == dropout_detail::kElementsPerBlock, "units split Philox blocks evenly");
  const std::uint64_t offset = stream_offset(m.offset, m.offset_ptr);
  const std::int64_t units = (n + kN - 1) / kN;
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t u = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; u < units;
       u += stride) {
    const std::int64_t base = u * kN;
    const auto block = static_cast<std::uint64_t>(u / kUnitsPerBlock);
    const int first = static_cast<int>(u % kUnitsPerBlock) * kN;  // element of the block at base
    std::uint32_t w[kN / 2];  // element base + j uses half j % 2 of w[j / 2] (first is even)
    if (vectorized && base + kN <= n) {
      float v[kN];
      cuda_detail::load_unit<kN>(x + base, v);
      unit_words<kN, kUnitsPerBlock>(philox_block(m.seed, offset, block), first, w);
#pragma unroll
      for (int j = 0; j < kN; ++j)
        v[j] = dropout_detail::apply(v[j], dropout_detail::half_bits(w[j >> 1], j), m.threshold, m.factor);
      cuda_detail::store_unit<kN>(y + base, v);
    } else {
      unit_words<kN, kUnitsPerBlock>(philox_block(m.seed, offset, block), first, w);
#pragma unroll
      for (int j = 0; j < kN; ++j) {
        if (base + j < n) {
          const float v = element_io::load(x, base + j);
          element_io::store(y, base + j,
                            dropout_detail::apply(v, dropout_detail::half_bits(w[j >> 1], j), m.threshold,
                                                  m.factor));
        }
      }
    }
  }
}

__global__ void advance_offset_kernel(std::uint64_t* offset_ptr, std::uint64_t increment) {
  *offset_ptr += increment;
}

// Forward and backward are the same map (backward applies forward's factor and mask to dy).
void run(const char* what, const void* x, void* y, std::int64_t n, DType dtype,
         const DropoutParams& p, cudaStream_t stream) {
  using dropout_detail::Action;
  dropout_detail::dispatch(what, x, y, n, dtype, p, [&](auto tag, const auto& plan) {
    using T = decltype(tag);
    const std::size_t bytes = static_cast<std::size_t>(n) * sizeof(T);
    switch (plan.action) {
      case Action::kCopy:
        if (x != y)
          KESTREL_CUDA_CHECK(cudaMemcpyAsync(y, x, bytes, cudaMemcpyDeviceToDevice, stream));
        return;
      case Action::kZero:
        KESTREL_CUDA_CHECK(cudaMemsetAsync(y, 0, bytes, stream));  // +0 in every dtype
        return;
      case Action::kScale:
        scale(x, y, n, dtype, plan.factor, stream);
        return;
      case Action::kMask: {
        const MaskArgs m{p.seed, p.offset, p.offset_ptr, plan.threshold, plan.factor};
        const bool vectorized = cuda_detail::aligned16(x) && cuda_detail::aligned16(y);
        static const int per_sm = cuda_detail::blocks_per_sm(dropout_kernel<T>, kThreads);
        constexpr int kN = cuda_detail::kVecElems<T>;
        const std::int64_t units = (n + kN - 1) / kN;
        dropout_kernel<T><<<cuda_detail::grid_for(units, kThreads, per_sm), kThreads, 0, stream>>>(
            static_cast<const T*>(x), static_cast<T*>(y), n, m, vectorized);
        KESTREL_CUDA_CHECK_LAUNCH();
        return;
      }
    }
  });
}
}  // namespace

void dropout_forward(const void* x, void* y, std::int64_t n, DType dtype, const DropoutParams& p,
                     cudaStream_t stream) {
  run("dropout_forward", x, y, n, dtype, p, stream);
}

void dropout_backward(const void* dy, void* dx, std::int64_t n, DType dtype, const DropoutParams& p,
                      cudaStream_t stream) {
  run("dropout_backward", dy, dx, n, dtype, p, stream);
}

void advance_offset(std::uint64_t* offset_ptr, std::uint64_t increment, cudaStream_t stream) {
  KESTREL_CHECK(offset_ptr != nullptr, "advance_offset: null offset pointer");
  advance_offset_kernel<<<1, 1, 0, stream>>>(offset_ptr, increment);
  KESTREL_CUDA_CHECK_LAUNCH();
}

}  // namespace kestrel::cuda
