// Raw order statistics and prefix sums (no autograd): topk, sort, cumsum.
//
// All three work along one dim. The op brings x into the layout [outer, n, inner] (contiguous;
// n = size of dim, outer = product of the sizes before it, inner = product of those after it),
// which a contiguous x already has, so the kernels see one simple geometry:
//   element j of line (o, i) is x[(o*n + j)*inner + i].
//
// Order (topk and sort): a total order on values in which NaN is larger than every number (as
// torch) and all NaNs are equal to one another; ties are broken by the lower index first. So
//   descending: NaN first, then from largest to smallest;  ascending: smallest first, NaN last,
// and equal values keep their input order in both directions (a stable sort). topk(largest) is
// the first k of the descending order, topk(smallest) the first k of the ascending one; sort is
// topk with k = n. Because the tie rule is part of the order, the result is unique: any correct
// kernel (partial sort, radix select, bitonic network) must give exactly these values and indices.
#pragma once

#include "core/dispatch.h"
#include "core/tensor.h"

namespace colt5 {

namespace cpu {
void topk(const Tensor& x, int64_t outer, int64_t n, int64_t inner, int64_t k, bool descending, Tensor& values,
          Tensor& indices);
void cumsum(const Tensor& x, int64_t outer, int64_t n, int64_t inner, bool reverse, Tensor& out);
}  // namespace cpu

// topk kernel contract:
//   x        contiguous [outer, n, inner], float32 / float64 / int64 / int32, n >= 1
//   values   contiguous [outer, k, inner], x's dtype, 1 <= k <= n
//   indices  contiguous [outer, k, inner], int64, each in [0, n)
// For every line (o, i): values[o, r, i] = x[o, indices[o, r, i], i] and indices[o, :, i] lists
// the first k positions of the line in the order above (descending or ascending).
using TopkFn = void(const Tensor& x, int64_t outer, int64_t n, int64_t inner, int64_t k, bool descending,
                    Tensor& values, Tensor& indices);
// cumsum kernel contract:
//   x    contiguous [outer, n, inner], float32 / float64 / int64, n >= 1
//   out  contiguous [outer, n, inner], x's dtype
//   reverse = false: out[o, j, i] = sum_{j' <= j} x[o, j', i]   (prefix sums)
//   reverse = true:  out[o, j, i] = sum_{j' >= j} x[o, j', i]   (suffix sums)
// The sum runs sequentially along the line (fixed order, deterministic); the CPU accumulates
// float32 in double.
using CumsumFn = void(const Tensor& x, int64_t outer, int64_t n, int64_t inner, bool reverse, Tensor& out);
COLT5_KERNEL(topk, TopkFn, cpu::topk)
COLT5_KERNEL(cumsum, CumsumFn, cpu::cumsum)

namespace ops {

struct SortResult {
  Tensor values;   // x's shape with size k at dim; x's dtype
  Tensor indices;  // same shape, int64
};

// k largest (largest = true) or smallest along dim; floating x; 0 <= k <= size of dim.
SortResult topk(const Tensor& x, int64_t k, int64_t dim, bool largest);
// Stable sort along dim; floating or integer x.
SortResult sort(const Tensor& x, int64_t dim, bool descending);
// Inclusive prefix sums along dim (suffix sums with reverse); float32, float64 or int64 x.
Tensor cumsum(const Tensor& x, int64_t dim, bool reverse = false);

}  // namespace ops
}  // namespace colt5
