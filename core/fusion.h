// Graph passes that rewrite forward nodes before autodiff.
#pragma once

#include "kestrel/core/graph.h"

namespace kestrel {

// Fuses BatchNorm2d -> ReLU into BatchNorm2d(act = relu) and BatchNorm2d -> Add -> ReLU into
// BatchNorm2d(act = add_relu, residual = the Add's other input), when the intermediate values
// have no other consumer and are not marked outputs. The fused node takes the position of the
// ReLU it replaces (all its inputs exist by then) and writes the ReLU's output value, so the
// rest of the graph is unchanged. Returns the number of fusions.
int fuse_batchnorm_activations(Graph& g);

// Removes nodes whose outputs nothing uses (after fusion) and renumbers producers.
void compact_nodes(Graph& g, const std::vector<bool>& removed);

}  // namespace kestrel
