#include "core/ops/view.h"

#include "core/ops/copy.h"

namespace colt5::ops {

Shape infer_shape(const Shape& shape, int64_t n, const char* op) {
  Shape out = shape;
  int64_t known = 1, infer_at = -1;
  for (size_t k = 0; k < out.size(); ++k) {
    if (out[k] == -1) {
      COLT5_CHECK(infer_at < 0, op, ": argument 'shape' may contain only one -1, got ", shape);
      infer_at = int64_t(k);
    } else {
      COLT5_CHECK(out[k] >= 0, op, ": argument 'shape' expected sizes >= 0 or one -1, got ", shape);
      known *= out[k];
    }
  }
  if (infer_at >= 0) {
    COLT5_CHECK(known > 0 && n % known == 0, op, ": shape ", shape, " is invalid for a tensor of ", n, " elements");
    out[infer_at] = n / known;
  }
  COLT5_CHECK(numel(out) == n, op, ": shape ", shape, " is invalid for a tensor of ", n, " elements");
  return out;
}

// Walk the old dims in "chunks" whose elements are laid out with uniform spacing (each dim's
// stride = next stride * next size); a new dim may split or merge dims only inside a chunk.
std::optional<Shape> view_strides(const Shape& old_shape, const Shape& old_strides, const Shape& new_shape) {
  if (numel(old_shape) == 0 || old_shape.empty()) return contiguous_strides(new_shape);
  Shape out(new_shape.size());
  int64_t view_d = int64_t(new_shape.size()) - 1;
  int64_t chunk_base_stride = old_strides.back();
  int64_t tensor_numel = 1, view_numel = 1;
  for (int64_t d = int64_t(old_shape.size()) - 1; d >= 0; --d) {
    tensor_numel *= old_shape[d];
    // A chunk ends at dim 0 or where dim d-1 is not laid out right after dim d.
    if (d == 0 || (old_shape[d - 1] != 1 && old_strides[d - 1] != tensor_numel * chunk_base_stride)) {
      while (view_d >= 0 && (view_numel < tensor_numel || new_shape[view_d] == 1)) {
        out[view_d] = view_numel * chunk_base_stride;
        view_numel *= new_shape[view_d];
        --view_d;
      }
      if (view_numel != tensor_numel) return std::nullopt;
      if (d > 0) {
        chunk_base_stride = old_strides[d - 1];
        tensor_numel = 1;
        view_numel = 1;
      }
    }
  }
  if (view_d != -1) return std::nullopt;
  return out;
}

Tensor view(const Tensor& t, const Shape& shape) {
  Shape s = infer_shape(shape, t.numel(), "view");
  auto strides = view_strides(t.shape(), t.strides(), s);
  COLT5_CHECK(strides.has_value(), "view: a tensor of shape ", t.shape(), " and strides ", t.strides(),
              " cannot be viewed as ", s, " without a copy; use reshape");
  return Tensor::make_view(t, s, *strides, t.offset());
}

Tensor reshape(const Tensor& t, const Shape& shape) {
  Shape s = infer_shape(shape, t.numel(), "reshape");
  if (auto strides = view_strides(t.shape(), t.strides(), s)) return Tensor::make_view(t, s, *strides, t.offset());
  Tensor c = clone(t);
  return Tensor::make_view(c, s, contiguous_strides(s), 0);
}

Tensor permute(const Tensor& t, const Shape& dims) {
  const int64_t n = t.dim();
  COLT5_CHECK(int64_t(dims.size()) == n, "permute: argument 'dims' expected ", n, " dims, got ", dims);
  Shape shape(n), strides(n);
  std::vector<bool> used(n, false);
  for (int64_t k = 0; k < n; ++k) {
    int64_t d = wrap_dim(dims[k], n, "permute", "dims");
    COLT5_CHECK(!used[d], "permute: argument 'dims' expected a permutation, got ", dims);
    used[d] = true;
    shape[k] = t.shape()[d];
    strides[k] = t.strides()[d];
  }
  return Tensor::make_view(t, shape, strides, t.offset());
}

Tensor transpose(const Tensor& t, int64_t d0, int64_t d1) {
  d0 = wrap_dim(d0, t.dim(), "transpose", "dim0");
  d1 = wrap_dim(d1, t.dim(), "transpose", "dim1");
  Shape shape = t.shape(), strides = t.strides();
  std::swap(shape[d0], shape[d1]);
  std::swap(strides[d0], strides[d1]);
  return Tensor::make_view(t, shape, strides, t.offset());
}

Tensor narrow(const Tensor& t, int64_t dim, int64_t start, int64_t length) {
  dim = wrap_dim(dim, t.dim(), "narrow");
  const int64_t size = t.shape()[dim];
  if (start < 0) start += size;
  COLT5_CHECK(start >= 0 && length >= 0 && start + length <= size, "narrow: arguments 'start'=", start,
              " and 'length'=", length, " expected to lie within [0, ", size, "] of dim ", dim, " (shape ", t.shape(),
              ")");
  Shape shape = t.shape();
  shape[dim] = length;
  return Tensor::make_view(t, shape, t.strides(), t.offset() + start * t.strides()[dim]);
}

Tensor expand(const Tensor& t, const Shape& shape) {
  COLT5_CHECK(shape.size() >= size_t(t.dim()), "expand: argument 'shape' ", shape, " has fewer dims than the tensor ",
              t.shape());
  Shape target = shape;
  const size_t lead = shape.size() - t.dim();
  for (size_t k = 0; k < shape.size(); ++k) {
    if (target[k] == -1) {
      COLT5_CHECK(k >= lead, "expand: -1 is not allowed for a new leading dim, got ", shape);
      target[k] = t.shape()[k - lead];
    }
    if (k >= lead) {
      int64_t have = t.shape()[k - lead];
      COLT5_CHECK(have == target[k] || have == 1, "expand: the tensor of shape ", t.shape(),
                  " cannot be expanded to ", shape, " (dim ", k, ": ", have, " vs ", target[k], ")");
    }
  }
  return Tensor::make_view(t, target, broadcast_strides(t.shape(), t.strides(), target), t.offset());
}

Tensor unsqueeze(const Tensor& t, int64_t dim) {
  dim = wrap_dim(dim, t.dim() + 1, "unsqueeze");
  Shape shape = t.shape(), strides = t.strides();
  int64_t s = dim < t.dim() ? shape[dim] * strides[dim] : 1;
  shape.insert(shape.begin() + dim, 1);
  strides.insert(strides.begin() + dim, s);
  return Tensor::make_view(t, shape, strides, t.offset());
}

Tensor squeeze(const Tensor& t, int64_t dim) {
  dim = wrap_dim(dim, t.dim(), "squeeze");
  if (t.shape()[dim] != 1) return t;  // as torch: squeezing a dim of size != 1 is a no-op
  Shape shape = t.shape(), strides = t.strides();
  shape.erase(shape.begin() + dim);
  strides.erase(strides.begin() + dim);
  return Tensor::make_view(t, shape, strides, t.offset());
}

}  // namespace colt5::ops
