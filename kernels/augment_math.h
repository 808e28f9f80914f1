// CIFAR batch augmentation: parameters, the per-image random draw and the per-element formula,
// shared by kernels/augment.cu and kernels/cpu/augment.cpp so both produce identical bits.
#pragma once

#include <math.h>

#include <cstdint>

#include "kestrel/core/dtype.h"
#include "kestrel/core/error.h"
#include "kestrel/core/hd.h"
#include "kestrel/core/layout.h"
#include "kestrel/kernels/element_io.h"
#include "kestrel/kernels/philox.h"

namespace kestrel {

// Random crop with zero padding, horizontal flip and per-channel normalisation of CIFAR images.
// random_crop = random_flip = false gives plain normalisation (evaluation). Image b of a batch
// draws philox_block(seed, (offset_ptr ? *offset_ptr : 0) + offset, b): word 0 % (2 pad + 1) is
// the crop's x shift, word 1 % (2 pad + 1) its y shift, word 2 & 1 the flip. offset_ptr points to
// device memory on the GPU (host memory for the CPU twin), so a replayed graph draws afresh.
// The defaults normalise to [0, 1] (mean 0, std 1).
struct AugmentParams {
  int pad = 4;
  bool random_crop = true;
  bool random_flip = true;
  float mean[3] = {0.f, 0.f, 0.f};
  float std[3] = {1.f, 1.f, 1.f};
  std::uint64_t seed = 0;
  std::uint64_t offset = 0;
  const std::uint64_t* offset_ptr = nullptr;
};

namespace augment_detail {

constexpr int kSide = 32;
constexpr int kChannels = 3;
constexpr std::int64_t kImageBytes = kChannels * kSide * kSide;
constexpr int kMaxPad = 16;

// value = fmaf(v, scale[c], shift[c]); computed once on the host (see normalisation()).
struct Norm {
  float scale[3];
  float shift[3];
};

// scale = 1 / (255 std), shift = -mean / std, each computed in double and rounded once.
inline Norm normalisation(const AugmentParams& p) {
  Norm n{};
  for (int c = 0; c < kChannels; ++c) {
    n.scale[c] = static_cast<float>(1.0 / (255.0 * static_cast<double>(p.std[c])));
    n.shift[c] = static_cast<float>(-static_cast<double>(p.mean[c]) / static_cast<double>(p.std[c]));
  }
  return n;
}

// What image b of a batch does: the crop window's top-left corner in padded coordinates
// (pad = centred = no shift) and whether it is flipped.
struct Draw {
  int dx, dy;
  bool flip;
};

KESTREL_HD Draw draw(std::uint64_t seed, std::uint64_t offset, std::int64_t b, int pad,
                     bool random_crop, bool random_flip) {
  const Philox4x32 r = philox_block(seed, offset, static_cast<std::uint64_t>(b));
  const std::uint32_t span = 2u * static_cast<std::uint32_t>(pad) + 1u;
  return Draw{random_crop ? static_cast<int>(r.x[0] % span) : pad,
              random_crop ? static_cast<int>(r.x[1] % span) : pad, random_flip && (r.x[2] & 1u)};
}

// Output (c, y, x) of one image: flip the cropped window, then read the zero-padded source.
KESTREL_HD float pixel(const std::uint8_t* image, int c, int y, int x, const Draw& d, int pad,
                       const Norm& norm) {
  const int xc = d.flip ? kSide - 1 - x : x;
  const int sy = y + d.dy - pad, sx = xc + d.dx - pad;
  const bool inside = sy >= 0 && sy < kSide && sx >= 0 && sx < kSide;
  const float v = inside ? static_cast<float>(image[(c * kSide + sy) * kSide + sx]) : 0.f;
  return fmaf(v, norm.scale[c], norm.shift[c]);
}

// Host-side argument checks shared by both twins.
inline void check_augment(std::int64_t num_images, std::int64_t n, DType out_dtype,
                          const AugmentParams& p, const void* dataset, const void* indices,
                          const void* out, const void* labels_in, const void* labels_out) {
  KESTREL_CHECK(n >= 0 && num_images >= 0, "augment_batch: negative size (n=", n, ", num_images=",
                num_images, ")");
  KESTREL_CHECK(out_dtype == DType::kFloat32 || out_dtype == DType::kBFloat16 ||
                    out_dtype == DType::kFloat16,
                "augment_batch: output dtype must be fp32, bf16 or fp16, got ", dtype_name(out_dtype));
  KESTREL_CHECK(p.pad >= 0 && p.pad <= kMaxPad, "augment_batch: pad must be in [0, ", kMaxPad,
                "], got ", p.pad);
  for (int c = 0; c < kChannels; ++c) {
    KESTREL_CHECK(isfinite(p.std[c]) && p.std[c] > 0.f, "augment_batch: std[", c,
                  "] must be finite and > 0, got ", p.std[c]);
    KESTREL_CHECK(isfinite(p.mean[c]), "augment_batch: mean[", c, "] must be finite, got ", p.mean[c]);
  }
  if (n == 0) return;
  KESTREL_CHECK(dataset != nullptr && indices != nullptr && out != nullptr,
                "augment_batch: dataset, indices and out must not be null");
  element_io::check_element_aligned("augment_batch", out, out_dtype);
  KESTREL_CHECK(labels_out == nullptr || labels_in != nullptr,
                "augment_batch: labels_out needs labels_in");
}

}  // namespace augment_detail
}  // namespace kestrel
