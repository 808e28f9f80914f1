#include "kestrel/core/shape.h"

#include "kestrel/core/error.h"

namespace kestrel {

Shape::Shape(std::initializer_list<std::int64_t> dims) { init(dims.begin(), dims.size()); }
Shape::Shape(const std::vector<std::int64_t>& dims) { init(dims.data(), dims.size()); }

void Shape::init(const std::int64_t* dims, std::size_t n) {
  KESTREL_CHECK(n <= static_cast<std::size_t>(kMaxRank), "a shape has at most ", kMaxRank,
                " dimensions, got ", n);
  // The product of the dimensions (zeros counted as 1: strides multiply the others) must fit in
  // int64, or numel() and the strides would overflow (undefined behaviour, then a tensor that
  // claims elements it has no memory for).
  std::int64_t product = 1;
  for (std::size_t i = 0; i < n; ++i) {
    KESTREL_CHECK(dims[i] >= 0, "shape dimension ", i, " is negative (", dims[i], ")");
    KESTREL_CHECK(!__builtin_mul_overflow(product, dims[i] == 0 ? 1 : dims[i], &product),
                  "shape dimensions up to ", i, " (", dims[i], ") multiply to more than 2^63 - 1 elements");
    dims_[i] = dims[i];
  }
  rank_ = static_cast<int>(n);
}

std::int64_t Shape::operator[](int i) const {
  const int j = i < 0 ? i + rank_ : i;
  KESTREL_CHECK(j >= 0 && j < rank_, "dimension index ", i, " out of range for shape ", to_string());
  return dims_[j];
}

std::int64_t Shape::numel() const noexcept {
  std::int64_t n = 1;
  for (int i = 0; i < rank_; ++i) n *= dims_[i];
  return n;
}

std::vector<std::int64_t> Shape::contiguous_strides() const {
  std::vector<std::int64_t> s(static_cast<std::size_t>(rank_));
  contiguous_strides(s.data());
  return s;
}

void Shape::contiguous_strides(std::int64_t* out) const noexcept {
  std::int64_t acc = 1;
  for (int i = rank_ - 1; i >= 0; --i) {
    out[i] = acc;
    acc *= dims_[static_cast<std::size_t>(i)];
  }
}

bool Shape::operator==(const Shape& o) const noexcept {
  if (rank_ != o.rank_) return false;
  for (int i = 0; i < rank_; ++i)
    if (dims_[i] != o.dims_[i]) return false;
  return true;
}

std::string Shape::to_string() const {
  std::string s = "[";
  for (int i = 0; i < rank_; ++i) {
    if (i) s += ", ";
    s += std::to_string(dims_[i]);
  }
  return s + "]";
}

}  // namespace kestrel
