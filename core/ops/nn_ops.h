// Factories for the remaining graph ops (convolution, dense, pooling, shape, dropout, losses,
// split/concat).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

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

// Moving parts of row-major values (rank >= 2, nchw) along axis 1, any dtype:
// split: [N, sum(sizes), rest...] -> one output [N, sizes[i], rest...] per part;
// unstack: [N, steps, rest...] -> `steps` outputs [N, rest...] (a sequence's time steps);
// concat: inputs [N, S_i, rest...] -> [N, sum S_i, rest...]; stack: K inputs [N, rest...] ->
// [N, K, rest...]. Each is the other's backward; outputs of a split that receive no gradient
// get zeros in the concatenated gradient.
std::shared_ptr<const Op> make_split_op(std::vector<std::int64_t> sizes);
std::shared_ptr<const Op> make_unstack_op(std::int64_t steps);
std::shared_ptr<const Op> make_concat_op();
std::shared_ptr<const Op> make_stack_op();

}  // namespace kestrel
