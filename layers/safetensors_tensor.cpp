// kestrel::Tensor <-> SafeTensor.
#include <cstring>

#include "kestrel/core/tensor.h"
#include "kestrel/layers/safetensors.h"

namespace kestrel {
namespace {

// Physical element offset of each logical (row-major) index of `t`, visited in order.
template <typename F>
void for_each_logical(const Tensor& t, F&& f) {
  const std::vector<std::int64_t> logical = t.shape().contiguous_strides();
  const std::vector<std::int64_t>& strides = t.strides();
  const int rank = t.shape().rank();
  for (std::int64_t i = 0; i < t.numel(); ++i) {
    std::int64_t rem = i, phys = 0;
    for (int d = 0; d < rank; ++d) {
      phys += (rem / logical[d]) * strides[d];
      rem %= logical[d];
    }
    f(i, phys);
  }
}

}  // namespace

const char* safetensors_dtype_name(DType dtype) noexcept {
  switch (dtype) {
    case DType::kFloat32: return "F32";
    case DType::kBFloat16: return "BF16";
    case DType::kFloat16: return "F16";
    case DType::kInt32: return "I32";
    case DType::kUInt8: return "U8";
  }
  return "?";
}

DType dtype_from_safetensors(const std::string& dtype) {
  for (DType d : {DType::kFloat32, DType::kBFloat16, DType::kFloat16, DType::kInt32, DType::kUInt8})
    if (dtype == safetensors_dtype_name(d)) return d;
  KESTREL_FAIL("safetensors dtype \"", dtype, "\" has no Kestrel dtype (Kestrel has F32, BF16, F16, ",
               "I32, U8)");
}

SafeTensor safetensor_from_tensor(const Tensor& tensor) {
  KESTREL_CHECK(tensor.defined(), "safetensor_from_tensor: the tensor is undefined");
  KESTREL_CHECK(tensor.device().is_cpu(), "safetensor_from_tensor reads host memory; copy ",
                tensor.to_string(), " to the CPU first (Tensor::to)");
  SafeTensor st;
  st.dtype = safetensors_dtype_name(tensor.dtype());
  st.shape = tensor.shape().dims();
  const std::size_t esize = dtype_size(tensor.dtype());
  st.data.resize(tensor.nbytes());
  if (st.data.empty()) return st;
  const auto* src = static_cast<const std::uint8_t*>(tensor.data());
  if (tensor.is_contiguous() && (tensor.layout() == Layout::kNCHW || tensor.shape().rank() != 4)) {
    std::memcpy(st.data.data(), src, st.data.size());  // memory order is the logical order
    return st;
  }
  for_each_logical(tensor, [&](std::int64_t i, std::int64_t phys) {
    std::memcpy(st.data.data() + i * esize, src + phys * static_cast<std::int64_t>(esize), esize);
  });
  return st;
}

Tensor tensor_from_safetensor(const SafeTensor& st, Layout layout, const std::string& name) {
  DType dtype = DType::kFloat32;
  try {
    dtype = dtype_from_safetensors(st.dtype);
  } catch (const Error& e) {
    KESTREL_FAIL("tensor \"", name, "\": ", e.message());
  }
  Shape shape;
  try {
    shape = Shape(st.shape);
  } catch (const Error& e) {
    KESTREL_FAIL("tensor \"", name, "\": ", e.message());
  }
  KESTREL_CHECK(layout == Layout::kNCHW || shape.rank() == 4, "tensor \"", name, "\": layout ",
                layout_name(layout), " needs a rank-4 shape, got ", shape.to_string());
  const std::size_t esize = dtype_size(dtype);
  KESTREL_CHECK(st.data.size() == static_cast<std::size_t>(shape.numel()) * esize, "tensor \"",
                name, "\": ", st.data.size(), " bytes of data for shape ", shape.to_string(), " of ",
                st.dtype);
  Tensor t = Tensor::empty_cpu(shape, dtype, layout);
  if (st.data.empty()) return t;
  auto* dst = static_cast<std::uint8_t*>(t.data());
  for_each_logical(t, [&](std::int64_t i, std::int64_t phys) {
    std::memcpy(dst + phys * static_cast<std::int64_t>(esize), st.data.data() + i * esize, esize);
  });
  return t;
}

}  // namespace kestrel
