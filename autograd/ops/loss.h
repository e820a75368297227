// Losses.
#pragma once

#include "core/tensor.h"

namespace colt5 {

// cross_entropy(logits [N, C], targets [N] int64): mean over targets != ignore_index of
// -log_softmax(logits)[n, target[n]]. All ignored -> NaN, as torch (0/0).
Tensor cross_entropy(const Tensor& logits, const Tensor& targets, int64_t ignore_index = -100);

}  // namespace colt5
