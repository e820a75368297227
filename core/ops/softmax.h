// Raw softmax / log_softmax along one dim (no autograd): validation, layout, dispatch.
//
// Math, for one row x_0..x_{n-1} (the elements along `dim`), with m = max_j x_j:
//   softmax:      y_j = exp(x_j - m) / sum_k exp(x_k - m)
//   log_softmax:  y_j = x_j - m - log(sum_k exp(x_k - m))
// Backward, from y (the forward output) and g = dL/dy:
//   softmax:      gx_j = y_j * (g_j - sum_k g_k y_k)
//   log_softmax:  gx_j = g_j - exp(y_j) * sum_k g_k
// Subtracting m keeps exp from overflowing; a row that is all -inf has m = -inf and gives NaN,
// as torch does.
//
// Kernel contract (forward and backward alike): every tensor argument is contiguous, of numel
// outer*n*inner, seen as [outer, n, inner]; the op runs over the middle axis. Row (o, i) is the
// n elements at [(o*n + j)*inner + i], j < n. Outputs are fresh contiguous tensors of the same
// dtype. The CPU kernel accumulates float rows in double; every row is summed in index order
// (deterministic). Called only with outer*n*inner > 0.
#pragma once

#include "core/dispatch.h"
#include "core/tensor.h"

namespace colt5 {

namespace cpu {
// x, y: [outer, n, inner]
void softmax_forward(const Tensor& x, Tensor& y, int64_t outer, int64_t n, int64_t inner, bool log);
// y (forward output), g, gx: [outer, n, inner]
void softmax_backward(const Tensor& y, const Tensor& g, Tensor& gx, int64_t outer, int64_t n, int64_t inner,
                      bool log);
}  // namespace cpu

using SoftmaxForwardFn = void(const Tensor& x, Tensor& y, int64_t outer, int64_t n, int64_t inner, bool log);
using SoftmaxBackwardFn = void(const Tensor& y, const Tensor& g, Tensor& gx, int64_t outer, int64_t n,
                               int64_t inner, bool log);
COLT5_KERNEL(softmax_forward, SoftmaxForwardFn, cpu::softmax_forward)
COLT5_KERNEL(softmax_backward, SoftmaxBackwardFn, cpu::softmax_backward)

namespace ops {
// softmax (log = false) or log_softmax (log = true) of x along dim (negative counts from the
// end). x: floating, any strides. Returns a contiguous tensor of x's shape and dtype.
Tensor softmax(const Tensor& x, int64_t dim, bool log);
// The input gradient from y (the output of ops::softmax with the same dim and log) and
// g = dL/dy (y's shape and dtype, any strides). Returns a contiguous tensor of y's shape.
Tensor softmax_backward(const Tensor& y, const Tensor& g, int64_t dim, bool log);
}  // namespace ops

}  // namespace colt5
