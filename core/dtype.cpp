#include "kestrel/core/dtype.h"

#include "kestrel/core/error.h"

namespace kestrel {

std::size_t dtype_size(DType t) noexcept {
  switch (t) {
    case DType::kFloat32: return 4;
    case DType::kBFloat16: return 2;
    case DType::kFloat16: return 2;
    case DType::kInt32: return 4;
    case DType::kUInt8: return 1;
  }
  return 0;
}

const char* dtype_name(DType t) noexcept {
  switch (t) {
    case DType::kFloat32: return "fp32";
    case DType::kBFloat16: return "bf16";
    case DType::kFloat16: return "fp16";
    case DType::kInt32: return "int32";
    case DType::kUInt8: return "uint8";
  }
  return "?";
}

DType parse_dtype(const std::string& name) {
  if (name == "fp32" || name == "float32") return DType::kFloat32;
  if (name == "bf16" || name == "bfloat16") return DType::kBFloat16;
  if (name == "fp16" || name == "float16") return DType::kFloat16;
  if (name == "int32") return DType::kInt32;
  if (name == "uint8") return DType::kUInt8;
  KESTREL_FAIL("unknown dtype '", name, "' (known: fp32, bf16, fp16, int32, uint8)");
}

bool is_floating(DType t) noexcept {
  return t == DType::kFloat32 || t == DType::kBFloat16 || t == DType::kFloat16;
}

double dtype_eps(DType t) noexcept {
  switch (t) {
    case DType::kFloat32: return 5.9604644775390625e-8;  // 2^-24
    case DType::kBFloat16: return 0.00390625;             // 2^-8
    case DType::kFloat16: return 0.00048828125;           // 2^-11
    default: return 0.0;
  }
}

}  // namespace kestrel
