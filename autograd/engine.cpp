// The backward engine: topological order, gradient accumulation, graph release.
//
//   1. Collect every node reachable from the root's grad_fn (depth-first, iterative).
//   2. Visit them so that a node runs only after every node that feeds gradient into it
//      (reverse topological order), summing the gradients that reach each node.
//   3. Release the nodes (drop saved tensors) unless retain_graph.
// Backward formulas run with grad mode off: we do not build graphs of graphs.
#include <unordered_map>
#include <unordered_set>

#include "autograd/grad_mode.h"
#include "autograd/node.h"
#include "autograd/ops.h"

namespace colt5 {

using autograd::Node;

namespace {

// Owning pointers: releasing one node drops its edges, which may be the last reference to a
// node later in the order; the list keeps every node alive until backward returns.
std::vector<std::shared_ptr<Node>> topological_order(const std::shared_ptr<Node>& root) {
  // Post-order DFS gives inputs-before-outputs; reversed, outputs-before-inputs.
  std::vector<std::shared_ptr<Node>> order;
  std::unordered_set<Node*> seen{root.get()};
  std::vector<std::pair<std::shared_ptr<Node>, size_t>> stack{{root, 0}};
  while (!stack.empty()) {
    auto& [node, child] = stack.back();
    if (child < node->next().size()) {
      std::shared_ptr<Node> next = node->next()[child++];
      if (next && seen.insert(next.get()).second) stack.push_back({std::move(next), 0});
    } else {
      order.push_back(node);
      stack.pop_back();
    }
  }
  return {order.rbegin(), order.rend()};
}

}  // namespace

void Tensor::backward(const Tensor& grad, bool retain_graph) const {
  COLT5_CHECK(defined(), "backward: called on an undefined tensor");
  COLT5_CHECK(requires_grad(), "backward: the tensor does not require grad and has no grad_fn "
              "(did you forget requires_grad_() on an input, or run under NoGradGuard?)");
  Tensor seed = grad;
  if (!seed.defined()) {
    COLT5_CHECK(numel() == 1, "backward: argument 'grad' must be given for a non-scalar output (shape ", shape(),
                "); pass the upstream gradient d loss/d output");
    seed = scalar_tensor(1.0, dtype(), device()).reshape(shape());
  }
  COLT5_CHECK(seed.shape() == shape(), "backward: argument 'grad' expected shape ", shape(), ", got ", seed.shape());
  COLT5_CHECK(seed.device() == device(), "backward: argument 'grad' expected device ", device(), ", got ",
              seed.device());
  seed = seed.detach();

  NoGradGuard no_grad;
  autograd::Edge root = autograd::gradient_edge(*this);
  std::vector<std::shared_ptr<Node>> order = topological_order(root);
  std::unordered_map<Node*, Tensor> pending{{root.get(), seed}};

  for (const auto& node : order) {
    auto it = pending.find(node.get());
    if (it == pending.end()) continue;  // no gradient reached this node
    Tensor g = it->second;
    pending.erase(it);
    if (auto out = node->retained_output.lock()) out->grad = ops::clone(g).impl_ptr();
    TensorList input_grads = node->apply(g);
    const auto& next = node->next();
    for (size_t i = 0; i < next.size() && i < input_grads.size(); ++i) {
      if (!next[i] || !input_grads[i].defined()) continue;
      auto [slot, fresh] = pending.try_emplace(next[i].get(), input_grads[i]);
      if (!fresh) slot->second = add(slot->second, input_grads[i]);
    }
  }
  if (!retain_graph)
    for (const auto& node : order) node->release();
}

Tensor& Tensor::requires_grad_(bool on) {
  COLT5_CHECK(defined(), "requires_grad_: undefined tensor");
  COLT5_CHECK(is_leaf(), "requires_grad_: only leaf tensors can change requires_grad; use detach() first");
  COLT5_CHECK(!on || is_floating_point(), "requires_grad_: only floating tensors can require grad, got dtype ",
              dtype_name(dtype()));
  impl()->requires_grad = on;
  return *this;
}

void Tensor::retain_grad() {
  COLT5_CHECK(requires_grad(), "retain_grad: the tensor does not require grad");
  if (is_leaf()) return;  // leaves keep their grad anyway
  impl()->retains_grad = true;
  grad_fn()->retained_output = impl_ptr();
}

Tensor Tensor::detach() const {
  return Tensor::make_view(*this, shape(), strides(), offset());
}

}  // namespace colt5
