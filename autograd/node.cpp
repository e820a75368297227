#include "autograd/node.h"

#include "autograd/grad_mode.h"
#include "autograd/ops.h"

namespace colt5 {

namespace {
thread_local bool g_grad_enabled = true;
}
bool grad_enabled() { return g_grad_enabled; }
void set_grad_enabled(bool on) { g_grad_enabled = on; }

namespace autograd {

TensorList Node::apply(const Tensor& grad_output) {
  COLT5_CHECK(!released_, "backward: trying to backward through the graph a second time (node ", name_,
              "); its saved tensors were freed after the first backward. Pass retain_graph=true to the first "
              "backward if you need to backward twice");
  return fn_(grad_output);
}

void Node::release() {
  fn_ = nullptr;
  next_.clear();
  released_ = true;
}

TensorList AccumulateGrad::apply(const Tensor& grad) {
  auto leaf = leaf_.lock();
  if (!leaf || !grad.defined()) return {};
  // A fresh tensor each time (never in place): a grad handed to the user is never mutated.
  // The first gradient is cloned so that .grad() owns its memory and is contiguous.
  leaf->grad = leaf->grad ? add(Tensor(leaf->grad), grad).impl_ptr() : ops::clone(grad).impl_ptr();
  return {};
}

Edge gradient_edge(const Tensor& t) {
  if (!t.defined() || !t.requires_grad()) return nullptr;
  TensorImpl* impl = t.impl();
  if (impl->grad_fn) return impl->grad_fn;
  auto acc = impl->grad_accumulator.lock();
  if (!acc) {
    acc = std::make_shared<AccumulateGrad>(t.impl_ptr());
    impl->grad_accumulator = acc;
  }
  return acc;
}

bool any_requires_grad(const TensorList& inputs) {
  if (!grad_enabled()) return false;
  for (const Tensor& t : inputs)
    if (t.requires_grad()) return true;
  return false;
}

Tensor record(const char* name, Tensor out, const TensorList& inputs, BackwardFn fn) {
  if (!any_requires_grad(inputs)) return out;
  std::vector<Edge> next;
  next.reserve(inputs.size());
  for (const Tensor& t : inputs) next.push_back(gradient_edge(t));
  // `out` may share its impl with an input (an op that returned its input unchanged): give it
  // a fresh handle so that the input's own history is not overwritten.
  for (const Tensor& t : inputs)
    if (t.impl() == out.impl()) out = Tensor::make_view(out, out.shape(), out.strides(), out.offset());
  out.impl()->grad_fn = std::make_shared<Node>(name, std::move(next), std::move(fn));
  out.impl()->requires_grad = true;
  return out;
}

}  // namespace autograd
}  // namespace colt5
