// Order statistics. Values are differentiable (gradient scattered back to the picked
// positions); indices are int64 and not.
#pragma once

#include "autograd/ops/reduce.h"

namespace colt5 {

// k largest (or smallest) along dim, in torch's order: descending for largest, ascending
// otherwise; ties broken by lower index first.
ValuesIndices topk(const Tensor& x, int64_t k, int64_t dim = -1, bool largest = true);
// Stable sort along dim.
ValuesIndices sort(const Tensor& x, int64_t dim = -1, bool descending = false);
Tensor cumsum(const Tensor& x, int64_t dim);

}  // namespace colt5
