#include "kestrel/core/fusion.h"

#include "kestrel/core/error.h"
#include "kestrel/core/ops/batchnorm_op.h"
#include "kestrel/core/ops/elementwise_ops.h"

namespace kestrel {
ValueUses value_uses(const Graph& g) {
  ValueUses u;
  u.consumers.resize(g.values().size());
  u.pinned.assign(g.values().size(), false);
  for (std::size_t n = 0; n < g.nodes().size(); ++n)
    for (int i : g.nodes()[n].inputs) u.consumers[i].push_back(static_cast<int>(n));
  for (const auto& o : g.outputs()) u.pinned[o.second] = true;
  if (g.loss().valid()) u.pinned[g.loss().id] = true;
  return u;
}

namespace {

bool is_relu(const Op* op) {
  const auto* a = dynamic_cast<const ActivationOp*>(op);
  return a != nullptr && a->activation() == Activation::kRelu;
}

bool sole_consumer(const ValueUses& u, int value, int* node) {
  if (u.pinned[value] || u.consumers[value].size() != 1) return false;
  *node = u.consumers[value][0];
  return true;
}
// Whether a node strictly between positions `from` and `to` reads a value the batch norm at `from`
// updates in place (its running statistics, inputs 3 and 4): fusing moves that update to `to`,
// past such a reader (another BN sharing the statistics, a Siamese layer), changing its result.
bool statistics_read_between(const std::vector<Node>& nodes, std::size_t from, std::size_t to) {
  const std::vector<int>& in = nodes[from].inputs;
  for (std::size_t n = from + 1; n < to; ++n)
    for (int v : nodes[n].inputs)
      if (v == in[3] || v == in[4]) return true;
  return false;
}

// Drops the nodes marked removed, keeping the order of the rest.
void compact_nodes(Graph& g, const std::vector<bool>& removed) {
  std::vector<Node> kept;
  std::vector<Node>& nodes = g.mutable_nodes();
  for (std::size_t n = 0; n < nodes.size(); ++n)
    if (!removed[n]) kept.push_back(std::move(nodes[n]));
  nodes = std::move(kept);
}
}  // namespace

int fuse_batchnorm_activations(Graph& g) {
  std::vector<Node>& nodes = g.mutable_nodes();
  const ValueUses u = value_uses(g);
  std::vector<bool> removed(nodes.size(), false);
  int fused = 0;
  for (std::size_t b = 0; b < nodes.size(); ++b) {
    if (nodes[b].backward || removed[b]) continue;
    const auto* bn = dynamic_cast<const BatchNormOp*>(nodes[b].op.get());
    if (bn == nullptr || bn->activation() != BnActivation::kNone) continue;
    const int bn_y = nodes[b].outputs[0];
    int next = -1;
    if (!sole_consumer(u, bn_y, &next) || removed[next]) continue;
    const Op* next_op = nodes[next].op.get();
    if (is_relu(next_op)) {
      if (statistics_read_between(nodes, b, static_cast<std::size_t>(next))) continue;
      Node fusedn = nodes[b];
      fusedn.op = bn->with_activation(BnActivation::kRelu);
      fusedn.outputs[0] = nodes[next].outputs[0];
      nodes[next] = std::move(fusedn);
      removed[b] = true;
      ++fused;
      continue;
    }
    if (dynamic_cast<const AddOp*>(next_op) == nullptr) continue;
    const int add_y = nodes[next].outputs[0];
    int relu = -1;
    if (!sole_consumer(u, add_y, &relu) || removed[relu]) continue;
    if (!is_relu(nodes[relu].op.get())) continue;
    if (statistics_read_between(nodes, b, static_cast<std::size_t>(relu))) continue;
    // bn_y has this Add as its sole consumer, so it is exactly one of the Add's two inputs (an
    // Add of bn_y with itself lists it twice), and Add checked both have the same type.
    const std::vector<int>& add_in = nodes[next].inputs;
    const int residual = add_in[0] == bn_y ? add_in[1] : add_in[0];
    Node fusedn = nodes[b];
    fusedn.op = bn->with_activation(BnActivation::kAddRelu);
    fusedn.inputs.push_back(residual);
    fusedn.outputs[0] = nodes[relu].outputs[0];
    nodes[relu] = std::move(fusedn);
    removed[b] = true;
    removed[next] = true;
    ++fused;
  }
  if (fused > 0) compact_nodes(g, removed);
  return fused;
}

}  // namespace kestrel
