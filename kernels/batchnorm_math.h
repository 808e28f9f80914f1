// Formulas and work partitioning of batch normalisation, shared by kernels/batchnorm_*.cu and
// kernels/cpu/batchnorm.cpp (KESTREL_HD), so the CPU tests run the GPU's arithmetic and check the
// GPU's index walks.
#pragma once

#include <math.h>

#include <algorithm>
#include <array>
#include <cstdint>

#include "kestrel/core/dtype.h"
#include "kestrel/core/half.h"
#include "kestrel/core/hd.h"
#include "kestrel/kernels/batchnorm_types.h"

namespace kestrel::bn_detail {

// ---------------------------------------------------------------------------------------------
// Statistics. Each thread sums x - shift and (x - shift)^2 with shift = its first value (cheap,
// and exact enough because x - shift is small); the per-thread sums become (count, mean, M2)
// triples that are merged with Chan's parallel formula, which is stable at any mean.

struct Welford {
  float n, mean, m2;  // count, mean, sum of squared deviations from the mean
};

KESTREL_HD Welford welford_combine(const Welford& a, const Welford& b) {
  if (b.n == 0.f) return a;
  if (a.n == 0.f) return b;
  const float n = a.n + b.n;
  const float fb = b.n / n;
  const float delta = b.mean - a.mean;
  return {n, fmaf(delta, fb, a.mean), a.m2 + b.m2 + delta * delta * a.n * fb};
}

struct ShiftedSums {
  float shift, s1, s2;
};

KESTREL_HD void shifted_add(ShiftedSums& s, float v) {
  const float d = v - s.shift;
  s.s1 += d;
  s.s2 = fmaf(d, d, s.s2);
}

KESTREL_HD Welford shifted_to_welford(const ShiftedSums& s, float n) {
  if (n == 0.f) return {0.f, 0.f, 0.f};
  const float mean_d = s.s1 / n;
  const float m2 = s.s2 - s.s1 * mean_d;
  return {n, s.shift + mean_d, m2 < 0.f ? 0.f : m2};  // rounding may dip below 0; NaN stays
}

// Pairwise merging of a stream of partials, for the CPU twins (host only): partials are merged
// in a balanced binary tree (a binary counter of merged levels), as the GPU's block reductions
// merge, so rounding grows with log(count), not count. A serial chain of 65,536 merges (a
// channel of 2^22 values in runs of 64) left the mean tens of ulps off and the variance 3e-5.
template <typename T>
class PairwiseMerge {
 public:
  using Combine = T (*)(const T&, const T&);
  PairwiseMerge(T zero, Combine combine) : combine_(combine) { level_.fill(zero); }
  void push(T v) {
    std::size_t k = 0;
    for (; used_ >> k & 1u; ++k) v = combine_(level_[k], v);  // merge equal-sized subtrees
    used_ = (used_ >> k << k) | (std::uint64_t{1} << k);       // levels below k are now empty
    level_[k] = v;
  }
  void clear() { used_ = 0; }  // forget everything pushed (the levels are not read again)
  // Everything pushed, with `last` (the open partial) merged in; the smallest subtrees first.
  T result(T last) const {
    for (std::size_t k = 0; k < level_.size(); ++k)
      if (used_ >> k & 1u) last = combine_(level_[k], last);
    return last;
  }

 private:
  std::array<T, 64> level_;
  std::uint64_t used_ = 0;  // bit k: level_[k] holds a merge of 2^k partials
  Combine combine_;
};

// Statistics of a stream of values taken in runs of kRun (each run's shifted sums become one
// triple, as one GPU thread's share would be), the triples merged pairwise: the CPU twins'
// accumulator.
struct RunStats {
  static constexpr float kRun = 64.f;
  PairwiseMerge<Welford> runs{Welford{0.f, 0.f, 0.f}, welford_combine};
  ShiftedSums run{0.f, 0.f, 0.f};
  float count = 0.f;

  void add(float v) {
    if (count == 0.f) run = {v, 0.f, 0.f};
    shifted_add(run, v);
    if (++count == kRun) {
      runs.push(shifted_to_welford(run, count));
      count = 0.f;
    }
  }
  Welford result() const { return runs.result(shifted_to_welford(run, count)); }
};

// Plain sums (T starting from `zero`) over a stream of values in runs of RunStats::kRun, the runs
// merged pairwise: the CPU twins' backward accumulators (batch norm's GradSums, layer norm's
// RowSums). add(f) lets f add the next value to the open run.
template <typename T>
class RunSums {
 public:
  RunSums(T zero, typename PairwiseMerge<T>::Combine combine)
      : runs_(zero, combine), zero_(zero), run_(zero) {}
  template <typename Add>
  void add(Add&& f) {
    f(run_);
    if (++count_ == static_cast<int>(RunStats::kRun)) {
      runs_.push(run_);
      run_ = zero_;
      count_ = 0;
    }
  }
  T result() const { return runs_.result(run_); }
  void clear() {
    runs_.clear();
    run_ = zero_;
    count_ = 0;
  }

 private:
  PairwiseMerge<T> runs_;
  T zero_, run_;
  int count_ = 0;
};

KESTREL_HD float bn_invstd(float var, float eps) { return 1.f / sqrtf(var + eps); }

// Turns a channel's merged statistics over m values into save_mean / save_invstd and updates the
// running statistics (PyTorch's convention: unbiased variance, running = (1-mom)*running +
// mom*batch) when running_mean is not null.
KESTREL_HD void bn_finalize_channel(const Welford& w, float m, float eps, float momentum,
                                    float* save_mean, float* save_invstd, float* running_mean,
                                    float* running_var, std::int64_t ch) {
  const float var = w.m2 / m;
  save_mean[ch] = w.mean;
  save_invstd[ch] = bn_invstd(var, eps);
  if (running_mean != nullptr) {
    const float unbiased = w.m2 / (m - 1.f);
    running_mean[ch] = (1.f - momentum) * running_mean[ch] + momentum * w.mean;
    running_var[ch] = (1.f - momentum) * running_var[ch] + momentum * unbiased;
  }
}

// ---------------------------------------------------------------------------------------------
// Elementwise formulas.

// y = (x - mean) * scale + shift with scale = gamma * invstd, shift = beta. Subtracting the mean
// first keeps precision when |mean| >> std.
struct BnAffine {
  float mean, scale, shift;
};

KESTREL_HD BnAffine bn_affine(float mean, float invstd, const float* gamma, const float* beta,
                              std::int64_t ch) {
  const float g = gamma != nullptr ? gamma[ch] : 1.f;
  const float b = beta != nullptr ? beta[ch] : 0.f;
  return {mean, g * invstd, b};
}

KESTREL_HD float bn_activate(float v, float residual, BnActivation act) {
  if (act == BnActivation::kAddRelu) v += residual;
  if (act != BnActivation::kNone) v = v < 0.f ? 0.f : v;  // relu that keeps NaN
  return v;
}

KESTREL_HD float bn_forward_element(float x, float residual, const BnAffine& a, BnActivation act) {
  return bn_activate(fmaf(x - a.mean, a.scale, a.shift), residual, act);
}

// Gradient reaching the normalisation: dy masked by the ReLU, taken from the output y (masked
// where y <= 0, so a NaN output passes its gradient, as relu_backward does).
KESTREL_HD float bn_masked_grad(float dy, float y, BnActivation act) {
  return (act != BnActivation::kNone && y <= 0.f) ? 0.f : dy;
}

// Per-channel sums of backward: g and g * (x - mean) (times invstd this gives dgamma).
struct GradSums {
  float g, gd;
};

KESTREL_HD GradSums grad_sums_combine(const GradSums& a, const GradSums& b) {
  return {a.g + b.g, a.gd + b.gd};
}

KESTREL_HD void grad_sums_add(GradSums& s, float g, float x, float mean) {
  s.g += g;
  s.gd = fmaf(g, x - mean, s.gd);
}

// dx = gamma*invstd*(g - dbeta/m - xhat*dgamma/m) rearranged as a*g + k*(x - mean) + b.
struct BnBackwardCoeffs {
  float mean, a, k, b;
};

KESTREL_HD BnBackwardCoeffs bn_backward_coeffs(float mean, float invstd, const float* gamma,
                                               std::int64_t ch, float dbeta, float dgamma,
                                               float m) {
  const float ga = (gamma != nullptr ? gamma[ch] : 1.f) * invstd;
  return {mean, ga, -ga * invstd * (dgamma / m), -ga * (dbeta / m)};
}

KESTREL_HD float bn_backward_element(float g, float x, const BnBackwardCoeffs& c) {
  return fmaf(c.a, g, fmaf(c.k, x - c.mean, c.b));
}

// ---------------------------------------------------------------------------------------------
// Work partitioning (device independent, so results do not depend on the GPU either).
//
// Each channel's m values are split into `parts` ranges, one block each; a block reduces about
// kChunkBytes of the tensor (8 16-byte vectors a thread); where that leaves fewer than
// kSpreadBlocks blocks, smaller blocks, enough for kSpreadBlocks but never more parts than fp32's
// (kChunkBytes / 4 elements a block), so even c = 16 spreads the tensor over every SM. (Before, every dtype took 8192 elements a block: bf16 blocks moved half the bytes for the
// same per-block set-up, combine and partial writes, and the bf16 channels-last forward measured
// slower than fp32's on the H200.)
// NCHW walks a channel's n planes; NHWC (and NCHW with hw == 1, the same memory order) gives each
// thread one column of 16-byte vectors across the channels and each block a range of rows.

constexpr int kThreads = 256;                  // threads of every batch-norm block
constexpr std::int64_t kChunkBytes = 32768;    // bytes one reduction block covers (about)
constexpr std::int64_t kSpreadBlocks = 1024;   // blocks a grid keeps when the tensor allows
constexpr std::int64_t kMaxParts = 2048;       // partial statistics per channel at most
constexpr std::int64_t kMaxElemBytes = 4;      // fp32: the dtype with the most parts

KESTREL_HD bool channels_last(const BatchNormDims& d) {
  return d.layout == Layout::kNHWC || d.hw == 1;
}

KESTREL_HD std::int64_t ceil_div(std::int64_t a, std::int64_t b) { return (a + b - 1) / b; }

KESTREL_HD std::int64_t clamp64(std::int64_t v, std::int64_t lo, std::int64_t hi) {
  return v < lo ? lo : (v > hi ? hi : v);
}

// Reduction blocks along n * hw when a block covers about `chunk` elements.
KESTREL_HD std::int64_t parts_for_chunk(const BatchNormDims& d, std::int64_t chunk) {
  const std::int64_t m = d.n * d.hw;
  if (channels_last(d)) return clamp64(ceil_div(m, ceil_div(chunk, d.c)), 1, kMaxParts);
  return clamp64(ceil_div(m, chunk), 1, kMaxParts);  // a block covers part of one channel
}

// Partial statistics per channel (= reduction blocks along n * hw) for elements of `elem_bytes`
// bytes (4 or 2). Never more than fp32's (workspace_layout sizes the partials by fp32's).
KESTREL_HD std::int64_t bn_parts(const BatchNormDims& d, std::int64_t elem_bytes = kMaxElemBytes) {
  const std::int64_t fp32_parts = parts_for_chunk(d, kChunkBytes / kMaxElemBytes);
  const std::int64_t parts = parts_for_chunk(d, kChunkBytes / elem_bytes);
  if (parts >= fp32_parts) return fp32_parts;
  // Blocks a part adds to the grid: one per channel in NCHW, one per tile of 256 vector columns
  // channels-last (counted with 16-byte vectors; a scalar walk has as many tiles or more).
  const std::int64_t per_part = channels_last(d) ? ceil_div(d.c, kThreads * 16 / elem_bytes) : d.c;
  if (parts * per_part >= kSpreadBlocks) return parts;
  const std::int64_t spread = ceil_div(kSpreadBlocks, per_part);
  return spread < fp32_parts ? spread : fp32_parts;
}

// [begin, end) of part k when `total` items are split into `parts` near-equal ranges.
KESTREL_HD void part_range(std::int64_t k, std::int64_t parts, std::int64_t total,
                           std::int64_t& begin, std::int64_t& end) {
  const std::int64_t base = total / parts, extra = total % parts;
  begin = k * base + (k < extra ? k : extra);
  end = begin + base + (k < extra ? 1 : 0);
}

struct BnGeometry {
  bool channels_last;
  std::int64_t v;         // elements per vector access: 1, or 16 bytes' worth
  std::int64_t c, parts;  // channels; partial statistics per channel
  std::int64_t hwv, mv;   // NCHW: vectors per plane (hw / v), per channel (n * hwv)
  std::int64_t rows, cv;  // channels-last: rows (n * hw), vectors per row (c / v)
  std::int64_t col_tile;  // channels-last: vector columns one block covers
  std::int64_t rows_per_iter, col_tiles;  // rows a block covers at once; blocks across a row
};

// `v` must divide hw (NCHW) or c (channels-last); elements are `elem_bytes` bytes each.
KESTREL_HD BnGeometry bn_geometry(const BatchNormDims& d, std::int64_t v, std::int64_t elem_bytes) {
  BnGeometry g{};
  g.channels_last = channels_last(d);
  g.v = v;
  g.c = d.c;
  g.parts = bn_parts(d, elem_bytes);
  g.hwv = d.hw / v;
  g.mv = d.n * g.hwv;
  g.rows = d.n * d.hw;
  g.cv = d.c / v;
  // The channels-last fields only matter in that layout; for NCHW with fewer channels than a
  // vector holds, cv is 0 and the divisions below must not run.
  g.col_tile = g.cv < kThreads ? (g.cv > 0 ? g.cv : 1) : kThreads;
  g.rows_per_iter = kThreads / g.col_tile;
  g.col_tiles = ceil_div(g.cv, g.col_tile);
  return g;
}

// The element offsets (in elements, each the first of a v-vector of one channel) that thread
// `thread` of the NCHW block for (channel ch, part k) visits, in order: vectors q, q + kThreads,
// ... of the channel's n * hwv, vector q lying in plane q / hwv at position q % hwv. next() keeps
// the offset as a running sum (a few additions a step, no 64-bit multiplies: the kernels' address
// arithmetic was about half of the reduction loop's SASS).
struct NchwCursor {
  std::int64_t off;       // element offset of the next vector
  std::int64_t left;      // vectors still to visit
  std::int64_t p, hwv;    // position of the next vector in its plane; vectors per plane
  std::int64_t step_p;    // kThreads % hwv: the in-plane advance of a step
  std::int64_t step_off;  // offset advance of a step without a plane wrap (elements)
  std::int64_t wrap_off;  // extra offset when the position wraps into the next plane

  KESTREL_HD NchwCursor(const BnGeometry& g, std::int64_t channel, std::int64_t k, int thread)
      : hwv(g.hwv) {
    std::int64_t q, q_end;
    part_range(k, g.parts, g.mv, q, q_end);
    q += thread;
    left = q < q_end ? (q_end - q + kThreads - 1) / kThreads : 0;
    const std::int64_t ni = q / hwv;
    p = q % hwv;
    off = ((ni * g.c + channel) * hwv + p) * g.v;
    step_p = kThreads % hwv;
    const std::int64_t plane = hwv * g.v, image = g.c * plane;  // elements
    step_off = (kThreads / hwv) * image + step_p * g.v;
    wrap_off = image - plane;  // moving from the end of plane (n, ch) to the start of (n + 1, ch)
  }

  KESTREL_HD bool next(std::int64_t& out) {
    if (left <= 0) return false;
    out = off;
    --left;
    off += step_off;
    p += step_p;
    if (p >= hwv) {
      p -= hwv;
      off += wrap_off;
    }
    return true;
  }
};

// Channels-last: thread `thread` of the block (part, tile) owns vector column `col` (channels
// col*v .. col*v+v-1) and visits rows row_lane, row_lane + rows_per_iter, ... of the part.
// (A running offset here, as in NchwCursor, made the SASS of the NHWC loops longer, not shorter.)
struct NhwcCursor {
  std::int64_t row, row_end, step, c, col, v;
  bool active;

  KESTREL_HD NhwcCursor(const BnGeometry& g, std::int64_t part, std::int64_t tile, int thread)
      : step(g.rows_per_iter), c(g.c), v(g.v) {
    const std::int64_t row_lane = thread / g.col_tile;
    col = tile * g.col_tile + thread % g.col_tile;
    active = row_lane < g.rows_per_iter && col < g.cv;
    part_range(part, g.parts, g.rows, row, row_end);
    row += row_lane;
  }

  KESTREL_HD std::int64_t first_channel() const { return col * v; }

  KESTREL_HD bool next(std::int64_t& off) {
    if (!active || row >= row_end) return false;
    off = row * c + col * v;
    row += step;
    return true;
  }
};

}  // namespace kestrel::bn_detail
