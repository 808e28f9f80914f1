// Factories for the remaining graph ops (convolution, dense, pooling, shape, dropout, losses).
#pragma once

#include <cstdint>
#include <memory>

#include "kestrel/core/op.h"
#include "kestrel/kernels/dropout.h"

namespace kestrel {

struct Conv2dAttrs {
  int stride_h = 1, stride_w = 1;
  int pad_h = 0, pad_w = 0;
  int dil_h = 1, dil_w = 1;
};
// Inputs (x [N,C,H,W], w [K,C,R,S] in x's layout[, bias [K] fp32]) -> y [N,K,P,Q].
std::shared_ptr<const Op> make_conv2d_op(const Conv2dAttrs& attrs);
// Inputs (x [N,in], w [out,in][, bias [out] fp32]) -> y [N,out] = x w^T + b.
std::shared_ptr<const Op> make_linear_op();
// [N,C,H,W] -> [N,C].
std::shared_ptr<const Op> make_global_avg_pool_op();
// 2x2 window, stride 2: [N,C,H,W] -> [N,C,H/2,W/2] (floor).
std::shared_ptr<const Op> make_max_pool2x2_op();
// [N,C,H,W] -> [N,C*H*W] in logical (C,H,W) order whatever the layout.
std::shared_ptr<const Op> make_flatten_op();
// Dropout drawing from Philox offset (step offset + slot).
std::shared_ptr<const Op> make_dropout_op(float p, DropoutMode mode, int rng_slot);
// Inputs (logits [N,K], labels [N] int32) -> (loss [1] fp32 mean over the batch, dlogits [N,K]).
// In training the one fused kernel writes both; the loss must be the graph's loss.
std::shared_ptr<const Op> make_softmax_cross_entropy_op(float label_smoothing);
// Softmax over the last axis of [N,K].
std::shared_ptr<const Op> make_softmax_op();

}  // namespace kestrel
