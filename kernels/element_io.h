// Typed element access for kernels that store fp32, bf16 or fp16 and compute in fp32, shared by
// the CUDA kernels and their CPU twins (so both convert identically: 16-bit -> float is exact,
// float -> 16-bit rounds to nearest even, see core/half.h).
//
// - to_float(T) / from_float<T>(float): one element.
// - load(p, i) / store(p, i, v): element i of a typed buffer.
// - dispatch_floating(dtype, what, f): host only; calls f(T{}) with T the storage type of
//   `dtype` (float, bfloat16, float16) and raises kestrel::Error for any other dtype.
// - check_buffers(what, n, dtype, {pointers}): host only; raises for n < 0, or (n > 0) for a
//   null pointer or one not aligned to an element of `dtype` (check_element_aligned).
// - check_data(what, dtype, pointers): host only; present and aligned (no count).
// - check_elements_aligned(what, dtype, {pointers}): host only; the alignment alone.
// - check_cast_buffers(what, x, from, y, to, n): host only; raises when a cast would write over
//   its own source: any overlap between dtypes of different sizes, a partial one between equal
//   sizes (exactly in place is fine: each element is read before it is written).
// - load_float(p, dtype, i) / store_float(p, dtype, i, v): runtime-dtype forms.
// - offset4 / coords4: physical offset of a logical (n, c, y, x) element in NCHW or NHWC, and back.
// - check_storage_dtype(dtype, op): host only; fp32, bf16 or fp16.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>

#include "kestrel/core/dtype.h"
#include "kestrel/core/error.h"
#include "kestrel/core/half.h"
#include "kestrel/core/layout.h"
#include "kestrel/kernels/fill_math.h"

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

// Host: raises unless `p` sits on a boundary of `dtype`'s element size. Both twins access
// elements through typed pointers: on the GPU a misaligned access faults, and that fault is
// sticky (every later call on the CUDA context fails), so the misaligned pointer is refused first.
inline void check_element_aligned(const char* what, const void* p, DType dtype) {
  const std::size_t size = dtype_size(dtype);
  if (size <= 1) return;  // bytes, or an unknown dtype (0) that the dtype checks name
  KESTREL_CHECK(reinterpret_cast<std::uintptr_t>(p) % size == 0, what, ": ", dtype_name(dtype), " data at ", p,
                " is not aligned to its ", size, "-byte elements");
}

// check_element_aligned for each pointer (null ones pass: the callers say which are required).
inline void check_elements_aligned(const char* what, DType dtype, std::initializer_list<const void*> pointers) {
  for (const void* p : pointers) check_element_aligned(what, p, dtype);
}

// Each pointer present and aligned to an element of `dtype` (buffers a call will touch).
template <typename Pointers>
void check_data(const char* what, DType dtype, const Pointers& pointers) {
  for (const void* p : pointers) {
    KESTREL_CHECK(p != nullptr, what, ": null data pointer");
    check_element_aligned(what, p, dtype);
  }
}

template <typename Pointers>
void check_buffers(const char* what, std::int64_t n, DType dtype, const Pointers& pointers) {
  KESTREL_CHECK(n >= 0, what, ": negative element count ", n);
  if (n > 0) check_data(what, dtype, pointers);
}
inline void check_buffers(const char* what, std::int64_t n, DType dtype,
                          std::initializer_list<const void*> pointers) {
  check_buffers<std::initializer_list<const void*>>(what, n, dtype, pointers);
}

// Whether the byte ranges [a, a + a_bytes) and [b, b + b_bytes) overlap (host only).
inline bool ranges_overlap(const void* a, std::size_t a_bytes, const void* b, std::size_t b_bytes) {
  const auto pa = reinterpret_cast<std::uintptr_t>(a), pb = reinterpret_cast<std::uintptr_t>(b);
  return pa < pb + b_bytes && pb < pa + a_bytes;
}

// A cast cannot run over its own source (on the GPU, the thread writing one unit of y would
// overwrite bytes of x another thread has still to read): the bytes of x (n elements of `from`)
// and of y (n of `to`) must not overlap, except exactly in place between same-size dtypes (each
// element read before it is written).
inline void check_cast_buffers(const char* what, const void* x, DType from, const void* y, DType to,
                               std::int64_t n) {
  if (n <= 0) return;
  const bool same_size = dtype_size(from) == dtype_size(to);
  if (same_size && x == y) return;
  const auto count = static_cast<std::size_t>(n);
  KESTREL_CHECK(!ranges_overlap(x, count * dtype_size(from), y, count * dtype_size(to)), what, ": source (", n,
                " ", dtype_name(from), " at ", x, ") and destination (", dtype_name(to), " at ", y, ") overlap; ",
                same_size ? "a cast runs in place only at the same address"
                          : "a cast between dtypes of different sizes cannot run in place");
}

// Element i of `p` (fp32, bf16 or fp16 storage) as a float; exact.
KESTREL_HD float load_float(const void* p, DType dtype, std::int64_t i) {
  if (dtype == DType::kFloat32) return static_cast<const float*>(p)[i];
  const std::uint16_t bits = static_cast<const std::uint16_t*>(p)[i];
  return dtype == DType::kBFloat16 ? float_from_bf16_bits(bits) : float_from_fp16_bits(bits);
}

// Stores v as `dtype` (fp32, bf16 or fp16; 16-bit types round to nearest even).
KESTREL_HD void store_float(void* p, DType dtype, std::int64_t i, float v) {
  fill_detail::store_as(p, dtype, i, v);
}

// Offset of logical element (n, c, y, x) of an [N, C, H, W] tensor stored in `layout`.
KESTREL_HD std::int64_t offset4(Layout layout, std::int64_t n, std::int64_t c, std::int64_t y,
                                std::int64_t x, std::int64_t C, std::int64_t H, std::int64_t W) {
  return layout == Layout::kNCHW ? ((n * C + c) * H + y) * W + x : ((n * H + y) * W + x) * C + c;
}

struct Index4 {
  std::int64_t n, c, y, x;
};

// Inverse of offset4: the logical coordinates of physical offset i.
KESTREL_HD Index4 coords4(Layout layout, std::int64_t i, std::int64_t C, std::int64_t H,
                          std::int64_t W) {
  Index4 r;
  if (layout == Layout::kNCHW) {
    r.x = i % W;
    i /= W;
    r.y = i % H;
    i /= H;
    r.c = i % C;
    r.n = i / C;
  } else {
    r.c = i % C;
    i /= C;
    r.x = i % W;
    i /= W;
    r.y = i % H;
    r.n = i / H;
  }
  return r;
}

// Host: raises kestrel::Error unless `t` is fp32 or bf16 (families without fp16 kernels).
inline void check_float_or_bf16(DType t, const char* what) {
  KESTREL_CHECK(t == DType::kFloat32 || t == DType::kBFloat16, what,
                ": dtype must be fp32 or bf16, got ", dtype_name(t));
}

// Host: calls f(float{}) or f(bfloat16{}) by `t`; raises for any other dtype.
template <typename F>
void dispatch_float_or_bf16(DType t, const char* what, F&& f) {
  check_float_or_bf16(t, what);
  if (t == DType::kFloat32) {
    f(float{});
  } else {
    f(bfloat16{});
  }
}

// Host-side argument check: activations are stored as fp32, bf16 or fp16.
inline void check_storage_dtype(DType dtype, const char* op) {
  KESTREL_CHECK(is_floating(dtype), op, ": storage dtype must be fp32, bf16 or fp16, got ",
                dtype_name(dtype));
}

}  // namespace kestrel::element_io
