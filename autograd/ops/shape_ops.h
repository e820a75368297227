// Shape ops that copy: cat, stack, pad, flip. (The views are Tensor methods: reshape, view,
// permute, transpose, narrow, select, expand, unsqueeze, squeeze, contiguous.)
#pragma once

#include "core/tensor.h"

namespace colt5 {

Tensor cat(const TensorList& xs, int64_t dim);
Tensor stack(const TensorList& xs, int64_t dim);
// pad(x, {l_last, r_last, l_2nd_last, r_2nd_last, ...}, value): as torch.nn.functional.pad in
// constant mode; negative amounts crop.
Tensor pad(const Tensor& x, const Shape& pads, double value = 0.0);
Tensor flip(const Tensor& x, int64_t dim);

}  // namespace colt5
