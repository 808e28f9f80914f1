// Dropout's parameters and element formula, shared by kernels/dropout.cu and
// kernels/cpu/dropout.cpp (no CUDA headers: the CPU twin includes this).
//
// Element i of a call keeps its value when u_i > p, where u_i = (h_i + 1) / 2^16 is a 16-bit
// uniform on (0, 1]: h_i is half i % 2 (the low half first) of word (i % 8) / 2 of
// philox_block(seed, offset_eff, i / 8), offset_eff = (offset_ptr ? *offset_ptr : 0) + offset.
// One Philox block serves 8 elements. p therefore acts as floor(p * 2^16) / 2^16: the keep
// probability is 1 - p to within 2^-16 (1.5e-5), far below what training notices, and the
// generator's share of the work halves against one 24-bit uniform per element (Philox's
// integer arithmetic, not memory, bounded the bf16 kernel: 27 integer instructions an element
// against the H200's 64 a cycle per SM; docs/PERFORMANCE.md).
//   training, inverted: y = keep ? x * (1 / (1 - q)) : 0   (scale computed once, as float)
//   training, vanilla:  y = keep ? x : 0
//   eval, inverted:     y = x
//   eval, vanilla:      y = x * (1 - q)
// with q = floor(p * 2^16) / 2^16 the drop probability the 16-bit draws realise, so inverted
// dropout preserves the mean and vanilla dropout's eval matches its training expectation exactly
// (1 - q is exact in float; q differs from p by less than 2^-16).
// Backward applies the same factor and the same (regenerated) mask to dy. No mask is stored.
#pragma once

#include <cmath>
#include <cstdint>

#include "kestrel/core/dtype.h"
#include "kestrel/core/error.h"
#include "kestrel/core/hd.h"
#include "kestrel/kernels/element_io.h"
#include "kestrel/kernels/philox.h"

namespace kestrel {

enum class DropoutMode : std::uint8_t { kInverted, kVanilla };

// One dropout call. `seed` and the effective offset select the Philox stream (one offset value
// per call: 2^66 words). A training step gives its dropout layers offsets 0..k-1 and advances
// *offset_ptr by k (advance_offset), so no two calls of any two steps share a stream and a
// replayed CUDA Graph draws fresh masks; backward reuses its forward's parameters.
struct DropoutParams {
  float p = 0.5f;  // drop probability, [0, 1]
  DropoutMode mode = DropoutMode::kInverted;
  bool training = true;
  std::uint64_t seed = 0;
  std::uint64_t offset = 0;                   // added to *offset_ptr when offset_ptr is set
  const std::uint64_t* offset_ptr = nullptr;  // device memory on CUDA, host memory on the CPU;
                                              // read when the kernel runs
};

// Raises kestrel::Error for p outside [0, 1] (NaN included) or an unknown mode.
inline void validate_dropout(const DropoutParams& p) {
  KESTREL_CHECK(p.p >= 0.f && p.p <= 1.f, "dropout: p must lie in [0, 1], got ", p.p);
  KESTREL_CHECK(p.mode == DropoutMode::kInverted || p.mode == DropoutMode::kVanilla,
                "dropout: unknown mode ", static_cast<int>(p.mode));
}

namespace dropout_detail {

// What a call does to each element, resolved once on the host.
enum class Action : std::uint8_t {
  kCopy,   // y = x (eval inverted, p = 0)
  kZero,   // y = 0 (training with p = 1)
  kScale,  // y = x * factor (eval vanilla)
  kMask,   // y = keep ? x * factor : 0
};

struct Plan {
  Action action = Action::kCopy;
  float factor = 1.f;
  // keep <=> h >= threshold; equals (h + 1) / 2^16 > p exactly (see below).
  std::uint32_t threshold = 0;
};

// Elements a Philox block serves: 16 bits each.
constexpr int kElementsPerBlock = 8;

// u = k * 2^-16 with k = h + 1 an integer in [1, 2^16], so u > p <=> k > p * 2^16
// <=> k > floor(p * 2^16) <=> h >= floor(p * 2^16). p * 2^16 is exact in float.
inline std::uint32_t keep_threshold(float p) {
  return static_cast<std::uint32_t>(std::floor(p * 65536.0f));
}

// 1 - q: the probability that an element is kept (exact in float; 0 for p = 1).
inline float keep_probability(float p) {
  return static_cast<float>(65536u - keep_threshold(p)) / 65536.0f;
}

inline Plan plan(const DropoutParams& p) {
  validate_dropout(p);
  const bool inverted = p.mode == DropoutMode::kInverted;
  if (!p.training) {
    if (inverted || p.p == 0.f) return Plan{Action::kCopy, 1.f, 0};
    return Plan{Action::kScale, keep_probability(p.p), 0};
  }
  if (p.p == 0.f) return Plan{Action::kCopy, 1.f, 0};
  if (p.p == 1.f) return Plan{Action::kZero, 0.f, 0};
  return Plan{Action::kMask, inverted ? 1.0f / keep_probability(p.p) : 1.0f, keep_threshold(p.p)};
}

// Both twins' entry: validates the call (raising before any work), resolves its plan, then calls
// f(T{}, plan) with T the storage type of `dtype`; nothing for n == 0.
template <typename F>
void dispatch(const char* what, const void* x, const void* y, std::int64_t n, DType dtype,
              const DropoutParams& p, F&& f) {
  const Plan resolved = plan(p);
  element_io::check_buffers(what, n, dtype, {x, y});
  element_io::dispatch_floating(dtype, what, [&](auto tag) {
    if (n > 0) f(tag, resolved);
  });
}

inline std::uint64_t effective_offset(const DropoutParams& p) { return stream_offset(p.offset, p.offset_ptr); }

// The 16-bit half of word w that element j uses (even j: low half).
KESTREL_HD std::uint32_t half_bits(std::uint32_t w, int j) { return (j & 1) != 0 ? w >> 16 : w & 0xffffu; }

// h of element j (0..7) of the 8 a Philox block serves.
KESTREL_HD std::uint32_t mask_bits(const Philox4x32& r, int j) { return half_bits(r.x[j >> 1], j); }

KESTREL_HD bool keep(std::uint32_t h, std::uint32_t threshold) { return h >= threshold; }

KESTREL_HD float apply(float x, std::uint32_t h, std::uint32_t threshold, float factor) {
  return keep(h, threshold) ? x * factor : 0.f;
}

}  // namespace dropout_detail
}  // namespace kestrel
