// Synthetic CIFAR-10 stand-in and epoch shuffling, both driven by Philox streams.
//
// Everything here is integer arithmetic or IEEE double arithmetic with our own sine, so the
// bytes are identical on every machine (libm's sin may differ in the last bit between versions).
#include <algorithm>
#include <cmath>
#include <limits>

#include "kestrel/core/error.h"
#include "kestrel/kernels/philox.h"
#include "kestrel/layers/cifar10.h"

namespace kestrel {
namespace {

// Sequential 32-bit words of Philox stream (seed, offset), from word `first` on, following the
// element convention of kernels/philox.h (word i = lane i % 4 of block i / 4).
class PhiloxWords {
 public:
  PhiloxWords(std::uint64_t seed, std::uint64_t offset, std::uint64_t first = 0)
      : seed_(seed), offset_(offset), index_(first) {}
  std::uint32_t next() {
    const std::uint64_t block = index_ / 4;
    if (!valid_ || block != block_) {
      words_ = philox_block(seed_, offset_, block);
      block_ = block;
      valid_ = true;
    }
    return words_.x[index_++ % 4];
  }
  // (0, 1], as uniform_from_u32.
  double uniform() { return static_cast<double>(uniform_from_u32(next())); }
  // Uniform integer in [0, range) without modulo bias (Lemire's multiply-and-reject).
  std::uint32_t below(std::uint32_t range) {
    std::uint64_t m = static_cast<std::uint64_t>(next()) * range;
    if (static_cast<std::uint32_t>(m) < range) {
      const std::uint32_t threshold = static_cast<std::uint32_t>(-range) % range;
      while (static_cast<std::uint32_t>(m) < threshold) m = static_cast<std::uint64_t>(next()) * range;
    }
    return static_cast<std::uint32_t>(m >> 32);
  }

 private:
  std::uint64_t seed_, offset_, index_;
  std::uint64_t block_ = 0;
  bool valid_ = false;
  Philox4x32 words_{};
};

// Fisher-Yates shuffle of `v` driven by `rng`.
template <typename T>
void shuffle(std::vector<T>& v, PhiloxWords& rng) {
  for (std::size_t i = v.size(); i > 1; --i) {
    const std::size_t j = rng.below(static_cast<std::uint32_t>(i));
    std::swap(v[i - 1], v[j]);
  }
}

constexpr double kPi = 3.14159265358979323846;

// sin(x) to ~1e-9 with IEEE double operations only (deterministic everywhere).
double det_sin(double x) {
  // Reduce to [-pi, pi], then to [-pi/2, pi/2] with sin(pi - r) = sin(r).
  x -= 2.0 * kPi * std::floor(x / (2.0 * kPi) + 0.5);
  if (x > kPi / 2) x = kPi - x;
  if (x < -kPi / 2) x = -kPi - x;
  const double x2 = x * x;
  // Taylor series to x^15: error below 1e-11 on [-pi/2, pi/2].
  double s = 1.0 / 1307674368000.0;
  s = s * x2 - 1.0 / 6227020800.0;
  s = s * x2 + 1.0 / 39916800.0;
  s = s * x2 - 1.0 / 362880.0;
  s = s * x2 + 1.0 / 5040.0;
  s = s * x2 - 1.0 / 120.0;
  s = s * x2 + 1.0 / 6.0;
  return x - x * x2 * s;
}

// Philox offsets of the synthetic images and of the epoch orders: tags in the high bits keep them
// apart from each other and from the small offsets that parameter initialisation (parameter
// index) and dropout (step counter) use with the same seed.
constexpr std::uint64_t kSyntheticTag = 0x53594E5400000000ull;  // "SYNT"
constexpr std::uint64_t kShuffleTag = 0x5348554600000000ull;    // "SHUF"
constexpr std::uint64_t kWordsPerImage = 4096;                 // 16 parameters + 3072 noise words

// Image `index` of one split with class `label`, written to `out` (3072 bytes, planar RGB).
// Classes: pattern = label % 5 (stripes at 0, 90, 45, 135 degrees, or rings), period 10 px for
// labels 0..4 and 5 px for 5..9. Per image: random phase, centre, +-10% frequency, +-0.15 rad
// orientation, contrast, brightness, a random light and dark colour, and pixel noise.
void draw_image(std::uint64_t seed, std::uint64_t offset, std::int64_t index, int label,
                std::uint8_t* out) {
  PhiloxWords rng(seed, offset, static_cast<std::uint64_t>(index) * kWordsPerImage);
  const int pattern = label % 5;
  const double period = label < 5 ? 10.0 : 5.0;
  const double freq = 2.0 * kPi / period * (0.9 + 0.2 * rng.uniform());
  const double phase = 2.0 * kPi * rng.uniform();
  constexpr double kAngles[5] = {0.0, kPi / 2, kPi / 4, 3 * kPi / 4, 0.0};  // rings: unused
  const double theta = kAngles[pattern] + 0.3 * (rng.uniform() - 0.5);
  const double cx = 15.5 + 8.0 * (rng.uniform() - 0.5);
  const double cy = 15.5 + 8.0 * (rng.uniform() - 0.5);
  const double contrast = 0.5 + 0.5 * rng.uniform();
  const double brightness = 30.0 * (rng.uniform() - 0.5);
  double light[3], dark[3];
  for (int ch = 0; ch < 3; ++ch) light[ch] = 150.0 + 100.0 * rng.uniform();
  for (int ch = 0; ch < 3; ++ch) dark[ch] = 10.0 + 100.0 * rng.uniform();
  const double ct = det_sin(theta + kPi / 2), st = det_sin(theta);
  // Noise: the four bytes of a word summed (mean 510, sd 147.8), scaled to sd 32.
  constexpr double kNoiseScale = 32.0 / 147.80138;
  PhiloxWords noise(seed, offset, static_cast<std::uint64_t>(index) * kWordsPerImage + 16);
  for (int y = 0; y < 32; ++y) {
    for (int x = 0; x < 32; ++x) {
      const double u = x - cx, v = y - cy;
      const double r = pattern == 4 ? std::sqrt(u * u + v * v) : u * ct + v * st;
      const double t = 0.5 * (det_sin(freq * r + phase) + 1.0);  // 0 dark .. 1 light
      for (int ch = 0; ch < 3; ++ch) {
        const double mid = 0.5 * (light[ch] + dark[ch]);
        const double base = dark[ch] + (light[ch] - dark[ch]) * t;
        const std::uint32_t w = noise.next();
        const int bytes_sum = static_cast<int>((w & 0xff) + ((w >> 8) & 0xff) + ((w >> 16) & 0xff) + (w >> 24));
        const double value = mid + contrast * (base - mid) + brightness + (bytes_sum - 510) * kNoiseScale;
        out[ch * 1024 + y * 32 + x] = static_cast<std::uint8_t>(std::clamp(std::lround(value), 0L, 255L));
      }
    }
  }
}

CifarSplit synthetic_split(std::int64_t n, std::uint64_t seed, std::uint64_t split_tag) {
  CifarSplit split;
  split.count = n;
  split.labels.resize(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) split.labels[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(i % kCifarClasses);
  PhiloxWords order(seed, kSyntheticTag | (split_tag << 8) | 1u);
  shuffle(split.labels, order);
  split.images.resize(static_cast<std::size_t>(n * kCifarImageBytes));
  for (std::int64_t i = 0; i < n; ++i)
    draw_image(seed, kSyntheticTag | (split_tag << 8), i, split.labels[static_cast<std::size_t>(i)],
               split.images.data() + i * kCifarImageBytes);
  return split;
}

}  // namespace

CifarDataset synthetic_cifar10(std::int64_t n_train, std::int64_t n_test, std::uint64_t seed) {
  // The bound keeps word indices (n * 4096) and label shuffles (32-bit ranges) in range.
  constexpr std::int64_t kMax = std::int64_t{1} << 30;
  KESTREL_CHECK(n_train >= 0 && n_train <= kMax && n_test >= 0 && n_test <= kMax,
                "synthetic_cifar10: image counts must be in 0..", kMax, ", got train ", n_train,
                ", test ", n_test);
  CifarDataset data;
  data.train = synthetic_split(n_train, seed, 1);
  data.test = synthetic_split(n_test, seed, 2);
  data.source = "synthetic (seed " + std::to_string(seed) + ")";
  return data;
}

std::vector<std::int32_t> epoch_permutation(std::int64_t count, std::uint64_t seed,
                                            std::int64_t epoch) {
  KESTREL_CHECK(count >= 0 && count <= std::numeric_limits<std::int32_t>::max(),
                "epoch_permutation: count ", count, " is not in 0..2^31-1");
  KESTREL_CHECK(epoch >= 0 && epoch < (std::int64_t(1) << 32), "epoch_permutation: epoch ", epoch,
                " is not in 0..2^32-1");
  std::vector<std::int32_t> perm(static_cast<std::size_t>(count));
  for (std::int64_t i = 0; i < count; ++i) perm[static_cast<std::size_t>(i)] = static_cast<std::int32_t>(i);
  PhiloxWords rng(seed, kShuffleTag | static_cast<std::uint64_t>(epoch));
  shuffle(perm, rng);
  return perm;
}

}  // namespace kestrel
