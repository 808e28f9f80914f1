// Description of a 2-D convolution shared by the cuDNN path (kernels/conv.h) and the CPU twins
// (kernels/cpu/conv.h). No CUDA or cuDNN types: a plain value type.
//
// Contract: shapes are logical NCHW; `layout` says how x and y (and their gradients) sit in
// memory. Filters are KCRS for kNCHW and KRSC for kNHWC. The operation is a cross-correlation
// (the deep-learning "convolution"): y[n,k,p,q] = sum_{c,r,s} x[n,c,p*sh-ph+r*dh, q*sw-pw+s*dw]
// * w[k,c,r,s], with zero padding. Storage is fp32 or bf16 for x, w and y alike; arithmetic fp32
// on the GPU, double on the CPU.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "kestrel/core/dtype.h"
#include "kestrel/core/hd.h"
#include "kestrel/core/layout.h"

namespace kestrel {

// Output extent of one spatial dimension: 1 + (in + 2*pad - dil*(window-1) - 1) / stride
// (<= 0 when the dilated window does not fit the padded input).
KESTREL_HD std::int64_t conv_out_size(std::int64_t in, std::int64_t window, std::int64_t pad,
                                      std::int64_t stride, std::int64_t dil) {
  const std::int64_t span = in + 2 * pad - dil * (window - 1) - 1;
  return span < 0 ? 0 : 1 + span / stride;
}

struct Conv2dDesc {
  std::int64_t n = 0, c = 0, h = 0, w = 0;  // input, logical NCHW
  std::int64_t k = 0, r = 0, s = 0;         // filters: k outputs, r x s window
  int pad_h = 0, pad_w = 0, stride_h = 1, stride_w = 1, dil_h = 1, dil_w = 1;
  DType dtype = DType::kFloat32;  // x, w, y storage (fp32 or bf16); compute always fp32
  Layout layout = Layout::kNCHW;  // x, y layout; filters KCRS for NCHW, KRSC for NHWC

  std::int64_t out_h() const { return conv_out_size(h, r, pad_h, stride_h, dil_h); }
  std::int64_t out_w() const { return conv_out_size(w, s, pad_w, stride_w, dil_w); }
  std::int64_t x_elements() const { return n * c * h * w; }
  std::int64_t w_elements() const { return k * c * r * s; }
  std::int64_t y_elements() const { return n * k * out_h() * out_w(); }
};

// Raises kestrel::Error naming the bad field: non-positive sizes, negative padding, non-positive
// stride or dilation, an empty output, a dtype other than fp32/bf16, or element counts whose
// byte sizes or flattened int64 indices could overflow (about 2.5e17). Tensors past 2^31
// elements pass: whether cuDNN has an engine for one is cuDNN's to say, and without one the
// plan build raises "no working engine" naming the desc.
void validate(const Conv2dDesc& d);

// "conv2d n=8 c=16 h=32 w=32 k=16 r=3 s=3 pad=1x1 stride=1x1 dil=1x1 bf16 nhwc" for messages.
std::string to_string(const Conv2dDesc& d);

enum class ConvOp : std::uint8_t { kForward, kBackwardData, kBackwardFilter };
const char* conv_op_name(ConvOp op) noexcept;  // "forward", "backward-data", "backward-filter"

// How cuDNN engines are chosen (see kernels/conv.h):
//   deterministic:   no engine carrying cuDNN's NONDETERMINISTIC note (repeatable results);
//   allow_tf32:      fp32 convolutions may use tensor-core (TF32) engines; off = exact fp32;
//   autotune:        time up to 8 engines on first use of a shape and keep the fastest,
//                    instead of taking the first that builds in cuDNN's heuristic order;
//   workspace_limit: engines needing more scratch bytes than this are skipped.
struct ConvPolicy {
  bool deterministic = false;
  bool allow_tf32 = false;
  bool autotune = false;
  std::size_t workspace_limit = std::size_t(256) << 20;
};

}  // namespace kestrel
