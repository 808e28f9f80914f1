#include "kestrel/kernels/cpu/elementwise.h"

#include <array>
#include <cstring>

#include "kestrel/core/error.h"
#include "kestrel/kernels/elementwise_math.h"

namespace kestrel::cpu {
namespace {
using element_io::dispatch_floating;
using elementwise_detail::MapPtrs;

template <typename TIn, typename TOut, int kIn, int kOut, typename Op>
void map_all(const std::array<const void*, kIn>& in, const std::array<void*, kOut>& out,
             std::int64_t n, const Op& op) {
  MapPtrs<TIn, TOut, kIn, kOut> p{};
  for (int k = 0; k < kIn; ++k) p.in[k] = static_cast<const TIn*>(in[k]);
  for (int k = 0; k < kOut; ++k) p.out[k] = static_cast<TOut*>(out[k]);
  for (std::int64_t i = 0; i < n; ++i) elementwise_detail::map_element(p, i, op);
}

// Checks the arguments, then applies `op` to every element in the storage type of `dtype`.
template <int kIn, int kOut, typename Op>
void run(const char* what, const std::array<const void*, kIn>& in,
         const std::array<void*, kOut>& out, std::int64_t n, DType dtype, const Op& op) {
  element_io::check_buffers(what, n, dtype, in);
  element_io::check_buffers(what, n, dtype, out);
  dispatch_floating(dtype, what, [&](auto tag) {
    using T = decltype(tag);
    map_all<T, T, kIn, kOut>(in, out, n, op);
  });
}
}  // namespace

void add(const void* a, const void* b, void* y, std::int64_t n, DType dtype) {
  run<2, 1>("add", {a, b}, {y}, n, dtype, elementwise_detail::AddOp{});
}
void accumulate(void* y, const void* x, std::int64_t n, DType dtype) {
  run<2, 1>("accumulate", {y, x}, {y}, n, dtype, elementwise_detail::AddOp{});
}
void add_relu(const void* a, const void* b, void* y, std::int64_t n, DType dtype) {
  run<2, 1>("add_relu", {a, b}, {y}, n, dtype, elementwise_detail::AddReluOp{});
}
void add_relu_backward(const void* dy, const void* y, void* dx, std::int64_t n, DType dtype) {
  run<2, 1>("add_relu_backward", {dy, y}, {dx}, n, dtype, elementwise_detail::ReluBackwardOp{});
}
void relu(const void* x, void* y, std::int64_t n, DType dtype) {
  run<1, 1>("relu", {x}, {y}, n, dtype, elementwise_detail::ReluOp{});
}
void relu_backward(const void* dy, const void* y, void* dx, std::int64_t n, DType dtype) {
  run<2, 1>("relu_backward", {dy, y}, {dx}, n, dtype, elementwise_detail::ReluBackwardOp{});
}
void scale(const void* x, void* y, std::int64_t n, DType dtype, float alpha) {
  run<1, 1>("scale", {x}, {y}, n, dtype, elementwise_detail::ScaleOp{alpha});
}
void mul(const void* a, const void* b, void* y, std::int64_t n, DType dtype) {
  run<2, 1>("mul", {a, b}, {y}, n, dtype, elementwise_detail::MulOp{});
}
void mul_backward(const void* dy, const void* a, const void* b, void* da, void* db, std::int64_t n,
                  DType dtype) {
  KESTREL_CHECK(da != db || n == 0, "mul_backward: da and db must be distinct buffers");
  run<3, 2>("mul_backward", {dy, a, b}, {da, db}, n, dtype, elementwise_detail::MulBackwardOp{});
}
void sigmoid(const void* x, void* y, std::int64_t n, DType dtype) {
  run<1, 1>("sigmoid", {x}, {y}, n, dtype, elementwise_detail::SigmoidOp{});
}
void sigmoid_backward(const void* dy, const void* y, void* dx, std::int64_t n, DType dtype) {
  run<2, 1>("sigmoid_backward", {dy, y}, {dx}, n, dtype, elementwise_detail::SigmoidBackwardOp{});
}
void tanh_forward(const void* x, void* y, std::int64_t n, DType dtype) {
  run<1, 1>("tanh_forward", {x}, {y}, n, dtype, elementwise_detail::TanhOp{});
}
void tanh_backward(const void* dy, const void* y, void* dx, std::int64_t n, DType dtype) {
  run<2, 1>("tanh_backward", {dy, y}, {dx}, n, dtype, elementwise_detail::TanhBackwardOp{});
}

void cast(const void* x, DType from, void* y, DType to, std::int64_t n) {
  element_io::check_buffers("cast", n, from, {x});
  element_io::check_buffers("cast", n, to, {y});
  element_io::check_cast_buffers("cast", x, from, y, to, n);
  dispatch_floating(from, "cast (source)", [&](auto src) {
    dispatch_floating(to, "cast (destination)", [&](auto dst) {
      using S = decltype(src);
      using D = decltype(dst);
      if (n == 0) return;
      if (from == to) {
        std::memmove(y, x, static_cast<std::size_t>(n) * sizeof(S));  // exact, NaN payloads too
      } else {
        map_all<S, D, 1, 1>({x}, {y}, n, elementwise_detail::CopyOp{});
      }
    });
  });
}

}  // namespace kestrel::cpu
