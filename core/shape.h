// Shape: the logical dimensions of a tensor (at most kMaxRank). Four-dimensional activations are
// always N, C, H, W logically; the physical order is the tensor's Layout (core/layout.h).
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

namespace kestrel {

class Shape {
 public:
  static constexpr int kMaxRank = 8;

  Shape() = default;
  // Raises kestrel::Error for negative dimensions, more than kMaxRank of them, or dimensions
  // whose product (zeros aside) exceeds int64.
  Shape(std::initializer_list<std::int64_t> dims);
  explicit Shape(const std::vector<std::int64_t>& dims);

  int rank() const noexcept { return rank_; }
  // Dimension i; negative i counts from the back. Raises kestrel::Error when out of range.
  std::int64_t operator[](int i) const;
  std::int64_t numel() const noexcept;
  std::vector<std::int64_t> dims() const { return {dims_.begin(), dims_.begin() + rank_}; }
  // Row-major (C-order) strides in elements.
  std::vector<std::int64_t> contiguous_strides() const;
  // The same into `out` (rank() elements), without allocating.
  void contiguous_strides(std::int64_t* out) const noexcept;

  bool operator==(const Shape& o) const noexcept;
  bool operator!=(const Shape& o) const noexcept { return !(*this == o); }
  // "[2, 3, 32, 32]"
  std::string to_string() const;

 private:
  void init(const std::int64_t* dims, std::size_t n);
  std::array<std::int64_t, kMaxRank> dims_{};
  int rank_ = 0;
};

}  // namespace kestrel
