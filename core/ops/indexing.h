// Raw indexing ops (no autograd): gather, scatter, scatter_add, index_select, embedding.
//
// Notation for dim = 1 of a rank-3 tensor (every other dim works the same way):
//   gather:       out[i][j][k] = x[i][index[i][j][k]][k]                   out has index's shape
//   scatter:      out = x;  out[i][index[i][j][k]][k]  = src[i][j][k]
//   scatter_add:  out = x;  out[i][index[i][j][k]][k] += src[i][j][k]
// index is int64 with x's rank; outside dim its sizes are <= x's (and <= src's for scatter,
// whose sizes at dim too are >= index's); only the index's positions of src are read.
//   index_select(x, dim, index [K]) = gather(x, dim, index viewed as [1,..,K,..,1] and
//                                     expanded (stride 0) to x's shape with K at dim)
//   embedding(weight [V, D], ids [...]) = index_select(weight, 0, ids flattened) -> [..., D]
// Every index must lie in [0, size of x at dim): anything else is a colt5::Error naming the op,
// the argument, the value and the range (no negative wrap-around, as torch).
//
// Determinism without atomics. Call a "column" one position of index's shape outside dim
// (i, k above). The destinations of two different columns never coincide: they differ in some
// dim other than dim. So a scatter kernel may give each column to one thread, which walks j in
// increasing order: duplicate destinations inside a column then add up (scatter_add) or
// overwrite (scatter, the last j wins) in a fixed order, with no float atomics. The CPU
// kernel visits index's positions in row-major order, which is the same order per column, so a
// CUDA kernel following this contract gives bit-identical results.
#pragma once

#include "core/dispatch.h"
#include "core/tensor.h"

namespace colt5 {

namespace cpu {
void gather(const Tensor& x, int64_t dim, const Tensor& index, Tensor& out, const char* op, const char* arg);
void scatter(Tensor& out, int64_t dim, const Tensor& index, const Tensor& src, bool accumulate, const char* op,
             const char* arg);
}  // namespace cpu

// Kernel contracts (the raw ops below have validated dtypes, devices and shapes):
//
// gather: x any strides, any dtype; index int64, any strides (0 allowed: index_select expands
//   its index), shape s with x's rank and s[d] <= x.shape[d] for d != dim; out contiguous of
//   shape s and x's dtype. For every position p of s: out[p] = x[p with p[dim] := index[p]].
//
// scatter: out contiguous, already holding a copy of x, updated in place; index as for gather
//   with s[d] <= out.shape[d] for d != dim; src of out's dtype, any strides, s[d] <= src.shape[d]
//   for every d. For every position p of s, in row-major order (see above):
//   out[p with p[dim] := index[p]] (+)= src[p]   (+= when accumulate, else =).
//   accumulate is never set for bool.
//
// Both: an index outside [0, x.shape[dim]) must not be read or written through. The CPU kernel
// throws colt5::Error("<op>: argument '<arg>' ..." with the value and the valid range); a device
// kernel records the first bad value in a device flag, and its launcher throws the same message.
using GatherFn = void(const Tensor& x, int64_t dim, const Tensor& index, Tensor& out, const char* op,
                      const char* arg);
using ScatterFn = void(Tensor& out, int64_t dim, const Tensor& index, const Tensor& src, bool accumulate,
                       const char* op, const char* arg);
COLT5_KERNEL(gather, GatherFn, cpu::gather)
COLT5_KERNEL(scatter, ScatterFn, cpu::scatter)

namespace ops {
Tensor gather(const Tensor& x, int64_t dim, const Tensor& index);
Tensor scatter(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src);
Tensor scatter_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src);
Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index);  // index: 1-D int64 [K]
Tensor embedding(const Tensor& weight, const Tensor& ids);               // weight [V, D] -> [..., D]
// A 1-D index [K] viewed as `shape` (K at `dim`, stride 0 in every other dim): how index_select
// becomes a gather, and its backward a scatter_add.
Tensor expand_index(const Tensor& index, const Shape& shape, int64_t dim);
}  // namespace ops

}  // namespace colt5
