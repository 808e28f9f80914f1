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

// Who reads each value (by value id): the nodes that take it as an input, in node order and once
// per input slot, and whether it is pinned (a marked output or the loss), which passes keep.
struct ValueUses {
  std::vector<std::vector<int>> consumers;
  std::vector<bool> pinned;
};
ValueUses value_uses(const Graph& g);

}  // namespace kestrel
