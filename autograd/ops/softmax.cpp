// Differentiable softmax / log_softmax along one dim. The backward runs the dedicated kernel
// (core/ops/softmax.h) on the saved output y and g = dL/dy:
//   softmax:      dL/dx = y * (g - sum_dim(g * y))
//   log_softmax:  dL/dx = g - exp(y) * sum_dim(g)
#include "autograd/node.h"
#include "autograd/ops.h"
#include "core/ops/softmax.h"

namespace colt5 {

namespace {

Tensor softmax_op(const Tensor& x, int64_t dim, bool log) {
  Tensor y = ops::softmax(x, dim, log);
  if (!autograd::any_requires_grad({x})) return y;
  // Save y detached: saving y itself would make the output own its own graph node.
  Tensor ys = y.detach();
  return autograd::record(log ? "log_softmax" : "softmax", y, {x}, [ys, dim, log](const Tensor& g) -> TensorList {
    return {ops::softmax_backward(ys, g, dim, log)};
  });
}

}  // namespace

Tensor softmax(const Tensor& x, int64_t dim) { return softmax_op(x, dim, false); }
Tensor log_softmax(const Tensor& x, int64_t dim) { return softmax_op(x, dim, true); }

}  // namespace colt5
