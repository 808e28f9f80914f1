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

// Element base + j of a unit that starts at element `base` (the unit's words w drawn): the
// scalar form, for units that are partial or not 16-byte aligned (rare: not inlined, so that
// it costs the vector loop no registers).
template <typename T, int kN>
__device__ __noinline__ void dropout_unit_scalar(const T* x, T* y, std::int64_t n, std::int64_t base,
                                                 uint4 words, std::uint32_t threshold, float factor) {
  const std::uint32_t w[4] = {words.x, words.y, words.z, words.w};  // kN / 2 of them used
#pragma unroll
  for (int j = 0; j < kN; ++j) {
    if (base + j < n) {
      const float v = element_io::load(x, base + j);
      element_io::store(y, base + j, dropout_detail::apply(v, dropout_detail::half_bits(w[j >> 1], j), threshold, factor));
    }
  }
}

// One thread handles units of 16 bytes: 4 fp32 (half of the 8 elements one Philox block
// serves) or 8 16-bit values (a whole block), so a warp's 16-byte accesses cover 512 contiguous
// bytes. Units start at element 0, so element i always uses bits mask_bits(block i / 8, i % 8),
// on the vector path (`vectorized`: x and y 16-byte aligned) and the scalar path alike; the two
// fp32 units of a block each draw the block (fp32 was bound by memory, not by Philox).
// Each trip of the grid-stride loop takes two units, u and u + stride, and issues both 16-byte
// loads before drawing either block, so a thread keeps 32 bytes in flight: with 2048 threads an
// SM (the launch bounds cap registers at 32 for 8 blocks of 256) that is 64 KB an SM, against
// the ~26 KB that Little's law asks at 4.8 TB/s and ~700 ns over 132 SMs; one unit a trip gave
// 32 KB, too close to it. Philox hides the latency of both loads. (Not yet measured on a GPU.)
template <typename T>
__global__ void __launch_bounds__(kThreads, 8)
    dropout_kernel(const T* x, T* y, std::int64_t n, MaskArgs m, bool vectorized) {
  constexpr int kN = cuda_detail::kVecElems<T>;  // a unit is one 16-byte vector
  constexpr int kUnitsPerBlock = dropout_detail::kElementsPerBlock / kN;
  static_assert(kUnitsPerBlock * kN == dropout_detail::kElementsPerBlock, "units split Philox blocks evenly");
  const std::uint64_t offset = stream_offset(m.offset, m.offset_ptr);
  const std::int64_t units = (n + kN - 1) / kN;
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t u0 = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; u0 < units;
       u0 += 2 * stride) {
    const std::int64_t us[2] = {u0, u0 + stride};
    bool full[2];
    uint4 raw[2];  // a unit is one 16-byte vector; unpacked to floats only when used
#pragma unroll
    for (int k = 0; k < 2; ++k) {
      full[k] = vectorized && us[k] < units && us[k] * kN + kN <= n;
      if (full[k]) raw[k] = *reinterpret_cast<const uint4*>(x + us[k] * kN);
    }
#pragma unroll
    for (int k = 0; k < 2; ++k) {
      if (us[k] >= units) break;
      const std::int64_t base = us[k] * kN;
      const auto block = static_cast<std::uint64_t>(us[k] / kUnitsPerBlock);
      const int first = static_cast<int>(us[k] % kUnitsPerBlock) * kN;  // element of the block at base
      std::uint32_t w[kN / 2];  // element base + j uses half j % 2 of w[j / 2] (first is even)
      unit_words<kN, kUnitsPerBlock>(philox_block(m.seed, offset, block), first, w);
      if (full[k]) {
        float v[kN];
        cuda_detail::unpack16(raw[k], v, T{});
#pragma unroll
        for (int j = 0; j < kN; ++j)
          v[j] = dropout_detail::apply(v[j], dropout_detail::half_bits(w[j >> 1], j), m.threshold, m.factor);
        *reinterpret_cast<uint4*>(y + base) = cuda_detail::pack16(v, T{});
      } else {
        std::uint32_t w4[4] = {0u, 0u, 0u, 0u};  // by value: a by-reference array would go to the stack
#pragma unroll
        for (int j = 0; j < kN / 2; ++j) w4[j] = w[j];
        dropout_unit_scalar<T, kN>(x, y, n, base, uint4{w4[0], w4[1], w4[2], w4[3]}, m.threshold, m.factor);
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
        static cuda_detail::PerDeviceCache occupancy;  // per instantiation, per device
        constexpr int kN = cuda_detail::kVecElems<T>;
        const std::int64_t units = (n + kN - 1) / kN;
        const unsigned grid = cuda_detail::resident_grid(occupancy, dropout_kernel<T>, kThreads, units);
        dropout_kernel<T><<<grid, kThreads, 0, stream>>>(
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
