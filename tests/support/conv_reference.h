// Independent double-precision references for 2-D convolutions, used by the CPU and CUDA conv
// suites: forward by im2col and a matrix product on logical NCHW / KCRS values, and the storage
// index of a logical element written from the layout's strides. Header-only.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "kestrel/kernels/conv_desc.h"

namespace kestrel::testing {

// Strides of a logical {A, B, C, D} = {N, C, H, W} (or {K, C, R, S}) tensor: NCHW row-major, or
// NHWC with B innermost.
inline std::array<std::int64_t, 4> layout_strides(Layout l, const std::array<std::int64_t, 4>& d) {
  if (l == Layout::kNHWC) return {d[1] * d[2] * d[3], 1, d[3] * d[1], d[1]};
  return {d[1] * d[2] * d[3], d[2] * d[3], d[3], 1};
}

// Logical values (row-major in {A, B, C, D}) of a stored tensor (to_logical), and back.
inline std::vector<double> relayout(const std::vector<double>& in, Layout l,
                                    const std::array<std::int64_t, 4>& d, bool stored_to_logical) {
  const auto st = layout_strides(l, d);
  std::vector<double> out(in.size());
  std::size_t i = 0;
  for (std::int64_t a = 0; a < d[0]; ++a)
    for (std::int64_t b = 0; b < d[1]; ++b)
      for (std::int64_t c = 0; c < d[2]; ++c)
        for (std::int64_t e = 0; e < d[3]; ++e, ++i) {
          const auto at = static_cast<std::size_t>(a * st[0] + b * st[1] + c * st[2] + e * st[3]);
          if (stored_to_logical) out[i] = in[at]; else out[at] = in[i];
        }
  return out;
}
inline std::vector<double> to_logical(const std::vector<double>& stored, Layout l,
                                      const std::array<std::int64_t, 4>& d) {
  return relayout(stored, l, d, true);
}
inline std::vector<double> to_stored(const std::vector<double>& logical, Layout l,
                                     const std::array<std::int64_t, 4>& d) {
  return relayout(logical, l, d, false);
}

inline std::array<std::int64_t, 4> ref_x_dims(const Conv2dDesc& d) { return {d.n, d.c, d.h, d.w}; }
inline std::array<std::int64_t, 4> ref_w_dims(const Conv2dDesc& d) { return {d.k, d.c, d.r, d.s}; }
inline std::array<std::int64_t, 4> ref_y_dims(const Conv2dDesc& d) {
  // Output size from the definition: the last p with p*stride - pad + dil*(r-1) < h + pad.
  std::int64_t oh = 0, ow = 0;
  while (oh * d.stride_h - d.pad_h + d.dil_h * (d.r - 1) < d.h + d.pad_h) ++oh;
  while (ow * d.stride_w - d.pad_w + d.dil_w * (d.s - 1) < d.w + d.pad_w) ++ow;
  return {d.n, d.k, oh, ow};
}

// y = conv(x, w) on logical values: columns[(n,p,q), (c,r,s)] of zero-padded x, times w^T.
inline std::vector<double> ref_conv_forward(const Conv2dDesc& d, const std::vector<double>& x,
                                            const std::vector<double>& w) {
  const auto yd = ref_y_dims(d);
  const std::int64_t oh = yd[2], ow = yd[3], taps = d.c * d.r * d.s;
  std::vector<double> cols(static_cast<std::size_t>(d.n * oh * ow * taps), 0.0);
  for (std::int64_t n = 0; n < d.n; ++n)
    for (std::int64_t p = 0; p < oh; ++p)
      for (std::int64_t q = 0; q < ow; ++q)
        for (std::int64_t c = 0; c < d.c; ++c)
          for (std::int64_t r = 0; r < d.r; ++r)
            for (std::int64_t s = 0; s < d.s; ++s) {
              const std::int64_t hh = p * d.stride_h + r * d.dil_h - d.pad_h;
              const std::int64_t ww = q * d.stride_w + s * d.dil_w - d.pad_w;
              if (hh < 0 || hh >= d.h || ww < 0 || ww >= d.w) continue;
              const std::int64_t row = (n * oh + p) * ow + q, col = (c * d.r + r) * d.s + s;
              cols[static_cast<std::size_t>(row * taps + col)] =
                  x[static_cast<std::size_t>(((n * d.c + c) * d.h + hh) * d.w + ww)];
            }
  std::vector<double> y(static_cast<std::size_t>(d.n * d.k * oh * ow), 0.0);
  for (std::int64_t n = 0; n < d.n; ++n)
    for (std::int64_t k = 0; k < d.k; ++k)
      for (std::int64_t pq = 0; pq < oh * ow; ++pq) {
        double acc = 0.0;
        const std::int64_t row = n * oh * ow + pq;
        for (std::int64_t t = 0; t < taps; ++t)
          acc += cols[static_cast<std::size_t>(row * taps + t)] * w[static_cast<std::size_t>(k * taps + t)];
        y[static_cast<std::size_t>((n * d.k + k) * oh * ow + pq)] = acc;
      }
  return y;
}

inline double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

}  // namespace kestrel::testing
