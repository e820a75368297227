// Raw cross-entropy (no autograd): validation, layout, dispatch.
//
// Dims: N rows (samples), C classes. For row n with target t = targets[n]:
//   loss_n = logsumexp(logits[n]) - logits[n, t] = -log_softmax(logits[n])[t]
// computed stably (row max m subtracted: lse = m + log sum_c exp(logits[n, c] - m)).
// Rows whose target equals ignore_index contribute nothing. With g = dL/d(mean loss) and
// count = number of rows not ignored, the backward of the mean is
//   d logits[n, c] = (g / count) * (softmax(logits[n])_c - [c == t])   for a row not ignored,
//   d logits[n, c] = 0                                                 for an ignored row.
//
// Kernel contracts (checked by ops:: before the call):
//   logits  contiguous [N, C], floating
//   targets contiguous [N], int64
//   forward:  loss contiguous [N], logits' dtype; loss[n] = loss_n, or 0 for an ignored row.
//   backward: scale a one-element tensor of logits' dtype on the same device (= g / count, read
//             by the kernel, so no host round trip); glogits contiguous [N, C], logits' dtype.
//   A target that is neither ignore_index nor in [0, C) is a user error: the kernel reports it
//   as colt5::Error naming the row and the value (the CPU kernel throws; a device kernel raises
//   a flag that its launcher turns into the same error). The CPU kernel accumulates float rows
//   in double.
#pragma once

#include "core/dispatch.h"
#include "core/tensor.h"

namespace colt5 {

namespace cpu {
void cross_entropy_forward(const Tensor& logits, const Tensor& targets, Tensor& loss, int64_t ignore_index);
void cross_entropy_backward(const Tensor& logits, const Tensor& targets, const Tensor& scale, Tensor& glogits,
                            int64_t ignore_index);
}  // namespace cpu

using CrossEntropyForwardFn = void(const Tensor& logits, const Tensor& targets, Tensor& loss, int64_t ignore_index);
using CrossEntropyBackwardFn = void(const Tensor& logits, const Tensor& targets, const Tensor& scale,
                                   Tensor& glogits, int64_t ignore_index);
COLT5_KERNEL(cross_entropy_forward, CrossEntropyForwardFn, cpu::cross_entropy_forward)
COLT5_KERNEL(cross_entropy_backward, CrossEntropyBackwardFn, cpu::cross_entropy_backward)

namespace ops {
// Throws colt5::Error unless logits is a floating [N, C] tensor and targets an int64 [N] tensor
// on the same device.
void check_cross_entropy_args(const Tensor& logits, const Tensor& targets, const char* op);
// Per-row losses [N] (0 for ignored rows). logits and targets may have any strides.
Tensor cross_entropy_rows(const Tensor& logits, const Tensor& targets, int64_t ignore_index);
// The number of rows whose target is not ignore_index, as a 0-dim tensor of `dtype` on
// targets' device.
Tensor cross_entropy_count(const Tensor& targets, int64_t ignore_index, DType dtype);
// d(mean loss)/d logits for g / count = `scale` (one element, logits' dtype and device).
Tensor cross_entropy_backward(const Tensor& logits, const Tensor& targets, const Tensor& scale,
                              int64_t ignore_index);
}  // namespace ops

}  // namespace colt5
