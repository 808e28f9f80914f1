#include "kestrel/core/recompute.h"

#include <map>

#include "kestrel/core/fusion.h"
#include "kestrel/core/ops/batchnorm_op.h"

namespace kestrel {

int recompute_batchnorm_relu(Graph& g) {
  const ValueUses uses = value_uses(g);

  struct Insertion {
    int before;  // index of the first backward reader in the current node order
    Node node;
  };
  std::vector<Insertion> insertions;
  const std::size_t original = g.nodes().size();
  for (std::size_t f = 0; f < original; ++f) {
    const Node fwd = g.nodes()[f];  // a copy: append_node below may reallocate the node list
    const auto* bn = dynamic_cast<const BatchNormOp*>(fwd.op.get());
    if (fwd.backward || bn == nullptr || bn->activation() != BnActivation::kRelu) continue;
    const int y = fwd.outputs[0];
    if (uses.pinned[static_cast<std::size_t>(y)]) continue;
    std::vector<std::size_t> readers;  // in node order; a node reading y twice is listed twice
    for (int b : uses.consumers[static_cast<std::size_t>(y)])
      if (g.nodes()[static_cast<std::size_t>(b)].backward) readers.push_back(static_cast<std::size_t>(b));
    if (readers.empty()) continue;
    // x, gamma, beta (inputs 0-2) and the saved mean and invstd (outputs 1-2).
    const std::vector<Value> in = {Value{fwd.inputs[0]}, Value{fwd.inputs[1]}, Value{fwd.inputs[2]},
                                   Value{fwd.outputs[1]}, Value{fwd.outputs[2]}};
    const Value rebuilt =
        g.append_node(make_batchnorm_relu_recompute_op(), fwd.name + ".recompute", in, true)[0];
    for (std::size_t b : readers)
      for (int& i : g.mutable_nodes()[b].inputs)
        if (i == y) i = rebuilt.id;
    insertions.push_back({static_cast<int>(readers.front()), g.mutable_nodes().back()});
  }
  if (insertions.empty()) return 0;
  // Move each appended node to just before its first reader.
  std::vector<Node>& nodes = g.mutable_nodes();
  nodes.resize(original);
  std::multimap<int, Node> before;
  for (Insertion& ins : insertions) before.emplace(ins.before, std::move(ins.node));
  std::vector<Node> ordered;
  ordered.reserve(original + insertions.size());
  for (std::size_t i = 0; i < original; ++i) {
    auto [lo, hi] = before.equal_range(static_cast<int>(i));
    for (auto it = lo; it != hi; ++it) ordered.push_back(std::move(it->second));
    ordered.push_back(std::move(nodes[i]));
  }
  nodes = std::move(ordered);
  return static_cast<int>(insertions.size());
}

}  // namespace kestrel
