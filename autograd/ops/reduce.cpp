// Differentiable reductions. Backward rules (g has the reduced shape; "expand" puts it back
// on x's shape):
//   sum:  expand(g)            mean: expand(g) / n
//   max:  g at the index of the maximum, 0 elsewhere (scatter)
//   amax: expand(g) * [x == max] / (number of maxima)  — torch's even split between ties
//   logsumexp: expand(g) * exp(x - lse) = expand(g) * softmax(x)
#include <cmath>

#include "autograd/node.h"
#include "autograd/ops.h"
#include "core/ops/reduce.h"

namespace colt5 {

using autograd::record;

namespace {

// Reshape a reduced gradient to keepdim form and broadcast it back to `in`.
Tensor expand_back(const Tensor& g, const Shape& in, const std::vector<bool>& mask) {
  return g.reshape(ops::reduced_shape(in, mask, true)).expand(in);
}

Shape single(int64_t dim) { return Shape{dim}; }

}  // namespace

Tensor sum(const Tensor& x, const Shape& dims, bool keepdim) {
  auto mask = ops::reduce_mask(dims, x.dim(), "sum");
  Shape in = x.shape();
  return record("sum", ops::reduce(ReduceOp::Sum, x, mask, keepdim, "sum"), {x},
                [in, mask](const Tensor& g) -> TensorList { return {expand_back(g, in, mask)}; });
}
Tensor sum(const Tensor& x) { return sum(x, {}, false); }

Tensor mean(const Tensor& x, const Shape& dims, bool keepdim) {
  check_floating(x, "mean", "x");
  auto mask = ops::reduce_mask(dims, x.dim(), "mean");
  int64_t n = 1;
  for (int64_t k = 0; k < x.dim(); ++k)
    if (mask[k]) n *= x.shape()[k];
  return sum(x, dims, keepdim) * (1.0 / double(n));
}
Tensor mean(const Tensor& x) { return mean(x, {}, false); }

ValuesIndices max(const Tensor& x, int64_t dim, bool keepdim) {
  auto mask = ops::reduce_mask(single(dim), x.dim(), "max");
  Tensor idx = ops::reduce(ReduceOp::ArgMax, x, mask, true, "max");
  Tensor values = ops::reduce(ReduceOp::Max, x, mask, keepdim, "max");
  int64_t d = wrap_dim(dim, x.dim(), "max");
  Shape in = x.shape(), kept = ops::reduced_shape(in, mask, true);
  values = record("max", values, {x}, [=](const Tensor& g) -> TensorList {
    return {scatter_add(zeros(in, g.dtype(), g.device()), d, idx, g.reshape(kept))};
  });
  return {values, keepdim ? idx : idx.squeeze(d)};
}

Tensor amax(const Tensor& x, const Shape& dims, bool keepdim) {
  auto mask = ops::reduce_mask(dims, x.dim(), "amax");
  Tensor m = ops::reduce(ReduceOp::Max, x, mask, true, "amax");
  // The closure keeps a detached handle: with keepdim the output is m itself, and a node that
  // captured its own output would keep itself alive (a reference cycle).
  Tensor xd = x.detach(), md = m.detach();
  Shape in = x.shape();
  Tensor out = keepdim ? m : m.reshape(ops::reduced_shape(in, mask, false));
  return record("amax", out, {x}, [=](const Tensor& g) -> TensorList {
    Tensor hit = eq(xd, md).to(g.dtype());
    Tensor count = sum(hit, dims, true);
    return {expand_back(g, in, mask) * hit / count};
  });
}

Tensor argmax(const Tensor& x, int64_t dim, bool keepdim) {
  return ops::reduce(ReduceOp::ArgMax, x, ops::reduce_mask(single(dim), x.dim(), "argmax"), keepdim, "argmax");
}

Tensor logsumexp(const Tensor& x, int64_t dim, bool keepdim) {
  auto mask = ops::reduce_mask(single(dim), x.dim(), "logsumexp");
  Tensor lse = ops::reduce(ReduceOp::LogSumExp, x, mask, true, "logsumexp");
  Tensor xd = x.detach(), lsed = lse.detach();  // detached: see amax
  Shape in = x.shape();
  Tensor out = keepdim ? lse : lse.reshape(ops::reduced_shape(in, mask, false));
  return record("logsumexp", out, {x}, [=](const Tensor& g) -> TensorList {
    // exp(x - lse) is softmax(x); an all -inf row has lse = -inf and gets zero gradient.
    Tensor p = where(eq(lsed, -INFINITY), zeros_like(xd), exp(xd - lsed));
    return {expand_back(g, in, mask) * p};
  });
}

Tensor sum_to(const Tensor& x, const Shape& shape) {
  if (x.shape() == shape) return x;
  COLT5_CHECK(broadcast_shapes(shape, x.shape(), "sum_to") == x.shape(), "sum_to: shape ", shape,
              " does not broadcast to ", x.shape());
  // Sum the leading dims that broadcasting added, and the dims where shape has 1.
  const size_t lead = x.dim() - shape.size();
  Shape dims;
  for (size_t k = 0; k < size_t(x.dim()); ++k)
    if (k < lead || (shape[k - lead] == 1 && x.shape()[k] != 1)) dims.push_back(int64_t(k));
  if (dims.empty()) return x.reshape(shape);
  return sum(x, dims, true).reshape(shape);
}

}  // namespace colt5
