// Raw reductions (no autograd). A reduction over a set of dims first brings the tensor into
// the layout [outer, n, inner] (contiguous), reducing the middle axis: a single dim or a run
// of adjacent dims needs no copy of a contiguous tensor; other sets are permuted to the end.
//
// Kernel contract: x contiguous with numel outer*n*inner; out contiguous [outer*inner];
// out[o*inner + i] = reduce_{j<n} x[(o*n + j)*inner + i]. For ArgMax, out is int64 and
// holds the first j of the maximum. The CPU sums floats in double; sums run in a fixed
// order (no atomics) so results are deterministic.
#pragma once

#include "core/dispatch.h"
#include "core/tensor.h"

namespace colt5 {

enum class ReduceOp : uint8_t { Sum, Max, Min, ArgMax, LogSumExp };

namespace cpu {
void reduce(ReduceOp op, const Tensor& x, int64_t outer, int64_t n, int64_t inner, Tensor& out);
}
using ReduceFn = void(ReduceOp op, const Tensor& x, int64_t outer, int64_t n, int64_t inner, Tensor& out);
COLT5_KERNEL(reduce, ReduceFn, cpu::reduce)

namespace ops {

// The output shape of reducing `shape` over `dims` (normalised, sorted, unique).
Shape reduced_shape(const Shape& shape, const std::vector<bool>& reduce_mask, bool keepdim);
// Normalise `dims` (negative allowed; empty = all) into a per-dim mask; names `op` in errors.
std::vector<bool> reduce_mask(const Shape& dims, int64_t ndim, const char* op);
// Reduce x over the dims of `mask`.
Tensor reduce(ReduceOp op, const Tensor& x, const std::vector<bool>& mask, bool keepdim, const char* name);

}  // namespace ops
}  // namespace colt5
