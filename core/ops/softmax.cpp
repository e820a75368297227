// softmax / log_softmax: validate, bring the input into the [outer, n, inner] contiguous layout
// of the kernel contract (core/ops/softmax.h), allocate, dispatch.
#include "core/ops/softmax.h"

#include "core/ops/copy.h"

namespace colt5::ops {

namespace {

struct RowLayout {
  int64_t outer = 1, n = 1, inner = 1;
};

// [d0 .. d{dim-1}] -> outer, d{dim} -> n, [d{dim+1} ..] -> inner. A 0-dim tensor is one row of 1.
RowLayout row_layout(const Shape& shape, int64_t dim) {
  RowLayout l;
  if (shape.empty()) return l;
  for (int64_t k = 0; k < dim; ++k) l.outer *= shape[k];
  l.n = shape[dim];
  for (size_t k = size_t(dim) + 1; k < shape.size(); ++k) l.inner *= shape[k];
  return l;
}

}  // namespace

Tensor softmax(const Tensor& x, int64_t dim, bool log) {
  const char* name = log ? "log_softmax" : "softmax";
  COLT5_CHECK(x.defined(), name, ": argument 'x' is undefined");
  check_floating(x, name, "x");
  const int64_t d = wrap_dim(dim, x.dim(), name, "dim");
  Tensor src = contiguous(x);
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  if (y.numel() == 0) return y;
  const RowLayout l = row_layout(x.shape(), d);
  kernels::softmax_forward(x.device())(src, y, l.outer, l.n, l.inner, log);
  return y;
}

Tensor softmax_backward(const Tensor& y, const Tensor& g, int64_t dim, bool log) {
  const char* name = log ? "log_softmax_backward" : "softmax_backward";
  COLT5_CHECK(y.defined() && g.defined(), name, ": undefined argument");
  check_floating(y, name, "y");
  check_same_dtype(y, g, name, "y", "g");
  check_same_device({y, g}, name);
  COLT5_CHECK(g.shape() == y.shape(), name, ": argument 'g' expected shape ", y.shape(), ", got ", g.shape());
  const int64_t d = wrap_dim(dim, y.dim(), name, "dim");
  Tensor ys = contiguous(y), gs = contiguous(g);
  Tensor gx = Tensor::empty(y.shape(), y.dtype(), y.device());
  if (gx.numel() == 0) return gx;
  const RowLayout l = row_layout(y.shape(), d);
  kernels::softmax_backward(y.device())(ys, gs, gx, l.outer, l.n, l.inner, log);
  return gx;
}

}  // namespace colt5::ops
