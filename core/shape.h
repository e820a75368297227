// Shapes, strides and broadcasting (NumPy rules).
//
// A tensor of shape [d0, ..., d{n-1}] with strides [s0, ..., s{n-1}] and offset o keeps
// element (i0, ..., i{n-1}) at storage[o + sum_k ik * sk]. Contiguous (row-major) strides are
// s{n-1} = 1, sk = s{k+1} * d{k+1}. A stride of 0 repeats one element: that is how expand and
// broadcasting work without copies.
#pragma once

#include <cstdint>
#include <vector>

namespace colt5 {

using Shape = std::vector<int64_t>;

int64_t numel(const Shape& shape);
Shape contiguous_strides(const Shape& shape);

// Broadcast two shapes (NumPy rules: align on the right, sizes must match or be 1).
// `op` names the caller for the error message.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);

// Strides that view a tensor of (shape, strides) as `target` (which it broadcasts to):
// leading new dims and size-1 dims get stride 0.
Shape broadcast_strides(const Shape& shape, const Shape& strides, const Shape& target);

// Normalise a possibly negative dim (-1 = last) into [0, ndim); throws naming `op` and `arg`.
int64_t wrap_dim(int64_t dim, int64_t ndim, const char* op, const char* arg = "dim");

}  // namespace colt5
