// CPU twins of kernels/conv.h: direct loops over logical NCHW with double accumulation, every
// stride, padding and dilation, both layouts, fp32 and bf16 storage (inputs read exactly,
// each output rounded once to float, then to bf16 for bf16 storage). Outputs are overwritten.
// Raises kestrel::Error for an invalid desc (validate()) or a null pointer.
#pragma once

#include "kestrel/kernels/conv_desc.h"

namespace kestrel::cpu {
void conv2d_forward(const Conv2dDesc& d, const void* x, const void* w, void* y);
void conv2d_backward_data(const Conv2dDesc& d, const void* dy, const void* w, void* dx);
void conv2d_backward_filter(const Conv2dDesc& d, const void* x, const void* dy, void* dw);
}  // namespace kestrel::cpu
