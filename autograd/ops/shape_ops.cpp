// Differentiable cat, stack, pad, flip. Each backward hands every input the part of the output
// gradient g that came from it:
//   cat:   g_i = narrow(g, dim, offset_i, n_i)      (offset_i = n_0 + ... + n_{i-1})
//   stack: g_i = select(g, dim, i)
//   pad:   g_x = pad(g, -pads)  — padding undone by cropping, cropping undone by zero padding
//   flip:  g_x = flip(g, dim)
// The backward closures call the public ops, so these compose to any order of derivative.
#include "autograd/node.h"
#include "autograd/ops.h"
#include "core/ops/shape_ops.h"

namespace colt5 {

using autograd::record;

Tensor cat(const TensorList& xs, int64_t dim) {
  Tensor out = ops::cat(xs, dim);
  const int64_t d = wrap_dim(dim, out.dim(), "cat");
  Shape sizes;
  for (const Tensor& x : xs) sizes.push_back(x.shape()[d]);
  return record("cat", out, xs, [d, sizes](const Tensor& g) -> TensorList {
    TensorList grads;
    int64_t offset = 0;
    for (int64_t n : sizes) {
      grads.push_back(g.narrow(d, offset, n));
      offset += n;
    }
    return grads;
  });
}

Tensor stack(const TensorList& xs, int64_t dim) {
  Tensor out = ops::stack(xs, dim);
  const int64_t d = wrap_dim(dim, out.dim(), "stack");
  const int64_t n = int64_t(xs.size());
  return record("stack", out, xs, [d, n](const Tensor& g) -> TensorList {
    TensorList grads;
    for (int64_t i = 0; i < n; ++i) grads.push_back(g.select(d, i));
    return grads;
  });
}

Tensor pad(const Tensor& x, const Shape& pads, double value) {
  Tensor out = ops::pad(x, pads, value);
  Shape undo = pads;
  for (int64_t& p : undo) p = -p;
  return record("pad", out, {x}, [undo](const Tensor& g) -> TensorList { return {pad(g, undo, 0.0)}; });
}

Tensor flip(const Tensor& x, int64_t dim) {
  Tensor out = ops::flip(x, dim);
  const int64_t d = wrap_dim(dim, x.dim(), "flip");
  return record("flip", out, {x}, [d](const Tensor& g) -> TensorList { return {flip(g, d)}; });
}

}  // namespace colt5
