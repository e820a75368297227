// Autograd graph nodes.
//
// Every differentiable op that sees an input requiring grad records one Node on its output:
// the node remembers where each input's gradient must go (`next`, one edge per input) and
// holds a closure that maps the output's gradient to the inputs' gradients. The closure
// captures whatever the backward needs (the "saved tensors"); releasing the node after
// backward drops them, which frees the graph's memory.
//
// Leaves that require grad get an AccumulateGrad node, which adds the incoming gradient into
// the leaf's .grad(). A non-leaf with retain_grad() keeps a copy of its gradient the same way.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace colt5::autograd {

class Node;
using Edge = std::shared_ptr<Node>;  // null edge: that input needs no gradient

// Maps d loss/d output to {d loss/d input_i}. An undefined tensor means "zero" or "not needed".
using BackwardFn = std::function<TensorList(const Tensor& grad_output)>;

class Node {
public:
  Node(std::string name, std::vector<Edge> next, BackwardFn fn)
      : name_(std::move(name)), next_(std::move(next)), fn_(std::move(fn)) {}
  virtual ~Node() = default;

  const std::string& name() const { return name_; }
  const std::vector<Edge>& next() const { return next_; }
  // Throws if the graph was freed by an earlier backward.
  virtual TensorList apply(const Tensor& grad_output);
  // Drop saved tensors and edges after a backward without retain_graph.
  virtual void release();
  bool released() const { return released_; }

  // Where retain_grad() stores this node's output gradient (weak: the node must not keep
  // its own output alive).
  std::weak_ptr<TensorImpl> retained_output;

protected:
  std::string name_;
  std::vector<Edge> next_;
  BackwardFn fn_;
  bool released_ = false;
};

// The sink of a leaf: accumulates into leaf.grad(). Holds the leaf weakly.
class AccumulateGrad final : public Node {
public:
  explicit AccumulateGrad(const std::shared_ptr<TensorImpl>& leaf) : Node("AccumulateGrad", {}, nullptr), leaf_(leaf) {}
  TensorList apply(const Tensor& grad) override;
  void release() override {}  // a leaf's sink stays usable for later graphs

private:
  std::weak_ptr<TensorImpl> leaf_;
};

// The edge through which a gradient reaches `t`: its grad_fn, its AccumulateGrad if it is a
// leaf requiring grad, or null.
Edge gradient_edge(const Tensor& t);

// True when grad mode is on and any input requires grad.
bool any_requires_grad(const TensorList& inputs);

// Record `out = op(inputs)` in the graph when needed. `fn` receives d loss/d out and returns one
// gradient per input, in order (shape of that input; undefined for none). Returns `out`.
Tensor record(const char* name, Tensor out, const TensorList& inputs, BackwardFn fn);

}  // namespace colt5::autograd
