// Element formulas of the elementwise family, shared by kernels/elementwise.cu and
// kernels/cpu/elementwise.cpp. Each op is a functor taking its inputs as floats and writing its
// outputs as floats; map_element() loads, applies and stores one element of any storage type.
//
// Where a formula has a product followed by a sum it is written with fmaf, so that nvcc's
// contraction and the host compiler cannot round differently: everything here except sigmoid
// and tanh (libm expf/tanhf) gives bit-identical results on host and device.
#pragma once

#include <math.h>

#include <cstdint>

#include "kestrel/core/hd.h"
#include "kestrel/kernels/element_io.h"

namespace kestrel::elementwise_detail {

// Pointers of one elementwise call: kIn inputs of storage type TIn, kOut outputs of TOut (the
// types differ only for casts).
template <typename TIn, typename TOut, int kIn, int kOut>
struct MapPtrs {
  const TIn* in[kIn];
  TOut* out[kOut];
};

// Reads element i of every input first, then writes every output: in-place calls work.
template <typename TIn, typename TOut, int kIn, int kOut, typename Op>
KESTREL_HD void map_element(const MapPtrs<TIn, TOut, kIn, kOut>& ptrs, std::int64_t i,
                            const Op& op) {
  float a[kIn];
  float r[kOut];
  for (int k = 0; k < kIn; ++k) a[k] = element_io::load(ptrs.in[k], i);
  op(a, r);
  for (int k = 0; k < kOut; ++k) element_io::store(ptrs.out[k], i, r[k]);
}

// ReLU keeps NaN (x < 0 is false for NaN), as PyTorch does.
KESTREL_HD float relu_value(float x) { return x < 0.f ? 0.f : x; }

// Overflow-free logistic: exp of a non-positive argument only.
KESTREL_HD float sigmoid_value(float x) {
  if (x >= 0.f) return 1.0f / (1.0f + expf(-x));
  const float e = expf(x);
  return e / (1.0f + e);
}

struct AddOp {  // (a, b) -> a + b
  KESTREL_HD void operator()(const float* a, float* r) const { r[0] = a[0] + a[1]; }
};
struct AddReluOp {  // (a, b) -> max(a + b, 0)
  KESTREL_HD void operator()(const float* a, float* r) const { r[0] = relu_value(a[0] + a[1]); }
};
struct ReluOp {  // x -> max(x, 0)
  KESTREL_HD void operator()(const float* a, float* r) const { r[0] = relu_value(a[0]); }
};
// (dy, y) -> y <= 0 ? 0 : dy, PyTorch's threshold_backward: where the output is NaN the gradient
// passes (and carries the NaN on) instead of becoming an exact, misleading 0.
struct ReluBackwardOp {
  KESTREL_HD void operator()(const float* a, float* r) const { r[0] = a[1] <= 0.f ? 0.f : a[0]; }
};
struct ScaleOp {  // x -> alpha * x
  float alpha;
  KESTREL_HD void operator()(const float* a, float* r) const { r[0] = alpha * a[0]; }
};
struct MulOp {  // (a, b) -> a * b
  KESTREL_HD void operator()(const float* a, float* r) const { r[0] = a[0] * a[1]; }
};
struct MulBackwardOp {  // (dy, a, b) -> (dy * b, dy * a)
  KESTREL_HD void operator()(const float* a, float* r) const {
    r[0] = a[0] * a[2];
    r[1] = a[0] * a[1];
  }
};
struct SigmoidOp {  // x -> 1 / (1 + exp(-x))
  KESTREL_HD void operator()(const float* a, float* r) const { r[0] = sigmoid_value(a[0]); }
};
struct SigmoidBackwardOp {  // (dy, y) -> dy * y * (1 - y)
  KESTREL_HD void operator()(const float* a, float* r) const { r[0] = a[0] * a[1] * (1.0f - a[1]); }
};
struct TanhOp {  // x -> tanh(x)
  KESTREL_HD void operator()(const float* a, float* r) const { r[0] = tanhf(a[0]); }
};
struct TanhBackwardOp {  // (dy, y) -> dy * (1 - y * y), 1 - y*y rounded once
  KESTREL_HD void operator()(const float* a, float* r) const {
    r[0] = a[0] * fmaf(-a[1], a[1], 1.0f);
  }
};
struct CopyOp {  // x -> x (casts: the conversion happens in load and store)
  KESTREL_HD void operator()(const float* a, float* r) const { r[0] = a[0]; }
};

}  // namespace kestrel::elementwise_detail
