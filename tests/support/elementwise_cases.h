// The elementwise kernels as a table for tests: each case runs the CPU twin or the CUDA launcher
// through one signature, carries a double-precision reference written here (independent of
// kernels/elementwise_math.h) and the input ranges it is tested on.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

#include "dtype_buffer.h"
#include "kestrel/core/dtype.h"
#include "kestrel/kernels/cpu/elementwise.h"
#include "kestrel/kernels/elementwise.h"

namespace kestrel::testing {

struct ElementwiseCase {
  const char* name;
  int inputs;
  int outputs;
  std::pair<float, float> range[3];  // per input
  void (*cpu)(const void* const* in, void* const* out, std::int64_t n, DType t);
  void (*cuda)(const void* const* in, void* const* out, std::int64_t n, DType t, cudaStream_t s);
  void (*reference)(const double* in, double* out);
  int roundings;  // fp32 roundings in the formula (tolerance: eps(dtype) + roundings * eps(fp32))
  bool libm;      // uses expf/tanhf: host and device may differ by a few fp32 ulps
  bool output_is_input0 = false;  // accumulate: output 0 is input 0's buffer, updated in place
};

inline const std::vector<ElementwiseCase>& elementwise_cases() {
  using In = const void* const*;
  using Out = void* const*;
  using S = cudaStream_t;
  // clang-format off
  static const std::vector<ElementwiseCase> cases = {
      {"add", 2, 1, {{-2.f, 2.f}, {-2.f, 2.f}, {}},
       [](In i, Out o, std::int64_t n, DType t) { cpu::add(i[0], i[1], o[0], n, t); },
       [](In i, Out o, std::int64_t n, DType t, S s) { cuda::add(i[0], i[1], o[0], n, t, s); },
       [](const double* x, double* y) { y[0] = x[0] + x[1]; }, 1, false},
      {"accumulate", 2, 1, {{-2.f, 2.f}, {-2.f, 2.f}, {}},
       // y (input 0) += x (input 1): the output buffer is input 0's.
       [](In i, Out o, std::int64_t n, DType t) { cpu::accumulate(o[0], i[1], n, t); },
       [](In i, Out o, std::int64_t n, DType t, S s) { cuda::accumulate(o[0], i[1], n, t, s); },
       [](const double* x, double* y) { y[0] = x[0] + x[1]; }, 1, false, true},
      {"add_relu", 2, 1, {{-2.f, 2.f}, {-2.f, 2.f}, {}},
       [](In i, Out o, std::int64_t n, DType t) { cpu::add_relu(i[0], i[1], o[0], n, t); },
       [](In i, Out o, std::int64_t n, DType t, S s) { cuda::add_relu(i[0], i[1], o[0], n, t, s); },
       [](const double* x, double* y) { y[0] = std::max(x[0] + x[1], 0.0); }, 1, false},
      {"add_relu_backward", 2, 1, {{-2.f, 2.f}, {-1.f, 1.f}, {}},
       [](In i, Out o, std::int64_t n, DType t) { cpu::add_relu_backward(i[0], i[1], o[0], n, t); },
       [](In i, Out o, std::int64_t n, DType t, S s) {
         cuda::add_relu_backward(i[0], i[1], o[0], n, t, s);
       },
       [](const double* x, double* y) { y[0] = x[1] <= 0 ? 0.0 : x[0]; }, 0, false},
      {"relu", 1, 1, {{-2.f, 2.f}, {}, {}},
       [](In i, Out o, std::int64_t n, DType t) { cpu::relu(i[0], o[0], n, t); },
       [](In i, Out o, std::int64_t n, DType t, S s) { cuda::relu(i[0], o[0], n, t, s); },
       [](const double* x, double* y) { y[0] = std::max(x[0], 0.0); }, 0, false},
      {"relu_backward", 2, 1, {{-2.f, 2.f}, {-1.f, 1.f}, {}},
       [](In i, Out o, std::int64_t n, DType t) { cpu::relu_backward(i[0], i[1], o[0], n, t); },
       [](In i, Out o, std::int64_t n, DType t, S s) {
         cuda::relu_backward(i[0], i[1], o[0], n, t, s);
       },
       [](const double* x, double* y) { y[0] = x[1] <= 0 ? 0.0 : x[0]; }, 0, false},
      {"scale", 1, 1, {{-2.f, 2.f}, {}, {}},
       [](In i, Out o, std::int64_t n, DType t) { cpu::scale(i[0], o[0], n, t, -1.7f); },
       [](In i, Out o, std::int64_t n, DType t, S s) { cuda::scale(i[0], o[0], n, t, -1.7f, s); },
       [](const double* x, double* y) { y[0] = static_cast<double>(-1.7f) * x[0]; }, 1, false},
      {"mul", 2, 1, {{-2.f, 2.f}, {-2.f, 2.f}, {}},
       [](In i, Out o, std::int64_t n, DType t) { cpu::mul(i[0], i[1], o[0], n, t); },
       [](In i, Out o, std::int64_t n, DType t, S s) { cuda::mul(i[0], i[1], o[0], n, t, s); },
       [](const double* x, double* y) { y[0] = x[0] * x[1]; }, 1, false},
      {"mul_backward", 3, 2, {{-2.f, 2.f}, {-2.f, 2.f}, {-2.f, 2.f}},
       [](In i, Out o, std::int64_t n, DType t) {
         cpu::mul_backward(i[0], i[1], i[2], o[0], o[1], n, t);
       },
       [](In i, Out o, std::int64_t n, DType t, S s) {
         cuda::mul_backward(i[0], i[1], i[2], o[0], o[1], n, t, s);
       },
       [](const double* x, double* y) {
         y[0] = x[0] * x[2];
         y[1] = x[0] * x[1];
       },
       1, false},
      {"sigmoid", 1, 1, {{-12.f, 12.f}, {}, {}},
       [](In i, Out o, std::int64_t n, DType t) { cpu::sigmoid(i[0], o[0], n, t); },
       [](In i, Out o, std::int64_t n, DType t, S s) { cuda::sigmoid(i[0], o[0], n, t, s); },
       [](const double* x, double* y) { y[0] = 1.0 / (1.0 + std::exp(-x[0])); }, 3, true},
      {"sigmoid_backward", 2, 1, {{-2.f, 2.f}, {0.f, 1.f}, {}},
       [](In i, Out o, std::int64_t n, DType t) { cpu::sigmoid_backward(i[0], i[1], o[0], n, t); },
       [](In i, Out o, std::int64_t n, DType t, S s) {
         cuda::sigmoid_backward(i[0], i[1], o[0], n, t, s);
       },
       [](const double* x, double* y) { y[0] = x[0] * x[1] * (1.0 - x[1]); }, 3, false},
      {"tanh_forward", 1, 1, {{-5.f, 5.f}, {}, {}},
       [](In i, Out o, std::int64_t n, DType t) { cpu::tanh_forward(i[0], o[0], n, t); },
       [](In i, Out o, std::int64_t n, DType t, S s) { cuda::tanh_forward(i[0], o[0], n, t, s); },
       [](const double* x, double* y) { y[0] = std::tanh(x[0]); }, 1, true},
      {"tanh_backward", 2, 1, {{-2.f, 2.f}, {-1.f, 1.f}, {}},
       [](In i, Out o, std::int64_t n, DType t) { cpu::tanh_backward(i[0], i[1], o[0], n, t); },
       [](In i, Out o, std::int64_t n, DType t, S s) {
         cuda::tanh_backward(i[0], i[1], o[0], n, t, s);
       },
       [](const double* x, double* y) { y[0] = x[0] * (1.0 - x[1] * x[1]); }, 2, false},
  };
  // clang-format on
  return cases;
}

// Random inputs of a case (in its ranges, fixed seed) and outputs; `lead` misaligns element 0.
// An accumulating case's output starts as a copy of input 0.
struct CaseBuffers {
  std::vector<DtypeBuffer> in;
  std::vector<DtypeBuffer> out;
  std::vector<const void*> in_ptrs() const {
    std::vector<const void*> p;
    for (const DtypeBuffer& b : in) p.push_back(b.data());
    return p;
  }
  std::vector<void*> out_ptrs() {
    std::vector<void*> p;
    for (DtypeBuffer& b : out) p.push_back(b.data());
    return p;
  }
};

inline CaseBuffers make_case_buffers(const ElementwiseCase& c, DType t, std::int64_t n,
                                     std::int64_t lead, std::uint32_t seed) {
  CaseBuffers b;
  for (int k = 0; k < c.inputs; ++k) {
    std::vector<float> v = random_floats(n, seed + 101u * static_cast<std::uint32_t>(k), c.range[k].first,
                                         c.range[k].second);
    // Exact zeros of both signs, at positions that differ between inputs: a ReLU output is 0 for
    // half its elements, and a mask taken as y >= 0 instead of y > 0 must show.
    for (std::int64_t i = 0; i < n; ++i) {
      if (i % 5 == k + 1) v[static_cast<std::size_t>(i)] = 0.f;
      if (i % 7 == k + 3) v[static_cast<std::size_t>(i)] = -0.f;
    }
    b.in.push_back(DtypeBuffer::from(v, t, lead));
  }
  for (int k = 0; k < c.outputs; ++k) {
    b.out.push_back(c.output_is_input0 ? b.in[0] : DtypeBuffer(t, n, lead));
  }
  return b;
}

// Nearest value with `digits` significant bits, smallest normal exponent `emin` and largest
// finite value `max_finite`, ties to even (the default rounding mode of nearbyint), overflow to
// infinity: an independent reference for float -> bf16 / fp16 rounding.
inline double round_to_format(double v, int digits, int emin, double max_finite) {
  if (std::isnan(v) || std::isinf(v) || v == 0.0) return v;
  int e = 0;
  (void)std::frexp(v, &e);  // |v| = m 2^e, m in [0.5, 1): the leading bit is 2^(e-1)
  const int lead = std::max(e - 1, emin);
  const double ulp = std::ldexp(1.0, lead - (digits - 1));
  const double r = std::nearbyint(v / ulp) * ulp;
  return std::fabs(r) > max_finite ? std::copysign(INFINITY, v) : r;
}

// The value of `v` stored as `t` (fp32: unchanged).
inline double round_to_dtype(double v, DType t) {
  if (t == DType::kBFloat16) return round_to_format(v, 8, -126, 3.3895313892515355e38);
  if (t == DType::kFloat16) return round_to_format(v, 11, -14, 65504.0);
  return v;
}

}  // namespace kestrel::testing
