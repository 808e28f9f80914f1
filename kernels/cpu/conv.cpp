#include "kestrel/kernels/cpu/conv.h"

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
  if (l == Layout::kNHWC) return ((a * d[2] + c) * d[3] + e) * d[1] + b;
  return ((a * d[1] + b) * d[2] + c) * d[3] + e;
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

// Input row (or column) read by output row p at filter tap r; may fall in the padding.
std::int64_t input_pos(std::int64_t p, std::int64_t r, int stride, int pad, int dil) {
  return p * stride - pad + r * dil;
}
}  // namespace

void conv2d_forward(const Conv2dDesc& d, const void* x, const void* w, void* y) {
  check(d, x, w, y, "forward");
  Logical xs = load(x, d, x_dims(d)), ws = load(w, d, w_dims(d));
  Logical ys{y_dims(d), std::vector<double>(static_cast<std::size_t>(d.y_elements()))};
  for_each_index(ys.dims, [&](std::int64_t n, std::int64_t k, std::int64_t p, std::int64_t q) {
    double acc = 0.0;
    for (std::int64_t c = 0; c < d.c; ++c)
      for (std::int64_t r = 0; r < d.r; ++r) {
        const std::int64_t ih = input_pos(p, r, d.stride_h, d.pad_h, d.dil_h);
        if (ih < 0 || ih >= d.h) continue;
        for (std::int64_t s = 0; s < d.s; ++s) {
          const std::int64_t iw = input_pos(q, s, d.stride_w, d.pad_w, d.dil_w);
          if (iw >= 0 && iw < d.w) acc += xs.at(n, c, ih, iw) * ws.at(k, c, r, s);
        }
      }
    ys.at(n, k, p, q) = acc;
  });
  store(ys, d, y);
}

void conv2d_backward_data(const Conv2dDesc& d, const void* dy, const void* w, void* dx) {
  check(d, dy, w, dx, "backward-data");
  Logical dys = load(dy, d, y_dims(d)), ws = load(w, d, w_dims(d));
  Logical dxs{x_dims(d), std::vector<double>(static_cast<std::size_t>(d.x_elements()))};
  const std::int64_t oh = d.out_h(), ow = d.out_w();
  // Gather form: dx[n,c,i,j] sums dy[n,k,p,q] * w[k,c,r,s] over the (p, r) with
  // p*stride - pad + r*dil == i, and likewise for columns.
  for_each_index(dxs.dims, [&](std::int64_t n, std::int64_t c, std::int64_t i, std::int64_t j) {
    double acc = 0.0;
    for (std::int64_t r = 0; r < d.r; ++r) {
      const std::int64_t ph = i + d.pad_h - r * d.dil_h;
      if (ph < 0 || ph % d.stride_h != 0 || ph / d.stride_h >= oh) continue;
      for (std::int64_t s = 0; s < d.s; ++s) {
        const std::int64_t pw = j + d.pad_w - s * d.dil_w;
        if (pw < 0 || pw % d.stride_w != 0 || pw / d.stride_w >= ow) continue;
        for (std::int64_t k = 0; k < d.k; ++k)
          acc += dys.at(n, k, ph / d.stride_h, pw / d.stride_w) * ws.at(k, c, r, s);
      }
    }
    dxs.at(n, c, i, j) = acc;
  });
  store(dxs, d, dx);
}

void conv2d_backward_filter(const Conv2dDesc& d, const void* x, const void* dy, void* dw) {
  check(d, x, dy, dw, "backward-filter");
  Logical xs = load(x, d, x_dims(d)), dys = load(dy, d, y_dims(d));
  Logical dws{w_dims(d), std::vector<double>(static_cast<std::size_t>(d.w_elements()))};
  const std::int64_t oh = d.out_h(), ow = d.out_w();
  for_each_index(dws.dims, [&](std::int64_t k, std::int64_t c, std::int64_t r, std::int64_t s) {
    double acc = 0.0;
    for (std::int64_t n = 0; n < d.n; ++n)
      for (std::int64_t p = 0; p < oh; ++p) {
        const std::int64_t ih = input_pos(p, r, d.stride_h, d.pad_h, d.dil_h);
        if (ih < 0 || ih >= d.h) continue;
        for (std::int64_t q = 0; q < ow; ++q) {
          const std::int64_t iw = input_pos(q, s, d.stride_w, d.pad_w, d.dil_w);
          if (iw >= 0 && iw < d.w) acc += xs.at(n, c, ih, iw) * dys.at(n, k, p, q);
        }
      }
    dws.at(k, c, r, s) = acc;
  });
  store(dws, d, dw);
}

}  // namespace kestrel::cpu
