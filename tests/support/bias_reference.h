// Independent references for the bias family (kernels/bias.h), shared by the CPU and CUDA suites:
// the stored index of (batch b, channel ch, spatial s) written per layout, the expected stored
// value after adding a bias, and per-channel sums in double. Header-only.
#pragma once

#include <cstdint>
#include <vector>

#include "kestrel/core/dtype.h"
#include "kestrel/core/half.h"
#include "kestrel/core/layout.h"
#include "storage_test_util.h"

namespace kestrel::testing {

inline std::int64_t bias_index(Layout l, std::int64_t c, std::int64_t hw, std::int64_t b,
                               std::int64_t ch, std::int64_t s) {
  return l == Layout::kNCHW ? (b * c + ch) * hw + s : (b * hw + s) * c + ch;
}

// y + bias[ch] for every element, rounded as fp32 arithmetic and then the storage type.
inline std::vector<double> ref_channel_bias_add(const std::vector<double>& y,
                                                const std::vector<float>& bias, DType t,
                                                std::int64_t n, std::int64_t c, std::int64_t hw,
                                                Layout l) {
  std::vector<double> out = y;
  for (std::int64_t b = 0; b < n; ++b)
    for (std::int64_t ch = 0; ch < c; ++ch)
      for (std::int64_t s = 0; s < hw; ++s) {
        const auto i = static_cast<std::size_t>(bias_index(l, c, hw, b, ch, s));
        const float sum = static_cast<float>(y[i] + static_cast<double>(bias[static_cast<std::size_t>(ch)]));
        out[i] = t == DType::kFloat32 ? sum : round_to_bf16(sum);
      }
  return out;
}

inline std::vector<double> ref_channel_sums(const std::vector<double>& dy, std::int64_t n,
                                            std::int64_t c, std::int64_t hw, Layout l) {
  std::vector<double> out(static_cast<std::size_t>(c), 0.0);
  for (std::int64_t ch = 0; ch < c; ++ch)
    for (std::int64_t b = 0; b < n; ++b)
      for (std::int64_t s = 0; s < hw; ++s)
        out[static_cast<std::size_t>(ch)] += dy[static_cast<std::size_t>(bias_index(l, c, hw, b, ch, s))];
  return out;
}


// Fixed-seed fp32 biases in [-2, 2].
inline std::vector<float> random_bias(std::int64_t c, std::uint32_t seed) {
  const HostBuffer b = random_buffer(DType::kFloat32, static_cast<std::size_t>(c), seed, -2.f, 2.f);
  std::vector<float> v(static_cast<std::size_t>(c));
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(b.get(i));
  return v;
}

}  // namespace kestrel::testing
