// CIFAR batch augmentation (CPU twin) against a reference written here with explicit pad, crop
// and flip loops; the statistics of the crop shifts and flips; evaluation mode; layouts.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "kestrel/core/error.h"
#include "kestrel/core/half.h"
#include "kestrel/kernels/cpu/augment.h"
#include "kestrel/kernels/philox.h"
#include "storage_buffer.h"
#include "test_support.h"

using kestrel::AugmentParams;
using kestrel::DType;
using kestrel::Layout;
using kestrel::testing::bit_equal;
using kestrel::testing::random_ints;

namespace {
constexpr int kS = 32;
constexpr std::int64_t kImg = 3 * kS * kS;

std::vector<std::uint8_t> random_dataset(std::int64_t images, std::uint32_t seed) {
  const auto v = random_ints(images * kImg, seed, 0, 255);
  return std::vector<std::uint8_t>(v.begin(), v.end());
}

AugmentParams cifar_params(int pad, std::uint64_t seed) {
  AugmentParams p;
  p.pad = pad;
  const float mean[3] = {0.4914f, 0.4822f, 0.4465f}, sd[3] = {0.2470f, 0.2435f, 0.2616f};
  for (int c = 0; c < 3; ++c) {
    p.mean[c] = mean[c];
    p.std[c] = sd[c];
  }
  p.seed = seed;
  p.offset = 3;
  return p;
}

// Pads the image into a (32 + 2 pad)^2 zero canvas, cuts the 32x32 window at the drawn corner,
// mirrors it, normalises: NCHW fp32.
std::vector<float> reference(const std::vector<std::uint8_t>& data, const std::vector<std::int32_t>& idx,
                             const AugmentParams& p, std::uint64_t offset) {
  const int side = kS + 2 * p.pad;
  std::vector<float> out(idx.size() * kImg);
  for (std::size_t b = 0; b < idx.size(); ++b) {
    const kestrel::Philox4x32 r = kestrel::philox_block(p.seed, offset, b);
    const std::uint32_t span = 2 * p.pad + 1;
    const int dx = p.random_crop ? static_cast<int>(r.x[0] % span) : p.pad;
    const int dy = p.random_crop ? static_cast<int>(r.x[1] % span) : p.pad;
    const bool flip = p.random_flip && (r.x[2] & 1);
    for (int c = 0; c < 3; ++c) {
      std::vector<std::uint8_t> padded(static_cast<std::size_t>(side * side), 0);
      for (int y = 0; y < kS; ++y)
        for (int x = 0; x < kS; ++x)
          padded[static_cast<std::size_t>((y + p.pad) * side + x + p.pad)] =
              data[static_cast<std::size_t>(idx[b] * kImg + (c * kS + y) * kS + x)];
      const float scale = static_cast<float>(1.0 / (255.0 * p.std[c]));
      const float shift = static_cast<float>(-static_cast<double>(p.mean[c]) / p.std[c]);
      for (int y = 0; y < kS; ++y) {
        for (int x = 0; x < kS; ++x) {
          const std::uint8_t v = padded[static_cast<std::size_t>((dy + y) * side + dx + x)];
          const int ox = flip ? kS - 1 - x : x;
          out[b * kImg + static_cast<std::size_t>((c * kS + y) * kS + ox)] = std::fma(static_cast<float>(v), scale, shift);
        }
      }
    }
  }
  return out;
}

std::vector<float> run_cpu(const std::vector<std::uint8_t>& data, const std::vector<std::uint8_t>& labels,
                           const std::vector<std::int32_t>& idx, const AugmentParams& p, Layout layout,
                           std::vector<std::int32_t>* labels_out = nullptr) {
  std::vector<float> out(idx.size() * kImg, -99.f);
  if (labels_out) labels_out->assign(idx.size(), -7);
  kestrel::cpu::augment_batch(data.data(), static_cast<std::int64_t>(data.size() / kImg), labels.data(),
                              idx.data(), static_cast<std::int64_t>(idx.size()), out.data(),
                              DType::kFloat32, layout, labels_out ? labels_out->data() : nullptr, p);
  return out;
}
}  // namespace

TEST(CpuAugment, MatchesExplicitPadCropFlipReferenceBitForBit) {
  const std::int64_t images = 50;
  const auto data = random_dataset(images, 801);
  const auto raw = random_ints(images, 802, 0, 9);
  const std::vector<std::uint8_t> labels(raw.begin(), raw.end());
  const auto idx = random_ints(37, 803, 0, images - 1);
  for (int pad : {0, 1, 4, 16}) {
    for (bool crop : {false, true}) {
      for (bool flip : {false, true}) {
        AugmentParams p = cifar_params(pad, 99);
        p.random_crop = crop;
        p.random_flip = flip;
        std::vector<std::int32_t> got_labels;
        const auto out = run_cpu(data, labels, idx, p, Layout::kNCHW, &got_labels);
        EXPECT_TRUE(bit_equal(out, reference(data, idx, p, 3)))
            << "pad " << pad << " crop " << crop << " flip " << flip;
        for (std::size_t b = 0; b < idx.size(); ++b) ASSERT_EQ(got_labels[b], labels[static_cast<std::size_t>(idx[b])]);
      }
    }
  }
}

TEST(CpuAugment, EvaluationModeIsPlainNormalisation) {
  const auto data = random_dataset(3, 811);
  const std::vector<std::uint8_t> labels(3, 0);
  const std::vector<std::int32_t> idx = {2, 0, 2};
  AugmentParams p = cifar_params(4, 5);
  p.random_crop = p.random_flip = false;
  const auto out = run_cpu(data, labels, idx, p, Layout::kNCHW);
  for (std::size_t b = 0; b < idx.size(); ++b)
    for (std::int64_t e = 0; e < kImg; ++e) {
      const int c = static_cast<int>(e / (kS * kS));
      const double expected = (data[static_cast<std::size_t>(idx[b] * kImg + e)] / 255.0 - p.mean[c]) / p.std[c];
      ASSERT_NEAR(out[b * kImg + static_cast<std::size_t>(e)], expected, 4e-7 * (1 + std::fabs(expected))) << b << " " << e;
    }
}

TEST(CpuAugment, NhwcIsNchwTransposedAnd16BitTypesAreRoundedFp32) {
  const auto data = random_dataset(10, 821);
  const std::vector<std::uint8_t> labels(10, 1);
  const auto idx = random_ints(9, 822, 0, 9);
  const AugmentParams p = cifar_params(4, 7);
  const auto nchw = run_cpu(data, labels, idx, p, Layout::kNCHW);
  const auto nhwc = run_cpu(data, labels, idx, p, Layout::kNHWC);
  for (std::size_t b = 0; b < idx.size(); ++b)
    for (int c = 0; c < 3; ++c)
      for (int y = 0; y < kS; ++y)
        for (int x = 0; x < kS; ++x)
          ASSERT_EQ(nhwc[b * kImg + static_cast<std::size_t>((y * kS + x) * 3 + c)],
                    nchw[b * kImg + static_cast<std::size_t>((c * kS + y) * kS + x)]);
  std::vector<std::uint16_t> bf(idx.size() * kImg);
  kestrel::cpu::augment_batch(data.data(), 10, labels.data(), idx.data(), 9, bf.data(), DType::kBFloat16,
                              Layout::kNCHW, nullptr, p);
  for (std::size_t e = 0; e < bf.size(); ++e) ASSERT_EQ(bf[e], kestrel::bf16_bits_from_float(nchw[e])) << e;
  std::vector<std::uint16_t> h(idx.size() * kImg);  // and fp16 (kernels/augment.h promises it)
  kestrel::cpu::augment_batch(data.data(), 10, labels.data(), idx.data(), 9, h.data(), DType::kFloat16,
                              Layout::kNCHW, nullptr, p);
  for (std::size_t e = 0; e < h.size(); ++e) ASSERT_EQ(h[e], kestrel::fp16_bits_from_float(nchw[e])) << e;
}

TEST(CpuAugment, OffsetPointerAddsToOffset) {
  const auto data = random_dataset(4, 831);
  const std::vector<std::uint8_t> labels(4, 0);
  const std::vector<std::int32_t> idx = {0, 1, 2, 3, 0, 1};
  AugmentParams a = cifar_params(4, 11), b = a;
  a.offset = 12;
  const std::uint64_t base = 10;
  b.offset = 2;
  b.offset_ptr = &base;
  EXPECT_TRUE(bit_equal(run_cpu(data, labels, idx, a, Layout::kNCHW), run_cpu(data, labels, idx, b, Layout::kNCHW)));
  b.offset = 3;
  EXPECT_FALSE(bit_equal(run_cpu(data, labels, idx, a, Layout::kNCHW), run_cpu(data, labels, idx, b, Layout::kNCHW)));
}

TEST(CpuAugment, ShiftsAndFlipsAreUniform) {
  // One image whose channel 0 holds x + 1 and channel 1 holds y + 1: each output reveals where it
  // was read from. Mean 0, std 1 so the value is v / 255.
  std::vector<std::uint8_t> data(kImg);
  for (int y = 0; y < kS; ++y)
    for (int x = 0; x < kS; ++x) {
      data[static_cast<std::size_t>(y * kS + x)] = static_cast<std::uint8_t>(x + 1);
      data[static_cast<std::size_t>(kS * kS + y * kS + x)] = static_cast<std::uint8_t>(y + 1);
    }
  const std::vector<std::uint8_t> labels = {0};
  const int pad = 4, span = 2 * pad + 1;
  const std::int64_t n = 9000;
  const std::vector<std::int32_t> idx(static_cast<std::size_t>(n), 0);
  AugmentParams p;
  p.pad = pad;
  p.seed = 2024;
  const auto out = run_cpu(data, labels, idx, p, Layout::kNCHW);
  std::vector<int> sx(span, 0), sy(span, 0);
  int flips = 0;
  for (std::int64_t b = 0; b < n; ++b) {
    auto at = [&](int c, int y, int x) {
      return static_cast<int>(std::lround(out[static_cast<std::size_t>(b * kImg + (c * kS + y) * kS + x)] * 255.f));
    };
    const bool flipped = at(0, 16, 17) < at(0, 16, 16);  // the centre is never padding for pad <= 4
    flips += flipped;
    const int x_read = at(0, 16, 16) - 1, y_read = at(1, 16, 16) - 1;
    const int dx = x_read - (flipped ? kS - 1 - 16 : 16) + pad, dy = y_read - 16 + pad;
    ASSERT_TRUE(dx >= 0 && dx < span && dy >= 0 && dy < span) << b;
    ++sx[static_cast<std::size_t>(dx)];
    ++sy[static_cast<std::size_t>(dy)];
  }
  // Chi-square with 8 degrees of freedom: the 99.9th percentile is 26.1.
  for (const auto* counts : {&sx, &sy}) {
    double chi2 = 0.0;
    const double expected = static_cast<double>(n) / span;
    for (int c : *counts) chi2 += (c - expected) * (c - expected) / expected;
    EXPECT_LT(chi2, 26.1);
  }
  EXPECT_NEAR(flips, n / 2, 5 * std::sqrt(n / 4.0));
}

TEST(CpuAugment, RejectsBadIndicesAndParameters) {
  const auto data = random_dataset(2, 841);
  const std::vector<std::uint8_t> labels(2, 0);
  std::vector<float> out(3 * kImg, -99.f);
  std::vector<std::int32_t> labels_out(3, -7);
  auto call = [&](const std::vector<std::int32_t>& idx, const AugmentParams& p, DType t) {
    kestrel::cpu::augment_batch(data.data(), 2, labels.data(), idx.data(), static_cast<std::int64_t>(idx.size()),
                                out.data(), t, Layout::kNCHW, labels_out.data(), p);
  };
  try {
    call({0, 1, 2}, AugmentParams{}, DType::kFloat32);
    FAIL() << "expected kestrel::Error";
  } catch (const kestrel::Error& e) {
    EXPECT_NE(std::string(e.what()).find("batch position 2"), std::string::npos) << e.what();
  }
  // "Raises ... before writing anything": images 0 and 1 were valid, yet nothing was written.
  EXPECT_EQ(out, std::vector<float>(3 * kImg, -99.f));
  EXPECT_EQ(labels_out, std::vector<std::int32_t>(3, -7));
  EXPECT_THROW(call({-1}, AugmentParams{}, DType::kFloat32), kestrel::Error);
  AugmentParams bad_pad;
  bad_pad.pad = 17;
  EXPECT_THROW(call({0}, bad_pad, DType::kFloat32), kestrel::Error);
  bad_pad.pad = -1;
  EXPECT_THROW(call({0}, bad_pad, DType::kFloat32), kestrel::Error);
  AugmentParams bad_std;
  bad_std.std[1] = 0.f;
  EXPECT_THROW(call({0}, bad_std, DType::kFloat32), kestrel::Error);
  EXPECT_THROW(call({0}, AugmentParams{}, DType::kInt32), kestrel::Error);
  EXPECT_NO_THROW(call({1, 0}, AugmentParams{}, DType::kFloat32));
}
