#include "kestrel/kernels/conv_desc.h"

#include <cstdint>
#include <sstream>

#include "kestrel/core/error.h"

namespace kestrel {
namespace {
// Largest element count we accept for one tensor: far beyond any GPU, small enough that byte
// sizes and flattened int64 indices cannot overflow.
constexpr double kMaxElements = 4.0e18 / 16.0;

// Sizes stay below 2^31 so that every intermediate of the output-size formula fits in int64.
void check_positive(std::int64_t v, const char* field, const Conv2dDesc& d) {
  KESTREL_CHECK(v > 0, "conv2d: ", field, " must be positive, got ", v, " (", to_string(d), ")");
  KESTREL_CHECK(v <= INT32_MAX, "conv2d: ", field, " is too large: ", v, " (", to_string(d), ")");
}

void check_count(double count, const char* what, const Conv2dDesc& d) {
  KESTREL_CHECK(count <= kMaxElements, "conv2d: ", what, " has too many elements (", count,
                ") in ", to_string(d));
}
}  // namespace

void validate(const Conv2dDesc& d) {
  check_positive(d.n, "n (batch)", d);
  check_positive(d.c, "c (input channels)", d);
  check_positive(d.h, "h (input height)", d);
  check_positive(d.w, "w (input width)", d);
  check_positive(d.k, "k (output channels)", d);
  check_positive(d.r, "r (filter height)", d);
  check_positive(d.s, "s (filter width)", d);
  KESTREL_CHECK(d.pad_h >= 0 && d.pad_w >= 0, "conv2d: padding must be >= 0, got pad_h=", d.pad_h,
                " pad_w=", d.pad_w, " (", to_string(d), ")");
  check_positive(d.stride_h, "stride_h", d);
  check_positive(d.stride_w, "stride_w", d);
  check_positive(d.dil_h, "dil_h (dilation)", d);
  check_positive(d.dil_w, "dil_w (dilation)", d);
  KESTREL_CHECK(d.dtype == DType::kFloat32 || d.dtype == DType::kBFloat16,
                "conv2d: dtype must be fp32 or bf16, got ", dtype_name(d.dtype));
  KESTREL_CHECK(d.layout == Layout::kNCHW || d.layout == Layout::kNHWC,
                "conv2d: unknown layout ", static_cast<int>(d.layout));
  const auto dbl = [](std::int64_t v) { return static_cast<double>(v); };
  check_count(dbl(d.n) * dbl(d.c) * dbl(d.h) * dbl(d.w), "the input x", d);
  check_count(dbl(d.k) * dbl(d.c) * dbl(d.r) * dbl(d.s), "the filter w", d);
  KESTREL_CHECK(d.out_h() > 0, "conv2d: output height is empty: the dilated filter height ",
                d.dil_h * (d.r - 1) + 1, " exceeds the padded input height ",
                d.h + 2 * std::int64_t{d.pad_h},
                " (", to_string(d), ")");
  KESTREL_CHECK(d.out_w() > 0, "conv2d: output width is empty: the dilated filter width ",
                d.dil_w * (d.s - 1) + 1, " exceeds the padded input width ",
                d.w + 2 * std::int64_t{d.pad_w},
                " (", to_string(d), ")");
  check_count(dbl(d.n) * dbl(d.k) * dbl(d.out_h()) * dbl(d.out_w()), "the output y", d);
}

std::string to_string(const Conv2dDesc& d) {
  std::ostringstream os;
  os << "conv2d n=" << d.n << " c=" << d.c << " h=" << d.h << " w=" << d.w << " k=" << d.k
     << " r=" << d.r << " s=" << d.s << " pad=" << d.pad_h << "x" << d.pad_w
     << " stride=" << d.stride_h << "x" << d.stride_w << " dil=" << d.dil_h << "x" << d.dil_w
     << " " << dtype_name(d.dtype) << " " << layout_name(d.layout);
  return os.str();
}

const char* conv_op_name(ConvOp op) noexcept {
  switch (op) {
    case ConvOp::kForward: return "forward";
    case ConvOp::kBackwardData: return "backward-data";
    case ConvOp::kBackwardFilter: return "backward-filter";
  }
  return "unknown";
}

}  // namespace kestrel
