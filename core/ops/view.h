// Raw view geometry: new (shape, strides, offset) over the same storage. No data moves, no
// autograd (the differentiable views are the Tensor methods, autograd/ops/views.cpp).
#pragma once

#include <optional>

#include "core/tensor.h"

namespace colt5::ops {

// Replace one -1 in `shape` by the size that keeps numel; throws on impossible sizes.
Shape infer_shape(const Shape& shape, int64_t numel, const char* op);
// Strides that let (old shape, old strides) be seen as `new_shape` without a copy, if any.
std::optional<Shape> view_strides(const Shape& old_shape, const Shape& old_strides, const Shape& new_shape);

Tensor view(const Tensor& t, const Shape& shape);     // throws if not expressible as a view
Tensor reshape(const Tensor& t, const Shape& shape);  // view if possible, else a contiguous copy
Tensor permute(const Tensor& t, const Shape& dims);
Tensor transpose(const Tensor& t, int64_t d0, int64_t d1);
Tensor narrow(const Tensor& t, int64_t dim, int64_t start, int64_t length);
Tensor expand(const Tensor& t, const Shape& shape);
Tensor unsqueeze(const Tensor& t, int64_t dim);
Tensor squeeze(const Tensor& t, int64_t dim);

}  // namespace colt5::ops
