// Differentiable reductions. `dims` may be negative; keepdim keeps reduced dims as size 1.
// An empty `dims` list reduces over every dim.
#pragma once

#include "core/tensor.h"

namespace colt5 {

struct ValuesIndices {
  Tensor values;
  Tensor indices;  // int64
};

Tensor sum(const Tensor& x);                                        // all elements -> scalar
Tensor sum(const Tensor& x, const Shape& dims, bool keepdim = false);
Tensor mean(const Tensor& x);
Tensor mean(const Tensor& x, const Shape& dims, bool keepdim = false);
// max along one dim: values and the index of the first maximum; gradient flows to that index.
ValuesIndices max(const Tensor& x, int64_t dim, bool keepdim = false);
// amax along dims: gradient split evenly between tied maxima (as torch.amax).
Tensor amax(const Tensor& x, const Shape& dims, bool keepdim = false);
Tensor argmax(const Tensor& x, int64_t dim, bool keepdim = false);  // int64, not differentiable
// log(sum(exp(x))) along dim, computed stably (max subtracted); -inf for an all -inf row.
Tensor logsumexp(const Tensor& x, int64_t dim, bool keepdim = false);
// Sum `x` down to `shape` (which broadcasts to x's shape): the adjoint of broadcasting.
Tensor sum_to(const Tensor& x, const Shape& shape);

}  // namespace colt5
