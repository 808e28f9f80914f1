// Graph pass after autodiff: recompute cheap activations in backward instead of keeping them
// alive from forward to backward (rematerialisation).
#pragma once

#include "kestrel/core/graph.h"

namespace kestrel {

// For every training BN+ReLU node whose output y backward reads (the convolution that consumed
// y needs it for its weight gradient; the BN's own backward needs its ReLU mask), inserts a
// BatchNorm2dRecompute+ReLU node that rebuilds y bit-identically from the BN's input and saved
// statistics just before the first backward node that reads y, and points every backward reader
// at the rebuilt value. The BN's input and statistics stay alive until the BN's backward anyway,
// so y now dies after its last forward use: in a ResNet block one of the four activations kept
// for backward (x -> conv -> BN+ReLU -> conv -> BN+Add+ReLU) is no longer kept, for one extra
// elementwise pass per block in backward. Outputs marked with mark_output are left alone.
// Returns the number of recomputed values.
int recompute_batchnorm_relu(Graph& g);

}  // namespace kestrel
