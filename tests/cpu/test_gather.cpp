// Row gather (kernels/cpu/gather.h) against per-row memcpy on random bytes, for each copy width
// (16-byte, 4-byte and single-byte words, aligned and shifted pointers); the word walk the GPU
// runs (gathered_word) on invalid indices; errors.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "error_text.h"
#include "kestrel/kernels/cpu/gather.h"
#include "kestrel/kernels/gather.h"
#include "kestrel/kernels/gather_math.h"
#include "storage_buffer.h"
#include "test_support.h"

using kestrel::testing::error_of;
using kestrel::testing::random_bytes;
using kestrel::testing::random_ints;

TEST(CpuGather, EveryCopyWidthMatchesPerRowMemcpy) {
  const std::int64_t rows = 37, n = 50;
  // 6144 bytes: a 3x32x32 bf16 image; 48 and 12: 16- and 4-byte words; 3: single bytes.
  for (std::int64_t row_bytes : {6144, 48, 12, 3}) {
    for (int shift : {0, 4, 1}) {
      std::vector<std::uint8_t> src = random_bytes(rows * row_bytes + 16, 11), dst(n * row_bytes + 16, 0xAB);
      const auto idx = random_ints(n, 12, 0, static_cast<std::int32_t>(rows - 1));  // repeats included
      const std::uint8_t* s = src.data() + shift;
      std::uint8_t* d = dst.data() + shift;
      const int width = kestrel::gather_detail::word_bytes(row_bytes, s, d);
      kestrel::cpu::gather_rows(s, rows, row_bytes, idx.data(), n, d);
      std::vector<std::uint8_t> want(dst.size(), 0xAB);
      for (std::int64_t b = 0; b < n; ++b) std::memcpy(want.data() + shift + b * row_bytes, s + idx[b] * row_bytes, row_bytes);
      EXPECT_EQ(dst, want) << "row_bytes " << row_bytes << " shift " << shift << " width " << width;
    }
  }
}

TEST(CpuGather, CopyWidthIsTheWidestThatDividesRowAndAddresses) {
  using kestrel::gather_detail::word_bytes;
  alignas(16) std::uint8_t a[64], b[64];
  EXPECT_EQ(word_bytes(48, a, b), 16);
  EXPECT_EQ(word_bytes(12, a, b), 4);
  EXPECT_EQ(word_bytes(48, a + 4, b), 4);
  EXPECT_EQ(word_bytes(48, a, b + 8), 4);
  EXPECT_EQ(word_bytes(48, a + 1, b), 1);
  EXPECT_EQ(word_bytes(3, a, b), 1);
}

TEST(CpuGather, WordWalkFillsRowsWithInvalidIndices) {
  // What the GPU kernel does where the CPU twin raises: the row of an index outside [0, rows)
  // gets the fill word, the other rows their source words.
  const std::vector<std::uint32_t> src = {10, 11, 20, 21, 30, 31};  // 3 rows of 2 words
  const std::vector<std::int32_t> idx = {2, -1, 0, 3};
  std::vector<std::uint32_t> got;
  for (std::int64_t w = 0; w < 8; ++w)
    got.push_back(kestrel::gather_detail::gathered_word(src.data(), 3, 2, idx.data(), w, 0xFFFFFFFFu));
  EXPECT_EQ(got, (std::vector<std::uint32_t>{30, 31, 0xFFFFFFFFu, 0xFFFFFFFFu, 10, 11, 0xFFFFFFFFu, 0xFFFFFFFFu}));
}

TEST(CpuGather, BadIndicesAndSizesRaiseAndWriteNothing) {
  const std::vector<float> src = {1, 2, 3, 4, 5, 6};
  std::vector<float> dst(4, -7.f);
  const std::vector<std::int32_t> idx = {1, 3};
  const std::string e = error_of([&] { kestrel::cpu::gather_rows(src.data(), 3, 8, idx.data(), 2, dst.data()); });
  EXPECT_NE(e.find("index 3 at position 1 is outside [0, 3)"), std::string::npos) << e;
  EXPECT_EQ(dst, std::vector<float>(4, -7.f)) << "nothing written";
  // Below the range too (a bound checked only from above would read before src).
  const std::vector<std::int32_t> negative = {0, -1};
  const std::string below = error_of([&] { kestrel::cpu::gather_rows(src.data(), 3, 8, negative.data(), 2, dst.data()); });
  EXPECT_NE(below.find("index -1 at position 1 is outside [0, 3)"), std::string::npos) << below;
  EXPECT_EQ(dst, std::vector<float>(4, -7.f)) << "nothing written";
  EXPECT_NE(error_of([&] { kestrel::cpu::gather_rows(src.data(), 3, -8, idx.data(), 2, dst.data()); })
                .find("negative size"),
            std::string::npos);
  EXPECT_NE(error_of([&] { kestrel::cpu::gather_rows(nullptr, 3, 8, idx.data(), 2, dst.data()); }).find("null"),
            std::string::npos);
  EXPECT_NO_THROW(kestrel::cpu::gather_rows(nullptr, 0, 8, nullptr, 0, nullptr)) << "nothing to gather";
  // Counts whose byte sizes overflow int64 (before: a wrapped size went into the overlap checks).
  const std::int64_t huge = (std::int64_t{1} << 62) / 8 + 1;  // x 8 bytes > 2^62, x 16 > 2^63
  for (const auto& [n, rows] : {std::pair<std::int64_t, std::int64_t>{huge, 3}, {2, huge}}) {
    const std::string e = error_of([&] { kestrel::cpu::gather_rows(src.data(), rows, 16, idx.data(), n, dst.data()); });
    EXPECT_NE(e.find("overflow a 64-bit byte count"), std::string::npos) << e;
  }
  EXPECT_EQ(dst, std::vector<float>(4, -7.f)) << "nothing written";
}

// Rows of 0 bytes: there is nothing to copy, so (as gather_math.h's checks say) neither the
// pointers nor the indices are looked at; null pointers are accepted for any n and rows.
TEST(CpuGather, ZeroByteRowsTouchNeitherThePointersNorTheIndices) {
  EXPECT_NO_THROW(kestrel::cpu::gather_rows(nullptr, 5, 0, nullptr, 3, nullptr));
  EXPECT_NO_THROW(kestrel::cpu::gather_rows(nullptr, 0, 0, nullptr, 4, nullptr));
}

// A destination overlapping the source or the indices is refused by both twins (the CUDA
// launcher checks on the host, before any CUDA call: this runs without a GPU); the GPU copies
// rows in parallel and would read rows already overwritten. Adjacent buffers are fine.
TEST(CpuGather, ADestinationOverlappingTheSourceOrTheIndicesIsRefused) {
  std::vector<float> buf = {1, 2, 3, 4, 5, 6, 7, 8};
  const std::vector<float> before = buf;
  const std::vector<std::int32_t> idx = {2, 0};
  // Rows of 2 floats: the source is buf[0..6), the destination buf[4..8) (shares row 2) or buf
  // itself (in place).
  for (float* dst : {buf.data() + 4, buf.data()}) {
    const std::string cpu = error_of([&] { kestrel::cpu::gather_rows(buf.data(), 3, 8, idx.data(), 2, dst); });
    EXPECT_NE(cpu.find("overlaps the source"), std::string::npos) << cpu;
    EXPECT_THROW(kestrel::cuda::gather_rows(buf.data(), 3, 8, idx.data(), 2, dst, nullptr), kestrel::Error);
  }
  std::vector<std::int32_t> words = {1, 0, 0, 0};  // indices in words[0..2), destination words[1..3) as bytes
  const std::string into_idx = error_of([&] {
    kestrel::cpu::gather_rows(buf.data(), 2, 4, words.data(), 2, words.data() + 1);
  });
  EXPECT_NE(into_idx.find("overlaps the indices"), std::string::npos) << into_idx;
  EXPECT_EQ(buf, before) << "a refused gather wrote";
  // Adjacent: source buf[0..4) (2 rows), destination buf[4..8).
  kestrel::cpu::gather_rows(buf.data(), 2, 8, std::vector<std::int32_t>{1, 0}.data(), 2, buf.data() + 4);
  EXPECT_EQ(buf, (std::vector<float>{1, 2, 3, 4, 3, 4, 1, 2}));
}
