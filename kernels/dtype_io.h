// Loads and stores of fp32 / bf16 storage as float, shared by the GPU kernels and the CPU twins
// of the conv, gemm and bias families (bf16 stores round to nearest even, as core/half.h does).
#pragma once

#include <cstdint>

#include "kestrel/core/dtype.h"
#include "kestrel/core/error.h"
#include "kestrel/core/half.h"
#include "kestrel/core/hd.h"

namespace kestrel::dtype_io {

KESTREL_HD float load(const float* p, std::int64_t i) { return p[i]; }
KESTREL_HD float load(const bfloat16* p, std::int64_t i) { return to_float(p[i]); }
KESTREL_HD void store(float* p, std::int64_t i, float v) { p[i] = v; }
KESTREL_HD void store(bfloat16* p, std::int64_t i, float v) { p[i] = to_bf16(v); }

// Runtime-dtype forms: `t` must be fp32 or bf16 (checked by the caller).
KESTREL_HD float load(const void* p, DType t, std::int64_t i) {
  return t == DType::kFloat32 ? load(static_cast<const float*>(p), i)
                              : load(static_cast<const bfloat16*>(p), i);
}
KESTREL_HD void store(void* p, DType t, std::int64_t i, float v) {
  if (t == DType::kFloat32) {
    store(static_cast<float*>(p), i, v);
  } else {
    store(static_cast<bfloat16*>(p), i, v);
  }
}

// Host: raises kestrel::Error unless `t` is fp32 or bf16; `what` names the operation.
inline void check_float_or_bf16(DType t, const char* what) {
  KESTREL_CHECK(t == DType::kFloat32 || t == DType::kBFloat16, what,
                ": dtype must be fp32 or bf16, got ", dtype_name(t));
}

// Host: calls f(float{}) or f(bfloat16{}) by `t` (a storage-type tag for templated launchers).
template <typename F>
void dispatch(DType t, const char* what, F&& f) {
  check_float_or_bf16(t, what);
  if (t == DType::kFloat32) {
    f(float{});
  } else {
    f(bfloat16{});
  }
}

}  // namespace kestrel::dtype_io
