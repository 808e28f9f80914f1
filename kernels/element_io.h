// Typed element access for kernels that store fp32, bf16 or fp16 and compute in fp32, shared by
// the CUDA kernels and their CPU twins (so both convert identically: 16-bit -> float is exact,
// float -> 16-bit rounds to nearest even, see core/half.h).
//
// - to_float(T) / from_float<T>(float): one element.
// - load(p, i) / store(p, i, v): element i of a typed buffer.
// - dispatch_floating(dtype, what, f): host only; calls f(T{}) with T the storage type of
//   `dtype` (float, bfloat16, float16) and raises kestrel::Error for any other dtype.
// - check_buffers(what, n, {pointers}): host only; raises for n < 0 or a null pointer (n > 0).
#pragma once

#include <cstdint>
#include <initializer_list>

#include "kestrel/core/dtype.h"
#include "kestrel/core/error.h"
#include "kestrel/core/half.h"

namespace kestrel::element_io {

using kestrel::to_float;
KESTREL_HD float to_float(float v) { return v; }

template <typename T>
KESTREL_HD T from_float(float v);
template <>
KESTREL_HD float from_float<float>(float v) { return v; }
template <>
KESTREL_HD bfloat16 from_float<bfloat16>(float v) { return to_bf16(v); }
template <>
KESTREL_HD float16 from_float<float16>(float v) { return to_fp16(v); }

template <typename T>
KESTREL_HD float load(const T* p, std::int64_t i) {
  return to_float(p[i]);
}
template <typename T>
KESTREL_HD void store(T* p, std::int64_t i, float v) {
  p[i] = from_float<T>(v);
}

template <typename F>
void dispatch_floating(DType dtype, const char* what, F&& f) {
  switch (dtype) {
    case DType::kFloat32: f(float{}); return;
    case DType::kBFloat16: f(bfloat16{}); return;
    case DType::kFloat16: f(float16{}); return;
    default: break;
  }
  KESTREL_FAIL(what, ": needs fp32, bf16 or fp16 data, got ", dtype_name(dtype));
}

template <typename Pointers>
void check_buffers(const char* what, std::int64_t n, const Pointers& pointers) {
  KESTREL_CHECK(n >= 0, what, ": negative element count ", n);
  if (n == 0) return;
  for (const void* p : pointers) KESTREL_CHECK(p != nullptr, what, ": null data pointer");
}
inline void check_buffers(const char* what, std::int64_t n,
                          std::initializer_list<const void*> pointers) {
  check_buffers<std::initializer_list<const void*>>(what, n, pointers);
}

}  // namespace kestrel::element_io
