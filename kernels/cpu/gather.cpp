#include "kestrel/kernels/cpu/gather.h"

#include "kestrel/kernels/gather_math.h"

namespace kestrel::cpu {
namespace {
template <typename Word>
void copy_words(const void* src, std::int64_t rows, std::int64_t row_bytes, const std::int32_t* indices,
                std::int64_t n, void* dst) {
  const std::int64_t per = row_bytes / static_cast<std::int64_t>(sizeof(Word)), words = n * per;
  const auto* s = static_cast<const Word*>(src);
  auto* d = static_cast<Word*>(dst);
  for (std::int64_t w = 0; w < words; ++w) d[w] = gather_detail::gathered_word(s, rows, per, indices, w, Word{});
}

struct alignas(16) Word16 {
  std::uint32_t v[4];
};
}  // namespace

void gather_rows(const void* src, std::int64_t rows, std::int64_t row_bytes,
                 const std::int32_t* indices, std::int64_t n, void* dst) {
  gather_detail::check_gather(src, rows, row_bytes, indices, n, dst);
  if (n == 0 || row_bytes == 0) return;
  for (std::int64_t b = 0; b < n; ++b)
    KESTREL_CHECK(indices[b] >= 0 && indices[b] < rows, "gather_rows: index ", indices[b], " at position ", b,
                  " is outside [0, ", rows, ")");
  switch (gather_detail::word_bytes(row_bytes, src, dst)) {
    case 16:
      return copy_words<Word16>(src, rows, row_bytes, indices, n, dst);
    case 4:
      return copy_words<std::uint32_t>(src, rows, row_bytes, indices, n, dst);
    default:
      return copy_words<std::uint8_t>(src, rows, row_bytes, indices, n, dst);
  }
}

}  // namespace kestrel::cpu
