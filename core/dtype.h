// Element types of tensors. Arithmetic on 16-bit types happens in fp32 (see core/half.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "kestrel/core/half.h"

namespace kestrel {

enum class DType : std::uint8_t { kFloat32, kBFloat16, kFloat16, kInt32, kUInt8 };

// Bytes per element.
std::size_t dtype_size(DType t) noexcept;
// "fp32", "bf16", "fp16", "int32", "uint8".
const char* dtype_name(DType t) noexcept;
// Parses the names above (and "float32", "bfloat16", "float16"); raises kestrel::Error otherwise.
DType parse_dtype(const std::string& name);
bool is_floating(DType t) noexcept;
// Unit roundoff of a floating type (2^-24, 2^-8, 2^-11); 0 for integer types. Tolerances in
// tests are written as abs + |ref| * k * eps(dtype).
double dtype_eps(DType t) noexcept;

// Compile-time mapping from C++ storage types to DType.
template <typename T>
struct DTypeOf;
template <> struct DTypeOf<float> { static constexpr DType value = DType::kFloat32; };
template <> struct DTypeOf<bfloat16> { static constexpr DType value = DType::kBFloat16; };
template <> struct DTypeOf<float16> { static constexpr DType value = DType::kFloat16; };
template <> struct DTypeOf<std::int32_t> { static constexpr DType value = DType::kInt32; };
template <> struct DTypeOf<std::uint8_t> { static constexpr DType value = DType::kUInt8; };
template <typename T>
constexpr DType dtype_of = DTypeOf<T>::value;

}  // namespace kestrel
