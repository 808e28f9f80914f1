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

// One thread handles a unit of the 8 elements one Philox block serves per iteration (32 bytes of
// fp32, 16 bytes of 16-bit values). Units start at element 0, so element i always uses bits
// mask_bits(block i / 8, i % 8), on the vector path (`vectorized`: x and y 16-byte aligned) and
// the scalar path alike. The vector path issues its loads before drawing the block, so Philox
// hides the load latency.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    dropout_kernel(const T* x, T* y, std::int64_t n, MaskArgs m, bool vectorized) {
  constexpr int kN = dropout_detail::kElementsPerBlock;
  const std::uint64_t offset = m.offset + (m.offset_ptr != nullptr ? *m.offset_ptr : 0);
  const std::int64_t units = (n + kN - 1) / kN;
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t u = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; u < units;
       u += stride) {
    const std::int64_t base = u * kN;
    if (vectorized && base + kN <= n) {
      float v[kN];
      cuda_detail::load_unit<kN>(x + base, v);
      const Philox4x32 r = philox_block(m.seed, offset, static_cast<std::uint64_t>(u));
#pragma unroll
      for (int j = 0; j < kN; ++j)
        v[j] = dropout_detail::apply(v[j], dropout_detail::mask_bits(r, j), m.threshold, m.factor);
      cuda_detail::store_unit<kN>(y + base, v);
    } else {
      const Philox4x32 r = philox_block(m.seed, offset, static_cast<std::uint64_t>(u));
#pragma unroll
      for (int j = 0; j < kN; ++j) {
        if (base + j < n) {
          const float v = element_io::load(x, base + j);
          element_io::store(y, base + j,
                            dropout_detail::apply(v, dropout_detail::mask_bits(r, j), m.threshold, m.factor));
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
        constexpr int kE = dropout_detail::kElementsPerBlock;
        const std::int64_t units = (n + kE - 1) / kE;
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
