// Differentiable indexing. The index tensors carry no gradient. Backward rules (g has the
// output's shape; "fit" zero-pads a [index-shaped] gradient up to src's shape when src is
// larger than index, since only index's positions of src are read):
//   gather(x, dim, index):          g_x = scatter_add(zeros(x.shape), dim, index, g)
//   scatter(x, dim, index, src):    g_x = scatter(g, dim, index, 0)  (overwritten positions get 0)
//                                   g_src = fit(gather(g, dim, index))
//   scatter_add(x, dim, index, src): g_x = g,  g_src = fit(gather(g, dim, index))
//   index_select(x, dim, index[K]): g_x = scatter_add(zeros(x.shape), dim, index expanded to g, g)
//                                   (torch's index_add: repeated indices accumulate)
//   embedding(weight [V,D], ids):   g_w = scatter_add(zeros([V,D]), 0, ids as [N,1] expanded to
//                                   [N,D], g as [N,D])   (repeated ids accumulate)
// Every backward is itself made of differentiable ops. scatter_add accumulates in a fixed order
// (core/ops/indexing.h), so gradients are deterministic on every device.
#include "autograd/node.h"
#include "autograd/ops.h"
#include "core/ops/indexing.h"

namespace colt5 {

using autograd::record;

namespace {

// Zero-pad t (shape <= `shape` in every dim) on the right up to `shape`.
Tensor fit(const Tensor& t, const Shape& shape) {
  if (t.shape() == shape) return t;
  Shape pads;
  for (int64_t d = t.dim() - 1; d >= 0; --d) {
    pads.push_back(0);
    pads.push_back(shape[d] - t.shape()[d]);
  }
  return pad(t, pads, 0.0);
}

}  // namespace

Tensor gather(const Tensor& x, int64_t dim, const Tensor& index) {
  Tensor out = ops::gather(x, dim, index);
  const int64_t d = wrap_dim(dim, x.dim(), "gather");
  Tensor idx = index.detach();
  Shape in = x.shape();
  return record("gather", out, {x}, [d, idx, in](const Tensor& g) -> TensorList {
    return {scatter_add(zeros(in, g.dtype(), g.device()), d, idx, g)};
  });
}

Tensor scatter(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src) {
  Tensor out = ops::scatter(x, dim, index, src);
  const int64_t d = wrap_dim(dim, x.dim(), "scatter");
  Tensor idx = index.detach();
  Shape src_shape = src.shape();
  const bool need_x = x.requires_grad(), need_src = src.requires_grad();
  return record("scatter", out, {x, src}, [=](const Tensor& g) -> TensorList {
    Tensor gx = need_x ? scatter(g, d, idx, zeros(idx.shape(), g.dtype(), g.device())) : Tensor();
    Tensor gsrc = need_src ? fit(gather(g, d, idx), src_shape) : Tensor();
    return {gx, gsrc};
  });
}

Tensor scatter_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src) {
  Tensor out = ops::scatter_add(x, dim, index, src);
  const int64_t d = wrap_dim(dim, x.dim(), "scatter_add");
  Tensor idx = index.detach();
  Shape src_shape = src.shape();
  const bool need_src = src.requires_grad();
  return record("scatter_add", out, {x, src}, [=](const Tensor& g) -> TensorList {
    return {g, need_src ? fit(gather(g, d, idx), src_shape) : Tensor()};
  });
}

Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index) {
  Tensor out = ops::index_select(x, dim, index);
  const int64_t d = wrap_dim(dim, x.dim(), "index_select");
  Tensor idx = index.detach();
  Shape in = x.shape();
  return record("index_select", out, {x}, [d, idx, in](const Tensor& g) -> TensorList {
    return {scatter_add(zeros(in, g.dtype(), g.device()), d, ops::expand_index(idx, g.shape(), d), g)};
  });
}

Tensor embedding(const Tensor& weight, const Tensor& ids) {
  Tensor out = ops::embedding(weight, ids);  // [..., D]
  Tensor flat = ids.detach().reshape({ids.numel()});  // [N]
  Shape w = weight.shape();  // [V, D]
  return record("embedding", out, {weight}, [flat, w](const Tensor& g) -> TensorList {
    const int64_t n = flat.shape()[0];
    return {scatter_add(zeros(w, g.dtype(), g.device()), 0, ops::expand_index(flat, {n, w[1]}, 0), g.reshape({n, w[1]}))};
  });
}

}  // namespace colt5
