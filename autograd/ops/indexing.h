// Indexing with int64 index tensors; every index is bounds-checked (clear error, never UB).
#pragma once

#include "core/tensor.h"

namespace colt5 {

// out[i][j][k] = x[i][index[i][j][k]][k] (dim = 1); index has x's rank, sizes <= x's except at dim.
Tensor gather(const Tensor& x, int64_t dim, const Tensor& index);
// Copy of x with x[i][index[i][j][k]][k] = src[i][j][k] (dim = 1). Duplicate indices: the
// last write wins on the CPU; avoid them (routers never produce them).
Tensor scatter(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src);
// Copy of x with x[i][index[i][j][k]][k] += src[i][j][k]; duplicates accumulate.
Tensor scatter_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src);
// Rows of x along dim picked by a 1-D index.
Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index);
// embedding(weight [V, D], ids [...]) -> [..., D].
Tensor embedding(const Tensor& weight, const Tensor& ids);

}  // namespace colt5
