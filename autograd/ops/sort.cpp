// Differentiable topk / sort / cumsum. Order and tie rules are in core/ops/sort.h: descending
// puts NaN first, ascending puts it last, equal values keep their input order (lower index
// first), so the routers' topk picks are deterministic.
//
// Backward rules (g has the shape of the output):
//   topk / sort values:  dx = scatter_add(zeros(x.shape), dim, indices, g)
//                        every picked position receives its output's gradient, the rest 0
//                        (the picked positions of one line are distinct, so nothing overlaps);
//                        the int64 indices carry no gradient.
//   cumsum:  y_j = sum_{i <= j} x_i  =>  dx_i = sum_{j >= i} g_j, the reverse cumsum of g,
//            computed directly by the kernel's suffix-sum mode (no flips).
#include "autograd/node.h"
#include "autograd/ops.h"
#include "core/ops/sort.h"

namespace colt5 {

using autograd::record;

namespace {

ValuesIndices differentiable_values(const char* name, const Tensor& x, int64_t dim, ops::SortResult r) {
  if (!autograd::any_requires_grad({x})) return {r.values, r.indices};
  const Shape in = x.shape();
  const int64_t d = wrap_dim(dim, x.dim(), name);
  const Tensor idx = r.indices;  // int64, no history: safe to keep in the closure
  Tensor values = record(name, r.values, {x}, [in, d, idx](const Tensor& g) -> TensorList {
    // A 0-dim x (one element, k = 1) passes g through; k = 0 picks nothing.
    if (idx.numel() == 0) return {zeros(in, g.dtype(), g.device())};
    if (in.empty()) return {g.reshape(in)};
    return {scatter_add(zeros(in, g.dtype(), g.device()), d, idx, g)};
  });
  return {values, r.indices};
}

// Prefix sums (reverse = false) or suffix sums (reverse = true) along dim; the backward of one
// direction is the other.
Tensor cumsum_directed(const Tensor& x, int64_t dim, bool reverse) {
  return record("cumsum", ops::cumsum(x, dim, reverse), {x}, [dim, reverse](const Tensor& g) -> TensorList {
    return {cumsum_directed(g, dim, !reverse)};
  });
}

}  // namespace

ValuesIndices topk(const Tensor& x, int64_t k, int64_t dim, bool largest) {
  return differentiable_values("topk", x, dim, ops::topk(x, k, dim, largest));
}

ValuesIndices sort(const Tensor& x, int64_t dim, bool descending) {
  return differentiable_values("sort", x, dim, ops::sort(x, dim, descending));
}

Tensor cumsum(const Tensor& x, int64_t dim) { return cumsum_directed(x, dim, false); }

}  // namespace colt5
