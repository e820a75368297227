// softmax / log_softmax along one dim, stable (row max subtracted). As in torch, a row that is
// all -inf gives NaN: mask with a large finite negative value instead.
#pragma once

#include "core/tensor.h"

namespace colt5 {

Tensor softmax(const Tensor& x, int64_t dim);
Tensor log_softmax(const Tensor& x, int64_t dim);

}  // namespace colt5
