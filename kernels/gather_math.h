// The word walk of the row gather, shared by kernels/gather.cu and kernels/cpu/gather.cpp.
#pragma once

#include <cstdint>

#include "kestrel/core/error.h"
#include "kestrel/core/hd.h"
#include "kestrel/kernels/element_io.h"

namespace kestrel::gather_detail {

// Bytes of the widest copy unit (16, 4 or 1) that divides row_bytes and both addresses.
KESTREL_HD int word_bytes(std::int64_t row_bytes, const void* src, const void* dst) {
  const auto a = reinterpret_cast<std::uintptr_t>(src) | reinterpret_cast<std::uintptr_t>(dst) |
                 static_cast<std::uintptr_t>(row_bytes);
  return a % 16 == 0 ? 16 : (a % 4 == 0 ? 4 : 1);
}

// Word w of the destination (row w / words_per_row) from its source row, or `fill` when that
// row's index is outside [0, rows).
template <typename Word>
KESTREL_HD Word gathered_word(const Word* src, std::int64_t rows, std::int64_t words_per_row,
                              const std::int32_t* indices, std::int64_t w, Word fill) {
  const std::int64_t b = w / words_per_row, k = w - b * words_per_row;
  const std::int64_t i = indices[b];
  return i >= 0 && i < rows ? src[i * words_per_row + k] : fill;
}

// Host-side argument checks shared by both twins.
inline void check_gather(const void* src, std::int64_t rows, std::int64_t row_bytes,
                         const std::int32_t* indices, std::int64_t n, const void* dst) {
  KESTREL_CHECK(n >= 0 && rows >= 0 && row_bytes >= 0, "gather_rows: negative size (n ", n, ", rows ", rows,
                ", row_bytes ", row_bytes, ")");
  if (n == 0 || row_bytes == 0) return;
  // Byte counts below (and the kernels' word indices) must fit in int64.
  constexpr std::int64_t kMax = INT64_MAX;
  KESTREL_CHECK(n <= kMax / row_bytes && rows <= kMax / row_bytes, "gather_rows: ", n, " or ", rows,
                " rows of ", row_bytes, " bytes overflow a 64-bit byte count");
  KESTREL_CHECK(src != nullptr && indices != nullptr && dst != nullptr, "gather_rows: null pointer");
  // The rows are copied in parallel on the GPU: a destination overlapping the source (or the
  // indices) would read rows already overwritten, in no defined order.
  const auto dst_bytes = static_cast<std::size_t>(n * row_bytes);
  KESTREL_CHECK(!element_io::ranges_overlap(dst, dst_bytes, src, static_cast<std::size_t>(rows * row_bytes)),
                "gather_rows: the destination (", n, " rows at ", dst, ") overlaps the source (", rows, " rows at ",
                src, "); gather into another buffer");
  KESTREL_CHECK(!element_io::ranges_overlap(dst, dst_bytes, indices, static_cast<std::size_t>(n) * sizeof(std::int32_t)),
                "gather_rows: the destination overlaps the indices");
}

}  // namespace kestrel::gather_detail
