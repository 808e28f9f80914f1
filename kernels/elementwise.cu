#include <algorithm>
#include <array>

#include "kestrel/core/error.h"
#include "kestrel/kernels/elementwise.h"
#include "kestrel/kernels/elementwise_math.h"
#include "kestrel/kernels/vector_internal.cuh"

namespace kestrel::cuda {
namespace {
using element_io::dispatch_floating;
using elementwise_detail::MapPtrs;

constexpr int kThreads = 256;

// Elements a thread handles at once: 16 bytes of the narrower of the two storage types.
template <typename TIn, typename TOut>
constexpr int kUnit =
    cuda_detail::kVecElems<TIn> > cuda_detail::kVecElems<TOut> ? cuda_detail::kVecElems<TIn>
                                                               : cuda_detail::kVecElems<TOut>;

// Grid-stride over units of kUnit elements (kernels/vector_internal.cuh). `vectorized`: every
// pointer is 16-byte aligned. All inputs of a unit are read before any output is written.
template <typename TIn, typename TOut, int kIn, int kOut, typename Op>
__global__ void __launch_bounds__(kThreads)
    map_kernel(MapPtrs<TIn, TOut, kIn, kOut> p, std::int64_t n, bool vectorized, Op op) {
  constexpr int kN = kUnit<TIn, TOut>;
  const std::int64_t units = (n + kN - 1) / kN;
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t u = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; u < units;
       u += stride) {
    const std::int64_t base = u * kN;
    if (vectorized && base + kN <= n) {
      float a[kIn][kN];
      float r[kOut][kN];
#pragma unroll
      for (int k = 0; k < kIn; ++k) cuda_detail::load_unit<kN>(p.in[k] + base, a[k]);
#pragma unroll
      for (int j = 0; j < kN; ++j) {
        float e[kIn];
        float o[kOut];
#pragma unroll
        for (int k = 0; k < kIn; ++k) e[k] = a[k][j];
        op(e, o);
#pragma unroll
        for (int k = 0; k < kOut; ++k) r[k][j] = o[k];
      }
#pragma unroll
      for (int k = 0; k < kOut; ++k) cuda_detail::store_unit<kN>(p.out[k] + base, r[k]);
    } else {
      const std::int64_t end = base + kN < n ? base + kN : n;
      for (std::int64_t i = base; i < end; ++i) elementwise_detail::map_element(p, i, op);
    }
  }
}

template <typename TIn, typename TOut, int kIn, int kOut, typename Op>
void launch_map(const std::array<const void*, kIn>& in, const std::array<void*, kOut>& out,
                std::int64_t n, const Op& op, cudaStream_t stream) {
  if (n == 0) return;
  MapPtrs<TIn, TOut, kIn, kOut> p{};
  bool vectorized = true;
  for (int k = 0; k < kIn; ++k) {
    p.in[k] = static_cast<const TIn*>(in[k]);
    vectorized = vectorized && cuda_detail::aligned16(in[k]);
  }
  for (int k = 0; k < kOut; ++k) {
    p.out[k] = static_cast<TOut*>(out[k]);
    vectorized = vectorized && cuda_detail::aligned16(out[k]);
  }
  const auto kernel = map_kernel<TIn, TOut, kIn, kOut, Op>;
  static cuda_detail::PerDeviceCache occupancy;  // per instantiation, per device
  constexpr int kN = kUnit<TIn, TOut>;
  const std::int64_t units = (n + kN - 1) / kN;
  const unsigned grid = cuda_detail::resident_grid(occupancy, kernel, kThreads, units);
  kernel<<<grid, kThreads, 0, stream>>>(p, n, vectorized, op);
  KESTREL_CUDA_CHECK_LAUNCH();
}

// Checks the arguments, then applies `op` to every element in the storage type of `dtype`.
template <int kIn, int kOut, typename Op>
void run(const char* what, const std::array<const void*, kIn>& in,
         const std::array<void*, kOut>& out, std::int64_t n, DType dtype, const Op& op,
         cudaStream_t stream) {
  element_io::check_buffers(what, n, dtype, in);
  element_io::check_buffers(what, n, dtype, out);
  dispatch_floating(dtype, what, [&](auto tag) {
    using T = decltype(tag);
    launch_map<T, T, kIn, kOut>(in, out, n, op, stream);
  });
}
}  // namespace

void add(const void* a, const void* b, void* y, std::int64_t n, DType dtype, cudaStream_t stream) {
  run<2, 1>("add", {a, b}, {y}, n, dtype, elementwise_detail::AddOp{}, stream);
}
void accumulate(void* y, const void* x, std::int64_t n, DType dtype, cudaStream_t stream) {
  run<2, 1>("accumulate", {y, x}, {y}, n, dtype, elementwise_detail::AddOp{}, stream);
}
void add_relu(const void* a, const void* b, void* y, std::int64_t n, DType dtype,
              cudaStream_t stream) {
  run<2, 1>("add_relu", {a, b}, {y}, n, dtype, elementwise_detail::AddReluOp{}, stream);
}
void add_relu_backward(const void* dy, const void* y, void* dx, std::int64_t n, DType dtype,
                       cudaStream_t stream) {
  run<2, 1>("add_relu_backward", {dy, y}, {dx}, n, dtype, elementwise_detail::ReluBackwardOp{},
            stream);
}
void relu(const void* x, void* y, std::int64_t n, DType dtype, cudaStream_t stream) {
  run<1, 1>("relu", {x}, {y}, n, dtype, elementwise_detail::ReluOp{}, stream);
}
void relu_backward(const void* dy, const void* y, void* dx, std::int64_t n, DType dtype,
                   cudaStream_t stream) {
  run<2, 1>("relu_backward", {dy, y}, {dx}, n, dtype, elementwise_detail::ReluBackwardOp{}, stream);
}
void scale(const void* x, void* y, std::int64_t n, DType dtype, float alpha, cudaStream_t stream) {
  run<1, 1>("scale", {x}, {y}, n, dtype, elementwise_detail::ScaleOp{alpha}, stream);
}
void mul(const void* a, const void* b, void* y, std::int64_t n, DType dtype, cudaStream_t stream) {
  run<2, 1>("mul", {a, b}, {y}, n, dtype, elementwise_detail::MulOp{}, stream);
}
void mul_backward(const void* dy, const void* a, const void* b, void* da, void* db, std::int64_t n,
                  DType dtype, cudaStream_t stream) {
  KESTREL_CHECK(da != db || n == 0, "mul_backward: da and db must be distinct buffers");
  run<3, 2>("mul_backward", {dy, a, b}, {da, db}, n, dtype, elementwise_detail::MulBackwardOp{},
            stream);
}
void sigmoid(const void* x, void* y, std::int64_t n, DType dtype, cudaStream_t stream) {
  run<1, 1>("sigmoid", {x}, {y}, n, dtype, elementwise_detail::SigmoidOp{}, stream);
}
void sigmoid_backward(const void* dy, const void* y, void* dx, std::int64_t n, DType dtype,
                      cudaStream_t stream) {
  run<2, 1>("sigmoid_backward", {dy, y}, {dx}, n, dtype, elementwise_detail::SigmoidBackwardOp{},
            stream);
}
void tanh_forward(const void* x, void* y, std::int64_t n, DType dtype, cudaStream_t stream) {
  run<1, 1>("tanh_forward", {x}, {y}, n, dtype, elementwise_detail::TanhOp{}, stream);
}
void tanh_backward(const void* dy, const void* y, void* dx, std::int64_t n, DType dtype,
                   cudaStream_t stream) {
  run<2, 1>("tanh_backward", {dy, y}, {dx}, n, dtype, elementwise_detail::TanhBackwardOp{}, stream);
}

void cast(const void* x, DType from, void* y, DType to, std::int64_t n, cudaStream_t stream) {
  element_io::check_buffers("cast", n, from, {x});
  element_io::check_buffers("cast", n, to, {y});
  element_io::check_cast_buffers("cast", x, from, y, to, n);
  dispatch_floating(from, "cast (source)", [&](auto src) {
    dispatch_floating(to, "cast (destination)", [&](auto dst) {
      using S = decltype(src);
      using D = decltype(dst);
      if (n == 0 || (from == to && x == y)) return;
      if (from == to) {
        KESTREL_CUDA_CHECK(cudaMemcpyAsync(y, x, static_cast<std::size_t>(n) * sizeof(S),
                                           cudaMemcpyDeviceToDevice, stream));
      } else {
        launch_map<S, D, 1, 1>({x}, {y}, n, elementwise_detail::CopyOp{}, stream);
      }
    });
  });
}

}  // namespace kestrel::cuda
