// Reverse-mode autodiff over a Graph: appends the backward nodes for the graph's loss.
//
// Gradients flow only into values that depend on a trainable parameter (or on one of the inputs
// named in `inputs`) and lead to the loss, so no gradient is computed for input images unless it
// is asked for: the first convolution skips backward-data. Where a value feeds several nodes,
// the gradients of its uses are summed (Add nodes).
#pragma once

#include <vector>

#include "kestrel/core/graph.h"

namespace kestrel {

struct AutodiffResult {
  // Per entry of Graph::params(): the value holding d loss / d parameter (fp32, the parameter's
  // shape), or -1 when the loss does not depend on it (states are always -1). No two parameters
  // share a value (where they would, the later one gets a copy).
  std::vector<int> param_grad;
  // Per entry of `inputs`: the value holding d loss / d input (the input's type).
  std::vector<int> input_grad;
};

// Raises kestrel::Error when the graph has no loss, when the loss is not softmax_cross_entropy's
// output (where d loss / d loss enters; a loss that depends on no trainable parameter and no
// entry of `inputs` is taken as it is and gives no gradients), when an entry of `inputs` is not a
// floating graph input, or when the loss does not depend on one of them.
AutodiffResult append_backward(Graph& g, const std::vector<Value>& inputs = {});

// Sums gradient contributions with a chain of Add nodes (returns parts[0] for one part). Raises
// kestrel::Error for no parts, and for the loss's seed (Value::seed()) with any other part.
Value sum_gradients(Graph& g, const std::vector<Value>& parts, std::string name);

}  // namespace kestrel
