#include "kestrel/kernels/cpu/conv.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <vector>

#include "kestrel/core/error.h"
#include "kestrel/kernels/element_io.h"

namespace kestrel::cpu {
namespace {
using Dims = std::array<std::int64_t, 4>;

// A 4-D tensor read into logical order (N,C,H,W or K,C,R,S) as doubles, whatever its layout.
struct Logical {
  Dims dims;
  std::vector<double> v;
  double& at(std::int64_t a, std::int64_t b, std::int64_t c, std::int64_t e) {
    return v[static_cast<std::size_t>(((a * dims[1] + b) * dims[2] + c) * dims[3] + e)];
  }
};

// Storage offset of logical (a, b, c, e): NCHW / KCRS row-major, or channel-innermost for NHWC.
std::int64_t offset(Layout l, const Dims& d, std::int64_t a, std::int64_t b, std::int64_t c,
                    std::int64_t e) {
  return element_io::offset4(l, a, b, c, e, d[1], d[2], d[3]);
}

template <typename F>
void for_each_index(const Dims& d, F&& f) {
  for (std::int64_t a = 0; a < d[0]; ++a)
    for (std::int64_t b = 0; b < d[1]; ++b)
      for (std::int64_t c = 0; c < d[2]; ++c)
        for (std::int64_t e = 0; e < d[3]; ++e) f(a, b, c, e);
}

Logical load(const void* p, const Conv2dDesc& desc, const Dims& d) {
  Logical t{d, std::vector<double>(static_cast<std::size_t>(d[0] * d[1] * d[2] * d[3]))};
  for_each_index(d, [&](std::int64_t a, std::int64_t b, std::int64_t c, std::int64_t e) {
    t.at(a, b, c, e) = element_io::load_float(p, desc.dtype, offset(desc.layout, d, a, b, c, e));
  });
  return t;
}

void store(Logical& t, const Conv2dDesc& desc, void* p) {
  for_each_index(t.dims, [&](std::int64_t a, std::int64_t b, std::int64_t c, std::int64_t e) {
    element_io::store_float(p, desc.dtype, offset(desc.layout, t.dims, a, b, c, e),
                    static_cast<float>(t.at(a, b, c, e)));
  });
}

Dims x_dims(const Conv2dDesc& d) { return {d.n, d.c, d.h, d.w}; }
Dims w_dims(const Conv2dDesc& d) { return {d.k, d.c, d.r, d.s}; }
Dims y_dims(const Conv2dDesc& d) { return {d.n, d.k, d.out_h(), d.out_w()}; }

void check(const Conv2dDesc& d, const void* a, const void* b, const void* c, const char* op) {
  validate(d);
  KESTREL_CHECK(a != nullptr && b != nullptr && c != nullptr, "conv2d ", op,
                ": null data pointer");
}

// The output positions p in [0, out) whose input position p*stride - pad + tap*dil falls inside
// [0, in): a contiguous range [lo, hi) (empty when lo >= hi).
struct Range {
  std::int64_t lo, hi;
};
Range valid_outputs(std::int64_t out, std::int64_t in, std::int64_t tap, int stride, int pad, int dil) {
  const std::int64_t shift = pad - tap * dil;  // p*stride >= shift and p*stride <= in - 1 + shift
  const std::int64_t lo = shift <= 0 ? 0 : (shift + stride - 1) / stride;
  const std::int64_t top = in - 1 + shift;
  const std::int64_t hi = top < 0 ? 0 : std::min(out, top / stride + 1);
  return {lo, std::max(lo, hi)};
}

// The taps (r, s) and output rows p of one (image, in-channel, out-channel) pair, with the q loop
// innermost and contiguous: the three directions share this inner nest, each with its own outer
// order of (n, k, c), and accumulate in double in a fixed order (deterministic).
template <typename F>
void for_each_tap(const Conv2dDesc& d, F&& f) {
  const std::int64_t oh = d.out_h(), ow = d.out_w();
  for (std::int64_t r = 0; r < d.r; ++r) {
    const Range pr = valid_outputs(oh, d.h, r, d.stride_h, d.pad_h, d.dil_h);
    for (std::int64_t s = 0; s < d.s; ++s) {
      const Range qr = valid_outputs(ow, d.w, s, d.stride_w, d.pad_w, d.dil_w);
      for (std::int64_t p = pr.lo; p < pr.hi; ++p) {
        const std::int64_t ih = p * d.stride_h - d.pad_h + r * d.dil_h;
        const std::int64_t iw0 = qr.lo * d.stride_w - d.pad_w + s * d.dil_w;
        f(r, s, p, ih, qr.lo, qr.hi, iw0);
      }
    }
  }
}
}  // namespace

void conv2d_forward(const Conv2dDesc& d, const void* x, const void* w, void* y) {
  check(d, x, w, y, "forward");
  Logical xs = load(x, d, x_dims(d)), ws = load(w, d, w_dims(d));
  Logical ys{y_dims(d), std::vector<double>(static_cast<std::size_t>(d.y_elements()))};
  const std::int64_t sw = d.stride_w;
  for (std::int64_t n = 0; n < d.n; ++n)
    for (std::int64_t k = 0; k < d.k; ++k)
      for (std::int64_t c = 0; c < d.c; ++c) {
        const double* xp = &xs.at(n, c, 0, 0);
        for_each_tap(d, [&](std::int64_t r, std::int64_t s, std::int64_t p, std::int64_t ih, std::int64_t q0,
                            std::int64_t q1, std::int64_t iw0) {
          const double wv = ws.at(k, c, r, s);
          double* yrow = &ys.at(n, k, p, 0);
          const double* xrow = xp + ih * d.w + iw0;
          for (std::int64_t q = q0; q < q1; ++q) yrow[q] += xrow[(q - q0) * sw] * wv;
        });
      }
  store(ys, d, y);
}

void conv2d_backward_data(const Conv2dDesc& d, const void* dy, const void* w, void* dx) {
  check(d, dy, w, dx, "backward-data");
  Logical dys = load(dy, d, y_dims(d)), ws = load(w, d, w_dims(d));
  Logical dxs{x_dims(d), std::vector<double>(static_cast<std::size_t>(d.x_elements()))};
  const std::int64_t sw = d.stride_w;
  // Scatter form: every (output, tap) pair adds dy * w to the input position it read.
  for (std::int64_t n = 0; n < d.n; ++n)
    for (std::int64_t c = 0; c < d.c; ++c) {
      double* xp = &dxs.at(n, c, 0, 0);
      for (std::int64_t k = 0; k < d.k; ++k)
        for_each_tap(d, [&](std::int64_t r, std::int64_t s, std::int64_t p, std::int64_t ih, std::int64_t q0,
                            std::int64_t q1, std::int64_t iw0) {
          const double wv = ws.at(k, c, r, s);
          const double* dyrow = &dys.at(n, k, p, 0);
          double* xrow = xp + ih * d.w + iw0;
          for (std::int64_t q = q0; q < q1; ++q) xrow[(q - q0) * sw] += dyrow[q] * wv;
        });
    }
  store(dxs, d, dx);
}

void conv2d_backward_filter(const Conv2dDesc& d, const void* x, const void* dy, void* dw) {
  check(d, x, dy, dw, "backward-filter");
  Logical xs = load(x, d, x_dims(d)), dys = load(dy, d, y_dims(d));
  Logical dws{w_dims(d), std::vector<double>(static_cast<std::size_t>(d.w_elements()))};
  const std::int64_t sw = d.stride_w;
  for (std::int64_t k = 0; k < d.k; ++k)
    for (std::int64_t c = 0; c < d.c; ++c)
      for (std::int64_t n = 0; n < d.n; ++n) {
        const double* xp = &xs.at(n, c, 0, 0);
        for_each_tap(d, [&](std::int64_t r, std::int64_t s, std::int64_t p, std::int64_t ih, std::int64_t q0,
                            std::int64_t q1, std::int64_t iw0) {
          const double* dyrow = &dys.at(n, k, p, 0);
          const double* xrow = xp + ih * d.w + iw0;
          double acc = 0.0;
          for (std::int64_t q = q0; q < q1; ++q) acc += xrow[(q - q0) * sw] * dyrow[q];
          dws.at(k, c, r, s) += acc;
        });
      }
  store(dws, d, dw);
}

}  // namespace kestrel::cpu
