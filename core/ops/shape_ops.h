// Raw shape ops that copy (no autograd): cat, stack, pad, flip.
//
// None of them has a kernel of its own. Each writes into a fresh contiguous output through
// views of it, with the copy and fill kernels (core/ops/copy.h), or reads through index_select
// (core/ops/indexing.h):
//   cat:   out = empty; copy_(narrow(out, dim, offset_i, n_i), x_i) for each input
//   pad:   out = full(value); copy_(window of out, window of x) where the two windows are the
//          overlap of x and out along every padded dim (negative amounts crop x)
//   flip:  index_select(x, dim, [n-1, n-2, ..., 0])
// so they run on every device whose copy / fill / arange / gather kernels exist.
#pragma once

#include "core/tensor.h"

namespace colt5::ops {

// All inputs of one dtype, device and rank; sizes equal except at dim. Output size at dim is
// the sum of the inputs'.
Tensor cat(const TensorList& xs, int64_t dim);
// unsqueeze(x_i, dim) for each input, then cat along dim; all inputs of one shape.
Tensor stack(const TensorList& xs, int64_t dim);
// As torch.nn.functional.pad in constant mode: pads = {left_last, right_last, left_2nd_last,
// right_2nd_last, ...} (an even count, at most 2 * rank); output size of a padded dim is
// left + size + right, which must stay >= 0. Negative amounts crop.
Tensor pad(const Tensor& x, const Shape& pads, double value);
// Reverse the order of the elements along dim.
Tensor flip(const Tensor& x, int64_t dim);

}  // namespace colt5::ops
