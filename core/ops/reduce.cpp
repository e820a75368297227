#include "core/ops/reduce.h"

#include <cmath>
#include <numeric>

#include "core/ops/copy.h"
#include "core/ops/view.h"

namespace colt5::ops {

std::vector<bool> reduce_mask(const Shape& dims, int64_t ndim, const char* op) {
  std::vector<bool> mask(ndim, dims.empty());
  for (int64_t d : dims) {
    int64_t w = wrap_dim(d, ndim, op, "dims");
    COLT5_CHECK(!mask[w], op, ": argument 'dims' lists dim ", w, " twice: ", dims);
    mask[w] = true;
  }
  return mask;
}

Shape reduced_shape(const Shape& shape, const std::vector<bool>& mask, bool keepdim) {
  Shape out;
  for (size_t k = 0; k < shape.size(); ++k) {
    if (!mask[k]) out.push_back(shape[k]);
    else if (keepdim) out.push_back(1);
  }
  return out;
}

Tensor reduce(ReduceOp op, const Tensor& x, const std::vector<bool>& mask, bool keepdim, const char* name) {
  COLT5_CHECK(x.defined(), name, ": argument 'x' is undefined");
  if (op == ReduceOp::Sum)
    COLT5_CHECK(x.dtype() != DType::Bool, name, ": argument 'x' expected a numeric dtype, got bool");
  else
    check_floating(x, name, "x");
  const int64_t nd = x.dim();
  const Shape out_shape = reduced_shape(x.shape(), mask, keepdim);
  // Find the layout [outer, n, inner]. If the reduced dims are one adjacent run, a contiguous x
  // already has it; otherwise move the reduced dims to the end (inner = 1).
  int64_t first = -1, last = -1, count = 0;
  for (int64_t k = 0; k < nd; ++k)
    if (mask[k]) {
      if (first < 0) first = k;
      last = k;
      ++count;
    }
  Tensor src = x;
  int64_t outer = 1, n = 1, inner = 1;
  if (count == 0) {
    n = 1;
    outer = x.numel();
  } else if (last - first + 1 == count) {
    for (int64_t k = 0; k < first; ++k) outer *= x.shape()[k];
    for (int64_t k = first; k <= last; ++k) n *= x.shape()[k];
    for (int64_t k = last + 1; k < nd; ++k) inner *= x.shape()[k];
  } else {
    Shape perm;
    for (int64_t k = 0; k < nd; ++k)
      if (!mask[k]) perm.push_back(k), outer *= x.shape()[k];
    for (int64_t k = 0; k < nd; ++k)
      if (mask[k]) perm.push_back(k), n *= x.shape()[k];
    src = permute(x, perm);
  }
  src = contiguous(src);
  const DType out_dtype = op == ReduceOp::ArgMax ? DType::Int64 : x.dtype();
  Tensor out = Tensor::empty(out_shape, out_dtype, x.device());
  if (out.numel() == 0) return out;
  if (n == 0) {
    // Reducing an empty dim: the identity (0 for sum), an error for the others, as torch.
    COLT5_CHECK(op == ReduceOp::Sum || op == ReduceOp::LogSumExp, name,
                ": cannot reduce over an empty dim (shape ", x.shape(), ")");
    fill_(out, op == ReduceOp::Sum ? 0.0 : -INFINITY);
    return out;
  }
  kernels::reduce(x.device())(op, src, outer, n, inner, out);
  return out;
}

}  // namespace colt5::ops
