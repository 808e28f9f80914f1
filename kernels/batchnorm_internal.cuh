// Building blocks of the batch-normalisation kernels (private): vector access, the batched walk
// over a block's share of the tensor, the reduction / elementwise kernel templates for both
// layouts, the per-channel combine kernels and the dtype / vector-width / layout dispatch.
//
// A kernel "op" supplies: Args (kernel argument), Regs, Partial (reductions), kV, kLanes,
// kChannelsLast, kMinBlocks (blocks an SM the launch bounds ask for: the register cap), a
// constructor Op(args, first_channel), load(off) -> Regs, consume(regs, off), and partial(lane)
// for reductions. Lane j of a vector is channel first_channel + j in the
// channels-last layout; in NCHW all lanes are the block's one channel (kLanes == 1).
#pragma once

#include <cub/cub.cuh>

#include <cstdint>
#include <initializer_list>

#include "kestrel/core/cuda_check_internal.h"
#include "kestrel/core/dtype.h"
#include "kestrel/core/error.h"
#include "kestrel/core/half.h"
#include "kestrel/kernels/batchnorm_math.h"
#include "kestrel/kernels/element_io.h"

namespace kestrel::cuda_detail::bn {

using bn_detail::BnGeometry;
using bn_detail::GradSums;
using bn_detail::kThreads;
using bn_detail::Welford;

// Element conversions: element_io's, shared with every other kernel family.
using element_io::from_float;
template <typename S>
__device__ __forceinline__ float as_float(S v) { return element_io::to_float(v); }

// V consecutive elements; 16-byte aligned (one vector instruction) when V * sizeof(S) == 16.
template <typename S, int V>
struct alignas(sizeof(S) * V) Pack {
  S v[V];
};

template <typename S, int V>
__device__ __forceinline__ Pack<S, V> load_pack(const S* base, std::int64_t off) {
  return *reinterpret_cast<const Pack<S, V>*>(base + off);
}

template <typename S, int V>
__device__ __forceinline__ void store_pack(S* base, std::int64_t off, const Pack<S, V>& p) {
  *reinterpret_cast<Pack<S, V>*>(base + off) = p;
}

// Compile-time configuration of one kernel instance.
template <typename S, int V, bool ChannelsLast>
struct Cfg {
  using Storage = S;
  static constexpr int kV = V;
  static constexpr bool kChannelsLast = ChannelsLast;
  static constexpr int kLanes = ChannelsLast ? V : 1;  // distinct channels in one vector
  // Vectors a thread loads before using any (memory-level parallelism); 8-lane bf16 vectors
  // unpack into twice the registers, so they batch two (that keeps every kernel unspilled at
  // its op's kMinBlocks blocks of 256 threads per SM: 3 forward, 2 backward).
  static constexpr int kUnroll = V > 4 ? 2 : 4;
  __device__ static constexpr int lane(int j) { return ChannelsLast ? j : 0; }
};

struct Combine {
  __device__ Welford operator()(const Welford& a, const Welford& b) const {
    return bn_detail::welford_combine(a, b);
  }
  __device__ GradSums operator()(const GradSums& a, const GradSums& b) const {
    return bn_detail::grad_sums_combine(a, b);
  }
};

// Loads Op::kUnroll vectors, then consumes them, until the cursor is exhausted.
template <class Op, class Cursor>
__device__ __forceinline__ void walk(Op& op, Cursor& cur) {
  constexpr int kUnroll = Op::kUnroll;
  bool more = true;
  while (more) {
    std::int64_t off[kUnroll];
    bool ok[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) ok[u] = cur.next(off[u]);
    typename Op::Regs r[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u)
      if (ok[u]) r[u] = op.load(off[u]);
#pragma unroll
    for (int u = 0; u < kUnroll; ++u)
      if (ok[u]) op.consume(r[u], off[u]);
    more = ok[kUnroll - 1];
  }
}

// NCHW reduction: block b covers part b % parts of channel b / parts; one partial per block.
template <class Op>
__global__ void __launch_bounds__(kThreads, Op::kMinBlocks)
    reduce_nchw_kernel(typename Op::Args a, BnGeometry g, typename Op::Partial* part) {
  const std::int64_t b = blockIdx.x;
  const std::int64_t ch = b / g.parts, k = b % g.parts;
  Op op(a, ch);
  bn_detail::NchwCursor cur(g, ch, k, static_cast<int>(threadIdx.x));
  walk(op, cur);
  using Reduce = cub::BlockReduce<typename Op::Partial, kThreads>;
  __shared__ typename Reduce::TempStorage tmp;
  const typename Op::Partial p = Reduce(tmp).Reduce(op.partial(0), Combine{});
  if (threadIdx.x == 0) part[ch * g.parts + k] = p;
}

// Channels-last reduction: block (part, tile) covers a range of rows and col_tile vector columns;
// its threads' partials are folded across row lanes in shared memory (a tree, fixed order).
template <class Op>
__global__ void __launch_bounds__(kThreads, Op::kMinBlocks)
    reduce_nhwc_kernel(typename Op::Args a, BnGeometry g, typename Op::Partial* part) {
  using P = typename Op::Partial;
  constexpr int V = Op::kV;
  extern __shared__ __align__(16) unsigned char bn_smem[];
  P* sm = reinterpret_cast<P*>(bn_smem);
  bn_detail::NhwcCursor cur(g, blockIdx.x, blockIdx.y, static_cast<int>(threadIdx.x));
  const std::int64_t ch0 = cur.active ? cur.first_channel() : 0;  // idle threads read channel 0
  Op op(a, ch0);
  walk(op, cur);

  const int col_tile = static_cast<int>(g.col_tile), rows = static_cast<int>(g.rows_per_iter);
  const int width = col_tile * V;
  const int row_lane = static_cast<int>(threadIdx.x) / col_tile;
  const int slot = (static_cast<int>(threadIdx.x) % col_tile) * V;
  if (row_lane < rows) {
#pragma unroll
    for (int j = 0; j < V; ++j) sm[row_lane * width + slot + j] = cur.active ? op.partial(j) : P{};
  }
  __syncthreads();
  int top = 1;
  while (top < rows) top <<= 1;
  for (int s = top / 2; s > 0; s >>= 1) {
    if (row_lane < s && row_lane + s < rows) {
#pragma unroll
      for (int j = 0; j < V; ++j) {
        P& dst = sm[row_lane * width + slot + j];
        dst = Combine{}(dst, sm[(row_lane + s) * width + slot + j]);
      }
    }
    __syncthreads();
  }
  if (row_lane == 0 && cur.active) {
#pragma unroll
    for (int j = 0; j < V; ++j) part[(ch0 + j) * g.parts + blockIdx.x] = sm[slot + j];
  }
}

// Elementwise passes visit the blocks in the reverse order of the reduction, so that the first
// blocks find what the reduction read last still in L2.
template <class Op>
__global__ void __launch_bounds__(kThreads, Op::kMinBlocks) apply_nchw_kernel(typename Op::Args a, BnGeometry g) {
  const std::int64_t b = static_cast<std::int64_t>(gridDim.x) - 1 - blockIdx.x;
  const std::int64_t ch = b / g.parts, k = b % g.parts;
  Op op(a, ch);
  bn_detail::NchwCursor cur(g, ch, k, static_cast<int>(threadIdx.x));
  walk(op, cur);
}

template <class Op>
__global__ void __launch_bounds__(kThreads, Op::kMinBlocks) apply_nhwc_kernel(typename Op::Args a, BnGeometry g) {
  bn_detail::NhwcCursor cur(g, gridDim.x - 1 - blockIdx.x, blockIdx.y,
                            static_cast<int>(threadIdx.x));
  if (!cur.active) return;
  Op op(a, cur.first_channel());
  walk(op, cur);
}

// Raises if the geometry does not fit CUDA's grid limits (before anything is launched).
void check_grid(const BnGeometry& g);

// One block per channel merges the channel's `parts` partials in index order, then writes
// save_mean / save_invstd and updates the running statistics (forward), or writes the channel
// sums {dbeta, dgamma} to `sums` and to dbeta / dgamma where not null (backward).
void launch_finalize_stats(const BnGeometry& g, const Welford* part, float m, float eps,
                           float momentum, float* save_mean, float* save_invstd,
                           float* running_mean, float* running_var, cudaStream_t stream);
void launch_finalize_grads(const BnGeometry& g, const GradSums* part, const float* save_invstd,
                           GradSums* sums, float* dgamma, float* dbeta, cudaStream_t stream);

template <class Op>
void launch_reduce(const BnGeometry& g, const typename Op::Args& a, typename Op::Partial* part,
                   cudaStream_t stream) {
  if constexpr (Op::kChannelsLast) {
    const dim3 grid(static_cast<unsigned>(g.parts), static_cast<unsigned>(g.col_tiles));
    const std::size_t smem = static_cast<std::size_t>(g.rows_per_iter * g.col_tile) * Op::kV *
                             sizeof(typename Op::Partial);
    reduce_nhwc_kernel<Op><<<grid, kThreads, smem, stream>>>(a, g, part);
  } else {
    reduce_nchw_kernel<Op><<<static_cast<unsigned>(g.c * g.parts), kThreads, 0, stream>>>(a, g,
                                                                                          part);
  }
  KESTREL_CUDA_CHECK_LAUNCH();
}

template <class Op>
void launch_apply(const BnGeometry& g, const typename Op::Args& a, cudaStream_t stream) {
  if constexpr (Op::kChannelsLast) {
    const dim3 grid(static_cast<unsigned>(g.parts), static_cast<unsigned>(g.col_tiles));
    apply_nhwc_kernel<Op><<<grid, kThreads, 0, stream>>>(a, g);
  } else {
    apply_nchw_kernel<Op><<<static_cast<unsigned>(g.c * g.parts), kThreads, 0, stream>>>(a, g);
  }
  KESTREL_CUDA_CHECK_LAUNCH();
}

// 16-byte vectors when the dtype allows, the vectorised extent (hw in NCHW, c channels-last) is a
// multiple of the vector and every pointer is 16-byte aligned; single elements otherwise.
std::int64_t vector_width(DType dtype, const BatchNormDims& d,
                          std::initializer_list<const void*> ptrs);

// The launch geometry for dtype, d and the tensors' pointers (vector_width, bn_geometry), checked
// against CUDA's grid limits.
BnGeometry launch_geometry(DType dtype, const BatchNormDims& d,
                           std::initializer_list<const void*> ptrs);

template <typename S, class F>
void dispatch_storage(bool vec, bool channels_last, F& f) {
  constexpr int kVec = 16 / static_cast<int>(sizeof(S));
  if (vec && channels_last) {
    f(Cfg<S, kVec, true>{});
  } else if (vec) {
    f(Cfg<S, kVec, false>{});
  } else if (channels_last) {
    f(Cfg<S, 1, true>{});
  } else {
    f(Cfg<S, 1, false>{});
  }
}

// Calls f(Cfg<storage, vector width, layout>{}) for the configuration of g and dtype.
template <class F>
void dispatch(DType dtype, const BnGeometry& g, F&& f) {
  if (dtype == DType::kFloat32) {
    dispatch_storage<float>(g.v > 1, g.channels_last, f);
  } else {
    dispatch_storage<bfloat16>(g.v > 1, g.channels_last, f);
  }
}

}  // namespace kestrel::cuda_detail::bn
