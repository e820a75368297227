// Raw indexing ops: validation (dtypes, devices, shapes as torch), output allocation, dispatch.
// The index values themselves are bounds-checked by the kernels (core/ops/indexing.h).
// index_select and embedding are gathers with an expanded (stride 0) index, so they share the
// gather kernel and its bounds check, reporting under their own op and argument names.
#include "core/ops/indexing.h"

#include "core/ops/copy.h"
#include "core/ops/view.h"

namespace colt5::ops {

namespace {

void check_index(const Tensor& index, const char* op, const char* arg) {
  COLT5_CHECK(index.defined(), op, ": argument '", arg, "' is undefined");
  COLT5_CHECK(index.dtype() == DType::Int64, op, ": argument '", arg, "' expected dtype int64 (indices), got ",
              dtype_name(index.dtype()));
}

int64_t check_x(const Tensor& x, int64_t dim, const char* op, const char* arg) {
  COLT5_CHECK(x.defined(), op, ": argument '", arg, "' is undefined");
  COLT5_CHECK(x.dim() >= 1, op, ": argument '", arg, "' expected >= 1 dim, got a 0-dim tensor");
  check_not_half(x, op, arg);
  return wrap_dim(dim, x.dim(), op);
}

// index has x's rank and, outside dim, sizes <= x's (torch's rule for gather and scatter).
void check_index_shape(const Tensor& x, int64_t dim, const Tensor& index, const char* op) {
  COLT5_CHECK(index.dim() == x.dim(), op, ": argument 'index' expected ", x.dim(), " dims (as x), got ", index.dim(),
              " (shape ", index.shape(), ")");
  for (int64_t d = 0; d < x.dim(); ++d)
    COLT5_CHECK(d == dim || index.shape()[d] <= x.shape()[d], op, ": argument 'index' of shape ", index.shape(),
                " expected size <= ", x.shape()[d], " in dim ", d, " (x has shape ", x.shape(), "), got ",
                index.shape()[d]);
}

Tensor gather_checked(const Tensor& x, int64_t dim, const Tensor& index, const char* op, const char* arg) {
  Tensor out = Tensor::empty(index.shape(), x.dtype(), x.device());
  if (out.numel() > 0) kernels::gather(x.device())(x, dim, index, out, op, arg);
  return out;
}

Tensor scatter_op(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src, bool accumulate,
                  const char* op) {
  dim = check_x(x, dim, op, "x");
  check_index(index, op, "index");
  COLT5_CHECK(src.defined(), op, ": argument 'src' is undefined");
  check_same_device({x, index, src}, op);
  check_same_dtype(x, src, op, "x", "src");
  if (accumulate) COLT5_CHECK(x.dtype() != DType::Bool, op, ": argument 'x' expected a numeric dtype, got bool");
  check_index_shape(x, dim, index, op);
  COLT5_CHECK(src.dim() == x.dim(), op, ": argument 'src' expected ", x.dim(), " dims (as x), got ", src.dim(),
              " (shape ", src.shape(), ")");
  for (int64_t d = 0; d < x.dim(); ++d)
    COLT5_CHECK(index.shape()[d] <= src.shape()[d], op, ": argument 'src' of shape ", src.shape(),
                " expected size >= ", index.shape()[d], " in dim ", d, " (index has shape ", index.shape(), "), got ",
                src.shape()[d]);
  Tensor out = clone(x);
  if (index.numel() > 0) kernels::scatter(x.device())(out, dim, index, src, accumulate, op, "index");
  return out;
}

}  // namespace

Tensor expand_index(const Tensor& index, const Shape& shape, int64_t dim) {
  Shape strides(shape.size(), 0);
  strides[dim] = index.strides()[0];
  return Tensor::make_view(index, shape, strides, index.offset());
}

Tensor gather(const Tensor& x, int64_t dim, const Tensor& index) {
  dim = check_x(x, dim, "gather", "x");
  check_index(index, "gather", "index");
  check_same_device({x, index}, "gather");
  check_index_shape(x, dim, index, "gather");
  return gather_checked(x, dim, index, "gather", "index");
}

Tensor scatter(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src) {
  return scatter_op(x, dim, index, src, false, "scatter");
}

Tensor scatter_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src) {
  return scatter_op(x, dim, index, src, true, "scatter_add");
}

Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index) {
  dim = check_x(x, dim, "index_select", "x");
  check_index(index, "index_select", "index");
  check_same_device({x, index}, "index_select");
  COLT5_CHECK(index.dim() == 1, "index_select: argument 'index' expected 1 dim, got ", index.dim(), " (shape ",
              index.shape(), ")");
  Shape shape = x.shape();
  shape[dim] = index.shape()[0];
  return gather_checked(x, dim, expand_index(index, shape, dim), "index_select", "index");
}

Tensor embedding(const Tensor& weight, const Tensor& ids) {
  COLT5_CHECK(weight.defined(), "embedding: argument 'weight' is undefined");
  check_dim(weight, 2, "embedding", "weight");
  check_index(ids, "embedding", "ids");
  check_same_device({weight, ids}, "embedding");
  const int64_t n = ids.numel(), d = weight.shape()[1];
  Tensor flat = reshape(ids, {n});  // [N]
  Tensor rows = gather_checked(weight, 0, expand_index(flat, {n, d}, 0), "embedding", "ids");  // [N, D]
  Shape shape = ids.shape();
  shape.push_back(d);
  return view(rows, shape);  // [..., D]
}

}  // namespace colt5::ops
