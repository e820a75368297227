// cat, stack, pad, flip: validation, then copies into views of a fresh output (see
// core/ops/shape_ops.h for how each is put together from the copy, fill and gather kernels).
#include "core/ops/shape_ops.h"

#include "core/ops/copy.h"
#include "core/ops/creation.h"
#include "core/ops/indexing.h"
#include "core/ops/view.h"

namespace colt5::ops {

Tensor cat(const TensorList& xs, int64_t dim) {
  COLT5_CHECK(!xs.empty(), "cat: argument 'xs' expected a non-empty list of tensors");
  for (size_t i = 0; i < xs.size(); ++i) COLT5_CHECK(xs[i].defined(), "cat: argument 'xs[", i, "]' is undefined");
  const Tensor& first = xs[0];
  COLT5_CHECK(first.dim() >= 1, "cat: argument 'xs[0]' expected >= 1 dim, got a 0-dim tensor");
  check_same_device(xs, "cat");
  const int64_t rank = first.dim();
  dim = wrap_dim(dim, rank, "cat");
  Shape shape = first.shape();
  shape[dim] = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    const Tensor& x = xs[i];
    COLT5_CHECK(x.dtype() == first.dtype(), "cat: argument 'xs[", i, "]' expected dtype ", dtype_name(first.dtype()),
                " (as xs[0]), got ", dtype_name(x.dtype()));
    COLT5_CHECK(x.dim() == rank, "cat: argument 'xs[", i, "]' expected ", rank, " dims (as xs[0]), got ", x.dim(),
                " (shape ", x.shape(), ")");
    for (int64_t d = 0; d < rank; ++d)
      COLT5_CHECK(d == dim || x.shape()[d] == first.shape()[d], "cat: argument 'xs[", i, "]' expected size ",
                  first.shape()[d], " in dim ", d, " (as xs[0], shape ", first.shape(), "), got ", x.shape()[d],
                  " (shape ", x.shape(), ")");
    shape[dim] += x.shape()[dim];
  }
  Tensor out = Tensor::empty(shape, first.dtype(), first.device());
  int64_t offset = 0;
  for (const Tensor& x : xs) {
    const int64_t n = x.shape()[dim];
    if (n > 0 && x.numel() > 0) {
      Tensor window = narrow(out, dim, offset, n);
      copy_(window, x);
    }
    offset += n;
  }
  return out;
}

Tensor stack(const TensorList& xs, int64_t dim) {
  COLT5_CHECK(!xs.empty(), "stack: argument 'xs' expected a non-empty list of tensors");
  for (size_t i = 0; i < xs.size(); ++i) {
    COLT5_CHECK(xs[i].defined(), "stack: argument 'xs[", i, "]' is undefined");
    COLT5_CHECK(xs[i].shape() == xs[0].shape(), "stack: argument 'xs[", i, "]' expected shape ", xs[0].shape(),
                " (as xs[0]), got ", xs[i].shape());
  }
  dim = wrap_dim(dim, xs[0].dim() + 1, "stack");
  TensorList us;
  us.reserve(xs.size());
  for (const Tensor& x : xs) us.push_back(unsqueeze(x, dim));
  return cat(us, dim);
}

Tensor pad(const Tensor& x, const Shape& pads, double value) {
  COLT5_CHECK(x.defined(), "pad: argument 'x' is undefined");
  const int64_t rank = x.dim();
  COLT5_CHECK(pads.size() % 2 == 0, "pad: argument 'pads' expected an even number of amounts (left, right per dim), got ",
              pads);
  COLT5_CHECK(int64_t(pads.size()) <= 2 * rank, "pad: argument 'pads' expected at most ", 2 * rank,
              " amounts for a tensor of ", rank, " dims, got ", pads.size(), " (", pads, ")");
  // Pair j pads dim rank-1-j. Per dim: x's kept window [src_start, src_start + len) lands at
  // [dst_start, dst_start + len) of the output.
  Shape shape = x.shape();
  Shape src_start(rank, 0), dst_start(rank, 0), len = x.shape();
  bool grows = false;
  for (size_t j = 0; j < pads.size() / 2; ++j) {
    const int64_t d = rank - 1 - int64_t(j);
    const int64_t l = pads[2 * j], r = pads[2 * j + 1], size = x.shape()[d];
    const int64_t crop = (l < 0 ? -l : 0) + (r < 0 ? -r : 0);
    COLT5_CHECK(crop <= size, "pad: argument 'pads' crops ", crop, " elements from dim ", d, " of size ", size,
                " (pads ", pads, ", shape ", x.shape(), ")");
    shape[d] = size + l + r;
    src_start[d] = l < 0 ? -l : 0;
    dst_start[d] = l > 0 ? l : 0;
    len[d] = size - crop;
    grows = grows || l > 0 || r > 0;
  }
  Tensor out = Tensor::empty(shape, x.dtype(), x.device());
  if (grows) fill_(out, value);
  if (numel(len) > 0) {
    Tensor src = x, dst = out;
    for (int64_t d = 0; d < rank; ++d) {
      src = narrow(src, d, src_start[d], len[d]);
      dst = narrow(dst, d, dst_start[d], len[d]);
    }
    copy_(dst, src);
  }
  return out;
}

Tensor flip(const Tensor& x, int64_t dim) {
  COLT5_CHECK(x.defined(), "flip: argument 'x' is undefined");
  COLT5_CHECK(x.dim() >= 1, "flip: argument 'x' expected >= 1 dim, got a 0-dim tensor");
  dim = wrap_dim(dim, x.dim(), "flip");
  const int64_t n = x.shape()[dim];
  if (n <= 1) return clone(x);
  Tensor reversed = Tensor::empty({n}, DType::Int64, x.device());  // [n-1, ..., 1, 0]
  kernels::arange(x.device())(reversed, double(n - 1), -1.0);
  return index_select(x, dim, reversed);
}

}  // namespace colt5::ops
