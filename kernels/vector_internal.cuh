// 16-byte vector access for Kestrel's streaming kernels (dropout, elementwise, casts).
//
// A kernel splits its n elements into "units" of kN consecutive elements starting at element 0
// of the buffer (not at an address boundary), so the element -> unit mapping never depends on
// where the buffer lies in memory. A unit is read with 16-byte loads when every buffer the kernel
// touches is 16-byte aligned and the unit lies wholly inside [0, n); otherwise (unaligned
// pointers, the partial last unit) element by element. Both paths compute the same per-element
// formula, so the result does not depend on alignment.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "kestrel/core/cuda_check_internal.h"
#include "kestrel/kernels/element_io.h"
#include "kestrel/kernels/launch_internal.cuh"

namespace kestrel::cuda_detail {

// Elements of T in 16 bytes.
template <typename T>
constexpr int kVecElems = static_cast<int>(16 / sizeof(T));

inline bool aligned16(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }

// 16 bytes -> floats (4 fp32 or 8 16-bit values; element k of memory is v[k]).
__device__ __forceinline__ void unpack16(uint4 r, float* v, float) {
  v[0] = __uint_as_float(r.x);
  v[1] = __uint_as_float(r.y);
  v[2] = __uint_as_float(r.z);
  v[3] = __uint_as_float(r.w);
}
template <typename T>
__device__ __forceinline__ void unpack16(uint4 r, float* v, T) {
  const std::uint32_t w[4] = {r.x, r.y, r.z, r.w};
#pragma unroll
  for (int k = 0; k < 4; ++k) {  // little endian: the low half is the lower address
    v[2 * k] = element_io::to_float(T{static_cast<std::uint16_t>(w[k] & 0xffffu)});
    v[2 * k + 1] = element_io::to_float(T{static_cast<std::uint16_t>(w[k] >> 16)});
  }
}

__device__ __forceinline__ uint4 pack16(const float* v, float) {
  return make_uint4(__float_as_uint(v[0]), __float_as_uint(v[1]), __float_as_uint(v[2]),
                    __float_as_uint(v[3]));
}
// Two 16-bit values a word, converted by one instruction each pair (core/half.h).
__device__ __forceinline__ std::uint32_t pack_pair(float lo, float hi, bfloat16) {
  return bf16x2_bits_from_floats(lo, hi);
}
__device__ __forceinline__ std::uint32_t pack_pair(float lo, float hi, float16) {
  return fp16x2_bits_from_floats(lo, hi);
}
template <typename T>
__device__ __forceinline__ uint4 pack16(const float* v, T) {
  return make_uint4(pack_pair(v[0], v[1], T{}), pack_pair(v[2], v[3], T{}),
                    pack_pair(v[4], v[5], T{}), pack_pair(v[6], v[7], T{}));
}

// kN elements at p (16-byte aligned; kN * sizeof(T) a multiple of 16) to floats and back.
template <int kN, typename T>
__device__ __forceinline__ void load_unit(const T* p, float (&v)[kN]) {
  static_assert(kN * sizeof(T) % 16 == 0, "a unit is whole 16-byte vectors");
  const uint4* q = reinterpret_cast<const uint4*>(p);
#pragma unroll
  for (int c = 0; c < kN / kVecElems<T>; ++c) unpack16(q[c], v + c * kVecElems<T>, T{});
}
template <int kN, typename T>
__device__ __forceinline__ void store_unit(T* p, const float (&v)[kN]) {
  static_assert(kN * sizeof(T) % 16 == 0, "a unit is whole 16-byte vectors");
  uint4* q = reinterpret_cast<uint4*>(p);
#pragma unroll
  for (int c = 0; c < kN / kVecElems<T>; ++c) q[c] = pack16(v + c * kVecElems<T>, T{});
}

// A grid-stride grid for `units` of work (`threads` a block) whose blocks are all resident from
// the start: the multiprocessors of the current device times the blocks of `kernel` one of them
// holds at once (no partial second wave while other multiprocessors idle), never more than the
// work needs. The occupancy depends on the kernel and the device's architecture, so each
// launcher keeps one `cache` per kernel instantiation (a function-local static), keyed by device
// inside; one cudaGetDevice a launch.
template <typename Kernel>
unsigned resident_grid(PerDeviceCache& cache, Kernel kernel, int threads, std::int64_t units) {
  const int dev = current_device();
  const int per_sm = cache.get(dev, [&] {
    int blocks = 0;
    KESTREL_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, kernel, threads, 0));
    return std::max(blocks, 1);
  });
  return grid_within(units, threads, static_cast<std::int64_t>(sm_count(dev)) * per_sm);
}

}  // namespace kestrel::cuda_detail
