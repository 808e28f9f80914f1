// The safetensors file format (https://github.com/huggingface/safetensors): Kestrel's checkpoint
// format, readable by PyTorch and able to read PyTorch's.
//
// Layout: 8-byte little-endian u64 N, N bytes of UTF-8 JSON header
//   {"__metadata__": {"k": "v"}, "name": {"dtype": "F32", "shape": [..], "data_offsets": [b, e]}}
// then the byte buffer; offsets are relative to the buffer, tensors are dense, row-major and
// little-endian, and together they cover the buffer exactly.
//
// Contract:
// - serialize_safetensors writes what the reference writer (the `safetensors` Python package,
//   0.8) writes, byte for byte: tensors ordered by dtype (I64, F64, F32, I32, BF16, F16, U8:
//   the reference's descending dtype order) then by name, compact JSON with "__metadata__" first
//   (omitted when empty; keys sorted, where the reference's order is that of a Rust HashMap),
//   header padded with spaces to a multiple of 8 bytes.
// - parse_safetensors accepts any valid file (any entry order, extra fields in a tensor entry are
//   ignored as the reference does) and raises kestrel::Error naming the file and the offending
//   tensor for anything else. Nothing partially parsed is returned.
// - Supported dtypes: F32, BF16, F16, I32, U8, I64, F64 (the last two have no Kestrel DType;
//   they are read and written as bytes, and tensor_from_safetensor refuses them).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "kestrel/core/dtype.h"
#include "kestrel/core/layout.h"

namespace kestrel {

class Tensor;

struct SafeTensor {
  std::string dtype;                 // "F32", "BF16", "F16", "I32", "U8", "I64", "F64"
  std::vector<std::int64_t> shape;   // may be empty (a scalar) or contain zeros
  std::vector<std::uint8_t> data;    // product(shape) * element size bytes, little-endian
};

class SafetensorsFile {
 public:
  std::map<std::string, SafeTensor> tensors;
  std::map<std::string, std::string> metadata;  // "__metadata__": strings only
};

// Bytes per element of a safetensors dtype; raises kestrel::Error for unsupported ones.
std::size_t safetensors_dtype_size(const std::string& dtype);

// Parses a whole file held in memory. `name_for_errors` names it in error messages.
SafetensorsFile parse_safetensors(const std::uint8_t* bytes, std::size_t size,
                                  const std::string& name_for_errors);
SafetensorsFile read_safetensors(const std::string& path);

// The file's bytes. Raises for an inconsistent tensor (unknown dtype, negative dimension, data
// size not matching the shape) or a tensor named "__metadata__".
std::vector<std::uint8_t> serialize_safetensors(const SafetensorsFile& file);

// Serializes, writes a new file path + ".tmp.<pid>.<n>" (created exclusively), fsyncs it,
// renames it over `path` and fsyncs the directory. On a failure before the rename `path` is
// untouched and the temporary file removed; a failure to sync the directory after it raises too,
// with `path` already holding the new contents.
void write_safetensors_atomic(const SafetensorsFile& file, const std::string& path);

// Kestrel DType <-> safetensors dtype: fp32 F32, bf16 BF16, fp16 F16, int32 I32, uint8 U8.
const char* safetensors_dtype_name(DType dtype) noexcept;
DType dtype_from_safetensors(const std::string& dtype);  // raises for I64, F64, unknown

// A host tensor's values in logical row-major order (NHWC tensors are written as NCHW, the
// order PyTorch uses for the same logical shape). Raises for a device tensor.
SafeTensor safetensor_from_tensor(const Tensor& tensor);
// A new host tensor holding `st`, stored in `layout` (rank 4 for NHWC). `name` is for errors.
Tensor tensor_from_safetensor(const SafeTensor& st, Layout layout = Layout::kNCHW,
                              const std::string& name = "tensor");

}  // namespace kestrel
