// topk / sort / cumsum: validation, the [outer, n, inner] geometry, output allocation, dispatch.
// A 0-dim x is treated as a line of one element (dim 0 or -1), as torch does.
#include "core/ops/sort.h"

#include "core/ops/copy.h"

namespace colt5::ops {

namespace {

struct Lines {
  int64_t dim = 0;  // normalised dim (0 for a 0-dim x)
  int64_t outer = 1, n = 1, inner = 1;
};

Lines lines_of(const Tensor& x, int64_t dim, const char* op) {
  Lines l;
  l.dim = wrap_dim(dim, x.dim(), op, "dim");
  if (x.dim() == 0) return l;
  const Shape& s = x.shape();
  for (int64_t k = 0; k < l.dim; ++k) l.outer *= s[k];
  l.n = s[l.dim];
  for (int64_t k = l.dim + 1; k < x.dim(); ++k) l.inner *= s[k];
  return l;
}

// The shape of x with size k at dim (a 0-dim x keeps its shape when k == 1).
Shape with_size(const Tensor& x, int64_t dim, int64_t k) {
  Shape s = x.shape();
  if (s.empty()) return k == 1 ? s : Shape{k};
  s[dim] = k;
  return s;
}

SortResult order_stats(const Tensor& x, int64_t k, const Lines& l, bool descending) {
  SortResult r;
  const Shape shape = with_size(x, l.dim, k);
  r.values = Tensor::empty(shape, x.dtype(), x.device());
  r.indices = Tensor::empty(shape, DType::Int64, x.device());
  if (r.values.numel() == 0) return r;  // k == 0 or an empty outer/inner extent
  kernels::topk(x.device())(contiguous(x), l.outer, l.n, l.inner, k, descending, r.values, r.indices);
  return r;
}

}  // namespace

SortResult topk(const Tensor& x, int64_t k, int64_t dim, bool largest) {
  COLT5_CHECK(x.defined(), "topk: argument 'x' is undefined");
  check_floating(x, "topk", "x");
  const Lines l = lines_of(x, dim, "topk");
  COLT5_CHECK(k >= 0 && k <= l.n, "topk: argument 'k' expected in [0, ", l.n, "] (the size of dim ", l.dim,
              " of x, shape ", x.shape(), "), got ", k);
  return order_stats(x, k, l, largest);
}

SortResult sort(const Tensor& x, int64_t dim, bool descending) {
  COLT5_CHECK(x.defined(), "sort: argument 'x' is undefined");
  COLT5_CHECK(x.dtype() != DType::Bool, "sort: argument 'x' expected a floating or integer dtype, got bool");
  const Lines l = lines_of(x, dim, "sort");
  return order_stats(x, l.n, l, descending);
}

Tensor cumsum(const Tensor& x, int64_t dim, bool reverse) {
  COLT5_CHECK(x.defined(), "cumsum: argument 'x' is undefined");
  COLT5_CHECK(x.dtype() == DType::Float32 || x.dtype() == DType::Float64 || x.dtype() == DType::Int64,
              "cumsum: argument 'x' expected dtype float32, float64 or int64, got ", dtype_name(x.dtype()));
  const Lines l = lines_of(x, dim, "cumsum");
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  if (out.numel() == 0) return out;
  kernels::cumsum(x.device())(contiguous(x), l.outer, l.n, l.inner, reverse, out);
  return out;
}

}  // namespace colt5::ops
